"""Search sessions over real sockets: the Okayama sandbox members (some slow, some hanging) behind a
broker app; long-poll diffs, SSE with Last-Event-ID, reset, expiry, the cap, admission, bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from broker.admission import AdmissionSettings
from broker.api import GATE_KEY, build_app
from broker.sessions.routes import SESSIONS_KEY
from broker.sessions.settings import SessionSettings, SessionSettingsError
from broker.sessions.sse import frame
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from yokodan.client import ProgressiveState
from yokodan.errors import YokodanError
from yokodan.wire import SearchDiff

QUERY = {"author": "夏目漱石"}
SLOW = "tsuyama-city"


@dataclass
class Broker:
    url: str
    app: web.Application
    http: aiohttp.ClientSession

    async def create(self, body: dict[str, Any] | None = None) -> str:
        async with self.http.post(f"{self.url}/api/v1/searches", json=body or QUERY) as response:
            assert response.status == 201, await response.text()
            created = await response.json()
            assert response.headers["Location"] == created["links"]["self"] == f"/api/v1/searches/{created['id']}"
            assert created["version"] == 0 and created["links"]["events"] == f"/api/v1/searches/{created['id']}/events"
            return created["id"]

    async def poll(self, search_id: str, version: int = 0, timeout: float = 0) -> tuple[SearchDiff, bytes]:
        params = {"version": str(version), "timeout": str(timeout)}
        async with self.http.get(f"{self.url}/api/v1/searches/{search_id}", params=params) as response:
            raw = await response.read()
            assert response.status == 200, raw
            return SearchDiff.model_validate_json(raw), raw


@asynccontextmanager
async def serve(sandboxed: SandboxedConsortium, *, sessions: SessionSettings | None = None,
                admission: AdmissionSettings | None = None) -> AsyncIterator[Broker]:  # fmt: skip
    app = build_app(sandboxed.consortium, sessions=sessions, admission=admission)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as http:
            yield Broker(f"http://{host}:{port}", app, http)
    finally:
        await runner.cleanup()


async def blocking(broker: Broker, params: dict[str, str] = QUERY) -> dict[str, Any]:
    async with broker.http.get(f"{broker.url}/api/v1/search", params=params) as response:
        assert response.status == 200
        return await response.json()


async def test_long_poll_diffs_add_up_to_the_blocking_answer(okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults(SLOW, FaultConfig(delay_ms=600))
    async with serve(okayama_sandbox) as broker:
        search_id = await broker.create()
        state, version, inserted, diffs = ProgressiveState(), 0, [], []
        started = time.perf_counter()
        while not state.done:
            diff, _ = await broker.poll(search_id, version, timeout=10)
            assert diff.version > version or diff.done, "a long-poll answers only with news"
            assert diff.since == version and not diff.reset
            inserted += [w.work_id for w in diff.inserted]
            assert not {w.work_id for w in diff.inserted} & set(state.works), "inserted means new to this client"
            assert {u.work.work_id for u in diff.updated} <= set(state.works), "updated means the client has it"
            state.apply(diff)
            diffs.append((time.perf_counter() - started, diff))
            version = diff.version
        answer = await blocking(broker)
    assert len(inserted) == len(set(inserted)), "no work is inserted twice"
    # The slow member's answer came in a diff of its own, after the others had been delivered.
    slow_at = next(at for at, d in diffs if SLOW in {s.member for s in d.finished})
    assert slow_at >= 0.5 and any(at < 0.5 and d.inserted for at, d in diffs)
    assert [d.running for _, d in diffs][-1] == [] and SLOW in diffs[0][1].running
    # The settled, ranked page is the blocking search's, work for work.
    assert [w.model_dump(mode="json") for w in state.ranked()] == answer["works"]
    assert sorted(state.statuses) == sorted(t["member"] for t in answer["targets"])
    assert {s.state.value for s in state.statuses.values()} == {"ok"}
    assert any(d.updated and d.updated[0].members for _, d in diffs), "updates name the members whose holdings changed"


async def test_version_zero_gets_everything_and_an_old_version_the_whole_state_with_reset(okayama_sandbox: SandboxedConsortium) -> None:
    async with serve(okayama_sandbox, sessions=SessionSettings(keep_versions=3)) as broker:
        search_id = await broker.create()
        done, _ = await broker.poll(search_id, 0, timeout=0)
        while not done.done:
            done, _ = await broker.poll(search_id, done.version, timeout=10)
        full, full_raw = await broker.poll(search_id, 0)
        assert not full.reset and full.done and full.since == 0
        assert [w.work_id for w in full.inserted] and sorted(w.work_id for w in full.inserted) == sorted(full.order or [])
        assert len(full.finished) == 13 and full.updated == [] and full.removed == []
        old, _ = await broker.poll(search_id, 1)  # the log keeps only the last 3 versions
        assert old.reset and old.since == 1 and old.inserted == full.inserted and old.finished == full.finished
        future, _ = await broker.poll(search_id, done.version + 5)  # a version this session never had
        assert future.reset and future.inserted == full.inserted
        recent, _ = await broker.poll(search_id, done.version - 1)
        assert not recent.reset and recent.version == done.version
        same, _ = await broker.poll(search_id, done.version, timeout=5)  # done: answers at once, empty
        assert (same.inserted, same.updated, same.finished, same.done) == ([], [], [], True)
        _, again = await broker.poll(search_id, 0)
        assert again is not full_raw and again == full_raw
        session = broker.app[SESSIONS_KEY].get(search_id)
        assert session.task is not None
        await session.task  # it packs the works of the done session off the loop, then ends
        assert session.nbytes() < len(full_raw) / 2, "a done session keeps its works compressed"
        _, packed = await broker.poll(search_id, 0)
        assert packed == full_raw


async def test_a_long_poll_waits_for_the_next_answer_and_no_longer_than_its_timeout(okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults(SLOW, FaultConfig(delay_ms=700))
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))  # keeps the search open to its 2 s deadline
    async with serve(okayama_sandbox) as broker:
        search_id = await broker.create()
        version = 0
        while True:  # every fast member in
            diff, _ = await broker.poll(search_id, version, timeout=5)
            version = diff.version
            if diff.running and set(diff.running) <= {SLOW, "setouchi-city"} and len(diff.running) == 2:
                break
        started = time.perf_counter()
        diff, _ = await broker.poll(search_id, version, timeout=5)
        waited = time.perf_counter() - started
        assert [s.member for s in diff.finished] == [SLOW] and diff.running == ["setouchi-city"]
        assert 0.1 < waited < 1.9  # the slow member answers at 0.7 s; the hung one would end the search at 2 s
        started = time.perf_counter()
        quiet, _ = await broker.poll(search_id, diff.version, timeout=0.3)  # the hung member says nothing
        assert 0.25 < time.perf_counter() - started < 1.6
        assert (quiet.version, quiet.inserted, quiet.finished, quiet.done) == (diff.version, [], [], False)


async def test_sse_sends_every_diff_and_resumes_exactly_after_last_event_id(okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults(SLOW, FaultConfig(delay_ms=400))
    async with serve(okayama_sandbox) as broker:
        search_id = await broker.create()
        url = f"{broker.url}/api/v1/searches/{search_id}/events"
        async with broker.http.get(url) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            text = (await response.read()).decode()
        events = [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                  for block in text.split("\r\n\r\n") if "data: " in block]  # fmt: skip
        diffs = [SearchDiff.model_validate_json(e["data"]) for e in events]
        assert [e["event"] for e in events] == ["diff"] * len(diffs)
        assert [int(e["id"]) for e in events] == [d.version for d in diffs] and diffs[-1].done
        assert [d.since for d in diffs] == [0] + [d.version for d in diffs[:-1]], "each event follows the one before"
        state = ProgressiveState()
        for diff in diffs:
            state.apply(diff)
        # Resuming after the second event gives exactly what came after it, as one diff, the same bytes a long-poll gets.
        mid = diffs[1].version
        async with broker.http.get(url, headers={"Last-Event-ID": str(mid)}) as response:
            resumed = (await response.read()).decode()
        _, polled = await broker.poll(search_id, mid)
        assert resumed == frame(diffs[-1].version, polled).decode()
        resumed_state = ProgressiveState()
        for diff in diffs[:2]:
            resumed_state.apply(diff)
        resumed_state.apply(SearchDiff.model_validate_json(polled))
        assert resumed_state.ranked() == state.ranked() and resumed_state.statuses == state.statuses
        final = (await blocking(broker))["works"]
        assert [w.model_dump(mode="json") for w in state.ranked()] == final


async def test_an_idle_session_expires_and_its_fan_out_is_cancelled(okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    settings = SessionSettings(idle_expiry_s=1.0, sweep_interval_s=0.05)
    async with serve(okayama_sandbox, sessions=settings) as broker:
        search_id = await broker.create()
        store, gate = broker.app[SESSIONS_KEY], broker.app[GATE_KEY]
        session = store.get(search_id)
        await asyncio.sleep(0.2)
        assert gate.running == 1 and not session.task.done(), "the fan-out goes on while nobody polls"
        await asyncio.sleep(1.3)
        assert session.task.cancelled() and gate.running == 0 and store.expired == 1, "members released at expiry"
        async with broker.http.get(f"{broker.url}/api/v1/searches/{search_id}") as response:
            problem = await response.json()
            assert response.status == 404 and response.content_type == "application/problem+json"
            assert "expired" in problem["detail"]
        # A client that keeps polling keeps its session (for well past the idle time).
        kept = await broker.create()
        for _ in range(25):
            await broker.poll(kept, 0)
            await asyncio.sleep(0.1)
        assert store.get(kept) is not None


async def test_delete_ends_the_session_and_its_fan_out(okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    async with serve(okayama_sandbox) as broker:
        search_id = await broker.create()
        session = broker.app[SESSIONS_KEY].get(search_id)
        waiting = asyncio.create_task(broker.http.get(f"{broker.url}/api/v1/searches/{search_id}/events"))
        await asyncio.sleep(0.2)
        async with broker.http.delete(f"{broker.url}/api/v1/searches/{search_id}") as response:
            assert response.status == 204
        assert session.task.cancelled() and broker.app[GATE_KEY].running == 0
        stream = await asyncio.wait_for(waiting, 5)
        await asyncio.wait_for(stream.read(), 5)  # the listener's stream ends with the session
        stream.release()
        for method in ("get", "delete"):
            async with broker.http.request(method, f"{broker.url}/api/v1/searches/{search_id}") as response:
                assert response.status == 404
        async with broker.http.get(f"{broker.url}/api/v1/searches/{search_id}/events") as response:
            assert response.status == 404 and response.content_type == "application/problem+json"


async def test_the_cap_on_open_sessions_answers_429_with_retry_after(okayama_sandbox: SandboxedConsortium) -> None:
    async with serve(okayama_sandbox, sessions=SessionSettings(max_sessions=2, idle_expiry_s=30)) as broker:
        first = await broker.create()
        await broker.create()
        async with broker.http.post(f"{broker.url}/api/v1/searches", json=QUERY) as response:
            problem = await response.json()
            assert response.status == 429 and response.content_type == "application/problem+json"
            assert 1 <= int(response.headers["Retry-After"]) <= 30 and "2 search sessions" in problem["detail"]
        async with broker.http.delete(f"{broker.url}/api/v1/searches/{first}"):
            pass
        await broker.create()  # a place came free


async def test_sessions_pass_the_same_admission_as_the_blocking_search(okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults("setouchi-city", FaultConfig(hang=True))
    admission = AdmissionSettings(max_searches=1, queue_wait_s=0.2, client_burst=3, client_rate_per_s=0.01)
    async with serve(okayama_sandbox, admission=admission) as broker:
        await broker.create()  # holds the only search place until the hung member's deadline
        async with broker.http.get(f"{broker.url}/api/v1/search", params=QUERY) as response:
            assert response.status == 503  # the blocking search waits for the same gate
        async with broker.http.post(f"{broker.url}/api/v1/searches", json=QUERY) as response:
            assert response.status == 503 and response.headers["Retry-After"] == "2"
        assert len(broker.app[SESSIONS_KEY]) == 1, "a refused session is not kept"
        async with broker.http.post(f"{broker.url}/api/v1/searches", json=QUERY) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1  # the token bucket is shared
            assert response.headers["RateLimit-Limit"] == "3" and response.headers["RateLimit-Remaining"] == "0"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "parameter"),
    [
        ("post", "", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ("post", "", {"json": ["q", "x"]}, "body"),
        ("post", "", {"json": {"q": "x", "shoe_size": 9}}, "shoe_size"),
        ("post", "", {"json": {"q": "  "}}, "q"),
        ("post", "", {"json": {"q": "x", "page_size": 1000}}, "page_size"),
        ("post", "", {"json": {"q": "x", "members": ["nowhere"]}}, "members"),
        ("post", "", {"json": {"q": "x", "near": "a branch that is not"}}, "near"),
        ("get", "/{id}", {"params": {"version": "-1"}}, "version"),
        ("get", "/{id}", {"params": {"timeout": "31"}}, "timeout"),
        ("get", "/{id}", {"params": {"since": "1"}}, "since"),
        ("get", "/{id}/events", {"headers": {"Last-Event-ID": "yesterday"}}, "Last-Event-ID"),
        ("get", "/{id}/events", {"params": {"version": "x"}}, "version"),
    ],
    ids=["not-json", "not-object", "unknown-field", "empty-query", "page-size", "unknown-member", "unknown-branch",
         "negative-version", "timeout-over-30", "unknown-parameter", "bad-last-event-id", "bad-version"],  # fmt: skip
)
async def test_bad_input_is_a_400_problem_naming_the_parameter(
    okayama_sandbox: SandboxedConsortium, method: str, path: str, kwargs: dict[str, Any], parameter: str
) -> None:
    async with serve(okayama_sandbox) as broker:
        search_id = await broker.create() if "{id}" in path else ""
        url = f"{broker.url}/api/v1/searches{path.format(id=search_id)}"
        async with broker.http.request(method, url, **kwargs) as response:
            problem = await response.json(content_type=None)
            assert response.status == 400 and response.content_type == "application/problem+json", problem
        assert parameter in [e["parameter"] for e in problem["errors"]]
        if method == "post":
            assert len(broker.app[SESSIONS_KEY]) == 0, "a refused body opens no session"


def test_session_settings_refuse_what_cannot_work() -> None:
    for bad in ({"max_sessions": 0}, {"idle_expiry_s": 0}, {"keep_versions": 0}, {"node": "a b"}):
        with pytest.raises(SessionSettingsError) as caught:
            SessionSettings(**bad)  # type: ignore[arg-type]
        assert isinstance(caught.value, YokodanError) and not isinstance(caught.value, ValueError)


async def test_a_node_prefix_names_the_broker_holding_the_session(okayama_sandbox: SandboxedConsortium) -> None:
    async with serve(okayama_sandbox, sessions=SessionSettings(node="node-b")) as broker:
        search_id = await broker.create()
        assert search_id.startswith("node-b.")
        diff, raw = await broker.poll(search_id, 0, timeout=5)
        assert orjson.loads(raw)["id"] == search_id == diff.id
