"""Which language (ja or en) a request asks for: `?lang=` first, then Accept-Language, else Japanese.

One rule for the pages and the API, so a portal and a page in the same language say the same words.
The API is strict about `lang=` (an unknown value is a 400 naming it, `check_language`); Accept-Language
is a preference, so a tag we do not have simply falls through to the next one, then to Japanese.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from yokodan.errors import BadRequest

Language = Literal["ja", "en"]
LANGUAGES: tuple[Language, ...] = ("ja", "en")
DEFAULT_LANGUAGE: Language = "ja"


class UnknownLanguage(BadRequest):
    """`lang=` names a language the broker has no words for."""

    def __init__(self, asked: str) -> None:
        super().__init__(f"lang must be one of {', '.join(LANGUAGES)} (got {asked[:20]!r})")
        self.asked = asked


def choose_language(request: web.Request) -> Language:
    """The pages' rule: a `lang=` we have, else the first Accept-Language tag we have, else Japanese."""
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked  # type: ignore[return-value]
    return _from_header(request.headers.get("Accept-Language", ""))


def check_language(request: web.Request) -> Language:
    """The API's rule: as `choose_language`, but a `lang=` we do not have is refused (UnknownLanguage)."""
    asked = request.query.get("lang")
    if asked is not None and asked not in LANGUAGES:
        raise UnknownLanguage(asked)
    return choose_language(request)


def _from_header(header: str) -> Language:
    # Tags in the order given with their q-values; the highest q wins, the order breaks ties (RFC 9110 §12.5.4).
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower().split("-")[0]))
    for negative_q, _, primary in sorted(ranked):
        if negative_q < 0 and primary in LANGUAGES:
            return primary  # type: ignore[return-value]
    return DEFAULT_LANGUAGE
