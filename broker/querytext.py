"""Query text cleaned at the edge, before it can reach a member.

Two classes of character, two treatments:

- Control characters (C0 U+0000–U+001F, DEL, C1 U+0080–U+009F; tab and newline included) become a
  space. They are typing and pasting artefacts (a title copied with its line break, a C client's
  NUL terminator): the words around them are what the patron meant, and a space keeps them apart
  instead of gluing 夏目 and 漱石 together. Sent on, an SRU member may echo them into XML it cannot
  legally contain, and the broker would blame the member for our request.
- U+FFFD (the replacement character) and unpaired surrogates are refused with 400. Both say the text
  is already lost: the client sent bytes that were not UTF-8 (a Shift_JIS form, a cut multi-byte
  character) or a broken UTF-16 string. Dropping them would search silently for something else;
  the caller is told to send UTF-8 instead.

`is_clean(text)` is the same test for callers that did not come through the API (the CLI, holds),
so the registry can tell a member's garble from our own (`MemberRegistry.record(..., request_clean=)`).
"""

from __future__ import annotations

import re

from yokodan import SearchQuery
from yokodan.errors import BadRequest

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]+")
_LOST_TEXT = re.compile("[\ufffd\ud800-\udfff]")


class UndecodableText(BadRequest):
    """The text carries U+FFFD or a lone surrogate (broker.api answers 400 naming the parameter)."""


def clean_text(text: str) -> str:
    """Control characters -> one space each run; raises UndecodableText for U+FFFD / lone surrogates."""
    if _LOST_TEXT.search(text):
        raise UndecodableText("the text contains U+FFFD or an unpaired surrogate: send the query as UTF-8")
    return _CONTROLS.sub(" ", text)


def is_clean(text: str | None) -> bool:
    """True when `clean_text` would leave the text as it is (None is clean)."""
    return text is None or not (_CONTROLS.search(text) or _LOST_TEXT.search(text))


def query_is_clean(query: SearchQuery) -> bool:
    """Whether every text field of the query is clean (what a member's garbled answer is judged by)."""
    return all(is_clean(value) for value in (query.text, query.title, query.author, query.isbn))
