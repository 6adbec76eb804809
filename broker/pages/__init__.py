"""Server-rendered pages for patrons and librarians (Jinja2), with one small static script."""

from broker.pages.routes import add_page_routes

__all__ = ["add_page_routes"]
