"""schemathesis hooks for the suite (loaded through SCHEMATHESIS_HOOKS=tests.schemathesis_hooks).

The stream's body is NDJSON, which schemathesis cannot read by itself: every line must be a
`StreamLine` (the model the document's schema is generated from), else the deserializer raises and
schemathesis reports the case; the last line (`final`, or `error`) goes on to the schema checks.
"""

from __future__ import annotations

from typing import Any

import re

import orjson
import schemathesis
from lxml import etree
from pydantic import TypeAdapter, ValidationError

from yokodan.wire import CalilCheckResponse, SearchDiff, StreamLine

_LINE = TypeAdapter(StreamLine)


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx: Any, response: Any) -> Any:
    lines = [orjson.loads(line) for line in response.content.splitlines() if line.strip()]
    if not lines:
        raise ValueError("an empty NDJSON stream: a stream always ends with a final or an error line")
    for number, line in enumerate(lines, 1):
        try:
            _LINE.validate_python(line)
        except ValidationError as exc:
            raise ValueError(f"stream line {number} is not a StreamLine: {exc}") from None
    if lines[-1]["type"] not in ("final", "error"):
        raise ValueError(f"the stream ended on a {lines[-1]['type']!r} line")
    return lines[-1]


_JSONP = re.compile(rb"/\*\*/[A-Za-z_$][\w$.]*\((.*)\);", re.DOTALL)


@schemathesis.deserializer("application/javascript")
def jsonp(ctx: Any, response: Any) -> Any:
    """The Calil check's JSONP: `/**/name({…});` around a CalilCheckResponse; the schema is a string."""
    match = _JSONP.fullmatch(response.content)
    if match is None:
        raise ValueError("not a JSONP answer: /**/callback({...});")
    CalilCheckResponse.model_validate_json(match[1])
    return response.content.decode()


@schemathesis.deserializer("application/xml")
def calil_xml(ctx: Any, response: Any) -> Any:
    """XML answers (SRU's text/xml too) must parse; Calil's `result` must carry its session."""
    root = etree.fromstring(response.content)
    if root.tag == "result" and root.find("session") is None:
        raise ValueError("Calil's XML answer has no session")
    return response.content.decode()


@schemathesis.deserializer("text/event-stream")
def sse_diffs(ctx: Any, response: Any) -> Any:
    """Every `diff` event of a session's event stream must be a SearchDiff whose `id:` is its version, and the
    stream must end on `done`; the text goes on to the schema check (a string)."""
    text = response.content.decode()
    events = [block for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    diffs = []
    for block in events:
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" not in fields:
            continue  # a keep-alive comment
        try:
            diff = SearchDiff.model_validate_json(fields["data"])
        except ValidationError as exc:
            raise ValueError(f"an event is not a SearchDiff: {exc}") from None
        if fields.get("id") != str(diff.version):
            raise ValueError(f"event id {fields.get('id')!r} is not the diff's version {diff.version}")
        diffs.append(diff)
    if not diffs or not diffs[-1].done:
        raise ValueError("the event stream ended before a diff with done=true")
    return text
