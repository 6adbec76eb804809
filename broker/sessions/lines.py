"""The NDJSON lines of GET /api/v1/search/stream, assembled from works serialised once per change.

The lines are the same JSON as before (`MemberLine`: the works changed since the line before, each
whole and re-merged; `FinalLine`: the ranked page and every status). Members that answer in the same
event-loop turn get one line each, one after another, and the last of them lists the works all of
them changed (broker.search.SearchEvent.turn_changed): at 60 members answering together a popular
work was re-sent 60 times with 1..60 members' holdings (17 MB for a 560 KB answer). A work's
holdings are not rebuilt from every record each time a member adds to it (broker.sessions.work_bytes),
and the final page reuses the fragments the member lines built. Both made the stream finish later
than the blocking search.
"""

from __future__ import annotations

import orjson

from broker.search import SearchEvent
from broker.sessions.work_bytes import WorkBytes, status_bytes
from broker.views import DisplayNames, cached_view

__all__ = ["StreamLines"]


class StreamLines:
    """One per stream: `line(event)` is the event's NDJSON line, newline included."""

    def __init__(self, names: DisplayNames) -> None:
        self.names = names
        self._works = WorkBytes(names)

    def line(self, event: SearchEvent) -> bytes:
        if event.cached is not None:  # the union index's instant answer, before any member
            return orjson.dumps({"type": "cached", **cached_view(event.cached)}) + b"\n"
        if event.final:
            kind, works = b"final", event.works
        else:  # the turn's works on its last line: a popular work is re-sent once per turn, not per member
            kind, works = b"member", event.turn_works if event.turn_changed is not None else []
        parts = [b'{"type":"', kind, b'","works":[', b",".join(self._works.serialise(w).data for w in works), b"]"]
        if event.answer is not None:
            parts += [b',"target":', status_bytes(event.answer.status, self.names)]
        if event.final:
            parts += [b',"targets":[', b",".join(status_bytes(s, self.names) for s in event.statuses), b"]"]
            self._works.forget()
        parts.append(b"}\n")
        return b"".join(parts)
