"""yokodan.client: every error the broker (or the way to it) can answer, with respx; then both clients
against the live broker over real sockets (sandbox members, the ledger mounted: tests/live_broker.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import respx

from tests.live_broker import LiveBroker, ThreadedBroker, live_broker
from tests.test_ils_rest import holdable
from yokodan.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    InvalidRequest,
    NotFound,
    Refused,
    ServerError,
    StreamFailed,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
)
from yokodan.errors import YokodanError
from yokodan.wire import CachedLine, FinalLine, MemberLine

BASE = "http://broker.test"
KOKORO = "9784101010137"
PROBLEM = {"content-type": "application/problem+json"}


def problem(status: int, title: str, detail: str, **extra: object) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return httpx.Response(status, content=orjson.dumps(body), headers=PROBLEM)


# What broker/api.py, broker/holds/routes.py and broker/ledger/routes.py send for each status.
SERVER_ERRORS = [
    (problem(400, "Invalid request", "invalid search parameters",
             errors=[{"parameter": "page_size", "detail": "Input should be less than or equal to 100"}]), InvalidRequest, None),
    (problem(401, "Login failed", "wrong card number or PIN", reason="authentication_failed"), Unauthorized, "authentication_failed"),
    (problem(404, "Not Found", "no such hold", reason="hold_not_found"), NotFound, "hold_not_found"),
    (problem(409, "Hold request refused", "this hold is being updated", reason="busy"), Conflict, "busy"),
    (problem(413, "Request body too large", "at most 65536 bytes"), ApiError, None),
    (problem(422, "Hold request refused", "call the library", reason="not_cancellable_online",
             library="岡山県立図書館", phone="086-224-1286"), Refused, "not_cancellable_online"),
    (problem(500, "Internal Server Error", "the broker failed; the error is logged"), ServerError, None),
    (problem(503, "Hold request refused", "member unreachable", reason="member_unreachable"), Unavailable, "member_unreachable"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "error_class", "reason"), SERVER_ERRORS, ids=lambda v: getattr(v, "status_code", None))
def test_each_problem_becomes_its_error_with_the_problem_fields(answer: httpx.Response, error_class: type, reason: str | None) -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/holds/h1").mock(return_value=answer)
        with pytest.raises(error_class) as caught:
            client.hold("h1")
    error = caught.value
    assert type(error) is error_class and isinstance(error, YokodanError) and not isinstance(error, ValueError)
    body = orjson.loads(answer.content)
    assert (error.status, error.title, error.detail, error.reason) == (body["status"], body["title"], body["detail"], reason)
    assert error.problem == body  # the page's parameters (library, phone …) stay reachable


def test_parameter_errors_are_typed() -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/search").mock(return_value=SERVER_ERRORS[0][0])
        with pytest.raises(InvalidRequest) as caught:
            client.search("x", page_size=1000)
        assert mock.calls.last.request.url.params["page_size"] == "1000"
    assert [(e.parameter, e.detail) for e in caught.value.errors] == [("page_size", "Input should be less than or equal to 100")]


def test_a_request_the_http_parser_refused_is_an_invalid_request_with_its_text() -> None:
    # aiohttp answers a request line over 8190 bytes itself, in text/plain (documented as such).
    answer = httpx.Response(400, text="400, message: Got more than 8190 bytes when reading")
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/search").mock(return_value=answer)
        with pytest.raises(InvalidRequest) as caught:
            client.search("あ" * 3000)
    assert caught.value.detail == "400, message: Got more than 8190 bytes when reading" and caught.value.reason is None


def test_a_proxy_error_page_is_unavailable_with_its_status() -> None:
    answer = httpx.Response(502, html="<html><body>Bad Gateway</body></html>")
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/members").mock(return_value=answer)
        with pytest.raises(Unavailable) as caught:
            client.members()
    assert caught.value.status == 502 and "Bad Gateway" in caught.value.detail


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(200, text="<html>not json</html>"), httpx.Response(200, json={"consortium": {"id": "x"}}),
     httpx.Response(204)],
    ids=["not-json", "wrong-shape", "undocumented-status"],
)  # fmt: skip
def test_an_answer_the_api_does_not_document_is_unexpected(answer: httpx.Response) -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/members").mock(return_value=answer)
        with pytest.raises(UnexpectedResponse) as caught:
            client.members()
    assert caught.value.status == answer.status_code


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")])
def test_no_answer_is_a_transport_error(failure: Exception) -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/members").mock(side_effect=failure)
        with pytest.raises(TransportError, match=type(failure).__name__):
            client.members()


def _ndjson(*lines: dict) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def test_a_stream_that_fails_after_it_began_raises_after_the_lines_before() -> None:
    error_line = {"type": "error", "status": 500, "title": "Internal Server Error", "detail": "the results above are incomplete"}
    body = _ndjson({"type": "cached", "total": 0, "works": [], "facets": None}, {"type": "member", "works": []}, error_line)
    seen = []
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        mock.get("/api/v1/search/stream").mock(return_value=httpx.Response(200, content=body, headers={"content-type": "application/x-ndjson"}))
        with pytest.raises(StreamFailed) as caught:
            for line in client.stream("こころ"):
                seen.append(line.type)
    assert seen == ["cached", "member"] and caught.value.status == 500 and "incomplete" in caught.value.detail


def test_a_malformed_stream_line_and_a_refused_stream() -> None:
    with respx.mock(base_url=BASE) as mock, Client(BASE) as client:
        route = mock.get("/api/v1/search/stream")
        route.mock(return_value=httpx.Response(200, content=b'{"type": "member", "works": [{"title": 1}]}\n'))
        with pytest.raises(UnexpectedResponse, match="StreamLine"):
            list(client.stream("x"))
        route.mock(return_value=problem(400, "Unknown member", "no member nowhere", errors=[{"parameter": "members", "detail": "nowhere"}]))
        with pytest.raises(InvalidRequest) as caught:
            list(client.stream("x", members=["nowhere"]))
        assert caught.value.errors[0].detail == "nowhere" and route.calls.last.request.url.params["members"] == "nowhere"


async def test_the_async_client_raises_the_same_errors() -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.delete("/api/v1/holds/h1").mock(return_value=SERVER_ERRORS[5][0])
        mock.get("/api/v1/search/stream").mock(side_effect=httpx.ReadTimeout("slow"))
        async with AsyncClient(BASE, token="t0k3n") as client:
            with pytest.raises(Refused) as caught:
                await client.cancel_hold("h1")
            assert caught.value.problem["phone"] == "086-224-1286"
            assert mock.calls.last.request.headers["Authorization"] == "Bearer t0k3n"
            with pytest.raises(TransportError):
                async for _ in client.stream("x"):
                    pass


def test_place_sends_one_idempotency_key_per_placement_and_a_given_one_as_is() -> None:
    hold = {"id": "h1", "member": "m", "record_id": "r", "item_id": None, "pickup_branch_id": "m/b", "outcome": "unknown",
            "state": None, "status_text": None, "queue_position": None, "ready_until": None, "promised_ready": None,
            "promised_until": None, "refusal": None, "series": None, "created_at": "t", "updated_at": "t",
            "added_by_a_newer_broker": 1}  # fmt: skip
    with respx.mock(base_url=BASE) as mock, Client(BASE, token="t") as client:
        route = mock.post("/api/v1/holds").mock(return_value=httpx.Response(202, json=hold))
        assert client.place_hold("m", "r", "m/b").outcome == "unknown"  # 202: not settled, poll hold(id)
        client.place_hold("m", "r", "m/b")
        client.place_hold("m", "r", "m/b", idempotency_key="portal-key-0001")
        keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
        sent = orjson.loads(route.calls.last.request.content)
    assert keys[0] != keys[1] and keys[2] == "portal-key-0001" and all(8 <= len(k) <= 255 for k in keys)
    assert sent == {"member": "m", "record_id": "r", "pickup_branch_id": "m/b"}


# --- against the live broker ------------------------------------------------------------------


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[LiveBroker]:
    async with live_broker(tmp_path) as live:
        yield live


async def test_async_client_against_the_live_broker(broker: LiveBroker) -> None:
    async with AsyncClient(broker.url) as client:
        found = await client.search(isbn=KOKORO)
        assert [w.isbns for w in found.works] == [[KOKORO]] and len(found.targets) == 13
        assert {t.state.value for t in found.targets} == {"ok"}
        works = await client.holdings("4-10-101013-7")  # ISBN-10 with hyphens: the same work
        assert [w.work_id for w in works] == [found.works[0].work_id]
        assert sum(len(m.branches) for m in works[0].holdings) >= 13

        lines = [line async for line in client.stream(isbn=KOKORO, members=["okayama-city", "tsuyama-city"])]
        assert [type(line) for line in lines] in ([MemberLine, MemberLine, FinalLine], [CachedLine, MemberLine, MemberLine, FinalLine])
        assert sorted(line.target.member for line in lines if isinstance(line, MemberLine)) == ["okayama-city", "tsuyama-city"]
        with pytest.raises(InvalidRequest) as caught:
            await client.search("x", members=["nowhere"])
        assert caught.value.title == "Unknown member" and [e.detail for e in caught.value.errors] == ["nowhere"]

        members = await client.members()
        assert len(members.members) == 13 and members.consortium.id == "okayama"
        plan = await client.plan_hold({"cards": [{"member": "okayama-pref", "card_number": "10000001", "pin": "1234"}]},
                                      isbn=KOKORO, today="2026-12-01")  # fmt: skip
        assert plan.plan.choice is not None and plan.plan.choice.member == "okayama-pref"
        with pytest.raises(NotFound):
            await client.plan_hold({"cards": []}, isbn="9784099999995")

        with pytest.raises(Unauthorized) as refused:
            await client.login("alpha", "10000001", "0000")
        assert refused.value.reason == "authentication_failed"
        with pytest.raises(Unauthorized):
            await client.holds()
        await client.login("alpha", "10000001", "1234")
        assert [c.card_number for c in (await client.cards()).cards] == ["…001"]
        record = holdable(broker.holds_member, 0)
        placed = await client.place_hold("alpha", record, "alpha/kita", idempotency_key="client-live-0001")
        again = await client.place_hold("alpha", record, "alpha/kita", idempotency_key="client-live-0001")
        assert (placed.outcome, placed.state.value) == ("placed", "waiting") and again.id == placed.id
        assert len(broker.holds_member.ledger.holds) == 1  # the member got one hold
        with pytest.raises(Refused) as reused:
            await client.place_hold("alpha", holdable(broker.holds_member, 1), "alpha/kita", idempotency_key="client-live-0001")
        assert reused.value.title == "Idempotency-Key reused"
        assert [h.id for h in await client.holds()] == [placed.id]
        assert [t.to.value for t in (await client.hold(placed.id)).transitions] == ["waiting"]
        moved = await client.change_pickup(placed.id, "alpha/chuo")
        assert (moved.pickup_branch_id, moved.pickup_branch_name) == ("alpha/chuo", "alpha市立中央図書館")
        assert [h.pickup_code for h in broker.holds_member.ledger.holds.values()] == ["CHUO"]  # moved at the member
        assert (await client.cancel_hold(placed.id)).state.value == "cancelled"
        with pytest.raises(Refused) as no_change:  # a finished hold's pickup stays where it was
            await client.change_pickup(placed.id, "alpha/kita")
        assert no_change.value.reason == "not_changeable_online" and no_change.value.problem["phone"] == "086-000-0000"
        with pytest.raises(NotFound):
            await client.hold("0" * 32)
        await client.logout()
        assert client.token is None
        with pytest.raises(Unauthorized):
            await client.cards()


def test_sync_client_against_the_live_broker(tmp_path: Path) -> None:
    with ThreadedBroker(tmp_path) as broker, Client(broker.url) as client:
        found = client.search("夏目漱石", page_size=5)
        assert found.query["page_size"] == 5 and found.works and all("夏目" in " ".join(w.authors) for w in found.works)
        lines = list(client.stream(isbn=KOKORO))
        assert isinstance(lines[-1], FinalLine) and len(lines[-1].targets) == 13
        assert sorted(line.target.member for line in lines if isinstance(line, MemberLine)) == sorted(m.id for m in client.members().members)
        client.login("alpha", "10000002", "1234")
        placed = client.place_hold("alpha", holdable(broker.holds_member, 2), "alpha/kita")
        assert [h.id for h in client.holds()] == [placed.id]
        assert client.cancel_hold(placed.id).state.value == "cancelled"
    with Client(broker.url, timeout=1.0) as gone, pytest.raises(TransportError):
        gone.members()  # the broker has stopped: connection refused
