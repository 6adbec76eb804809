"""Shared fixtures: real servers on real sockets (Zebra, the sandbox members)."""

from tests.zebra_server import zebra, zebra_ndl  # noqa: F401  (session fixtures)
