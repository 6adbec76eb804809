"""yokodan.client's progressive search sessions: every error the session routes send (respx), a cut
event stream resumed with Last-Event-ID, then both clients against the live broker (SSE and long-poll)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import respx

from tests.live_broker import ThreadedBroker, live_broker
from yokodan.client import (
    AsyncClient, Client, InvalidRequest, NotFound, ProgressiveState, TooManyRequests, TransportError, Unavailable,
)  # fmt: skip
from yokodan.wire import SearchDiff

BASE = "http://broker.test"
PROBLEM = {"content-type": "application/problem+json"}
KOKORO = "9784101010137"


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: object) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return httpx.Response(status, content=orjson.dumps(body), headers=PROBLEM | (headers or {}))


EXPIRED = problem(404, "Not Found", "no search session 'abc' (never created, expired after 120 s without a poll, or deleted)")
FULL = problem(429, "Too Many Requests", "2000 search sessions are open on this broker; retry in 7 s", {"Retry-After": "7"})
BUSY = problem(503, "Service Unavailable", "the broker is busy; retry in 2 s", {"Retry-After": "2"})
BAD = problem(400, "Invalid request", "invalid parameters", errors=[{"parameter": "timeout", "detail": "Input should be less than or equal to 30"}])


def diff(version: int, since: int, *, done: bool = False, inserted: list[dict] | None = None) -> dict:
    return {"id": "abc", "version": version, "since": since, "reset": False, "done": done, "running": [] if done else ["m"],
            "inserted": inserted or [], "updated": [], "removed": [], "finished": [], "order": [] if done else None}  # fmt: skip


def event(d: dict) -> bytes:
    return b"id: %d\r\nevent: diff\r\ndata: %s\r\n\r\n" % (d["version"], orjson.dumps(d))


def test_start_search_sends_typed_json_and_reads_the_session() -> None:
    created = {"id": "abc", "version": 0, "links": {"self": "/api/v1/searches/abc", "events": "/api/v1/searches/abc/events"}}
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        route = mock.post("/api/v1/searches").mock(return_value=httpx.Response(201, json=created))
        answer = client.start_search("漱石", year=1914, members=["a", "b"], page_size=5)
        assert orjson.loads(route.calls.last.request.content) == {"q": "漱石", "year": 1914, "members": ["a", "b"], "start": 1, "page_size": 5}
    assert (answer.id, answer.version, answer.links.events) == ("abc", 0, "/api/v1/searches/abc/events")


@pytest.mark.parametrize(("answer", "error_class", "retry_after"), [(FULL, TooManyRequests, 7), (BUSY, Unavailable, 2), (BAD, InvalidRequest, None)],
                         ids=["429-cap", "503-busy", "400"])  # fmt: skip
def test_start_search_errors(answer: httpx.Response, error_class: type, retry_after: int | None) -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.post("/api/v1/searches").mock(return_value=answer)
        with pytest.raises(error_class) as caught:
            client.start_search("x")
    assert type(caught.value) is error_class and caught.value.retry_after_s == retry_after
    assert caught.value.detail == orjson.loads(answer.content)["detail"]


def test_poll_and_delete_of_an_expired_session_are_not_found_and_a_bad_poll_is_invalid() -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/searches/abc").mock(side_effect=[EXPIRED, BAD])
        mock.delete("/api/v1/searches/abc").mock(return_value=EXPIRED)
        mock.get("/api/v1/searches/abc/events").mock(return_value=EXPIRED)
        with pytest.raises(NotFound, match="expired"):
            client.poll("abc", 3, timeout=10)
        assert mock.calls.last.request.url.params["version"] == "3" and mock.calls.last.request.url.params["timeout"] == "10"
        with pytest.raises(InvalidRequest) as caught:
            client.poll("abc", 3, timeout=99)
        assert [e.parameter for e in caught.value.errors] == ["timeout"]
        with pytest.raises(NotFound):
            client.delete_search("abc")
        with pytest.raises(NotFound):  # an expired session is not retried as if the connection had dropped
            list(client.follow_search("abc"))


class CutStream(httpx.SyncByteStream):
    """An event stream that delivers some events, then loses its connection."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.ReadError("connection reset by peer")


def test_a_cut_event_stream_resumes_with_last_event_id_and_loses_nothing() -> None:
    first, second, last = diff(1, 0), diff(2, 1), diff(3, 2, done=True)
    sse = {"content-type": "text/event-stream"}
    with respx.mock(base_url=BASE, assert_all_called=True) as mock, Client(BASE) as client:
        route = mock.get("/api/v1/searches/abc/events").mock(side_effect=[
            httpx.Response(200, headers=sse, stream=CutStream([event(first), event(second)[:20]])),  # cut mid-event
            httpx.Response(200, headers=sse, content=event(second) + event(last)),
        ])  # fmt: skip
        got = list(client.follow_search("abc"))
        assert [d.version for d in got] == [1, 2, 3], "the half-delivered event was asked for again, not lost or doubled"
        assert "last-event-id" not in route.calls[0].request.headers
        assert route.calls[1].request.headers["last-event-id"] == "1"


def test_a_broker_that_stays_away_ends_in_a_transport_error() -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/searches/abc").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(TransportError):
            list(client.follow_search("abc", via="poll"))
        assert mock.calls.call_count == 6  # the first try and five reconnections


async def test_the_async_client_raises_the_same_session_errors() -> None:
    async with AsyncClient(BASE) as client:
        with respx.mock(base_url=BASE) as mock:
            mock.post("/api/v1/searches").mock(return_value=FULL)
            mock.get("/api/v1/searches/abc").mock(return_value=EXPIRED)
            mock.get("/api/v1/searches/abc/events").mock(return_value=EXPIRED)
            with pytest.raises(TooManyRequests) as caught:
                await client.start_search("x")
            assert caught.value.retry_after_s == 7
            with pytest.raises(NotFound):
                await client.poll("abc")
            with pytest.raises(NotFound):
                async for _ in client.follow_search("abc"):
                    pass


def _final(diffs: list[SearchDiff]) -> ProgressiveState:
    state = ProgressiveState()
    for d in diffs:
        state.apply(d)
    assert state.done and diffs[-1].done and all(not d.done for d in diffs[:-1])
    return state


@pytest.mark.parametrize("via", ["sse", "poll"])
def test_sync_progressive_search_against_the_live_broker(tmp_path: Path, via: str) -> None:
    with ThreadedBroker(tmp_path) as broker, Client(broker.url) as client:
        diffs = list(client.progressive_search(isbn=KOKORO, via=via, poll_timeout=5))
        state = _final(diffs)
        blocking = client.search(isbn=KOKORO)
    assert [w.model_dump() for w in state.ranked()] == [w.model_dump() for w in blocking.works]
    assert sorted(state.statuses) == sorted(t.member for t in blocking.targets)
    assert [d.version for d in diffs] == sorted({d.version for d in diffs}), "versions only go up, each once"


async def test_async_progressive_search_against_the_live_broker(tmp_path: Path) -> None:
    async with live_broker(tmp_path) as broker, AsyncClient(broker.url) as client:
        for via in ("sse", "poll"):
            diffs = [d async for d in client.progressive_search(author="夏目漱石", via=via, poll_timeout=5)]
            state = _final(diffs)
            blocking = await client.search(author="夏目漱石")
            assert [w.work_id for w in state.ranked()] == [w.work_id for w in blocking.works]
            assert len(state.statuses) == 13
        created = await client.start_search("こころ")
        await client.delete_search(created.id)
        with pytest.raises(NotFound):
            await client.poll(created.id)
