"""schemathesis hooks for the suite (loaded through SCHEMATHESIS_HOOKS=tests.schemathesis_hooks).

The stream's body is NDJSON, which schemathesis cannot read by itself: every line must be a
`StreamLine` (the model the document's schema is generated from), else the deserializer raises and
schemathesis reports the case; the last line (`final`, or `error`) goes on to the schema checks.
"""

from __future__ import annotations

from typing import Any

import orjson
import schemathesis
from pydantic import TypeAdapter, ValidationError

from yokodan.wire import StreamLine

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
