"""The pieces of a search session on their own: works serialised once per change (equal to the views
the API always sent), and the change log's diffs: inserted, updated, removed/merged, reset."""

from __future__ import annotations

import gc

import orjson

from broker.members import MemberRegistry
from broker.search import SearchService
from broker.sessions.changelog import SearchSession, progressive_homes, record_homes
from broker.sessions.lines import StreamLines
from broker.sessions.work_bytes import SerialisedWork, WorkBytes
from broker.views import DisplayNames, status_view, work_view
from connectors import HttpClient
from tests.conftest import SandboxedConsortium
from yokodan import SearchQuery, TargetState, TargetStatus
from yokodan.client import ProgressiveState
from yokodan.wire import SearchDiff


async def test_work_bytes_equal_the_work_view_and_reuse_unchanged_members(okayama_sandbox: SandboxedConsortium, http: HttpClient) -> None:
    consortium = okayama_sandbox.consortium
    names = DisplayNames.of(consortium)
    serial, lines = WorkBytes(names), StreamLines(names)
    visits = 0
    async for event in SearchService(MemberRegistry(consortium, http)).stream(SearchQuery(author="夏目漱石")):
        for work in event.works:
            assert serial.serialise(work).data == orjson.dumps(work_view(work, names)), work.work_id
            visits += len({r.member for r in work.records})
        line = orjson.loads(lines.line(event))
        # A member line lists its turn's works on the turn's last line (broker.search.SearchEvent.turn_changed).
        sent = event.works if event.final else event.turn_works if event.turn_changed is not None else []
        assert line["works"] == [work_view(w, names) for w in sent]
        if event.answer is not None:
            assert line["target"] == status_view(event.answer.status, names)
        if event.final:
            assert line["type"] == "final" and line["targets"] == [status_view(s, names) for s in event.statuses]
    # A work's unchanged members were not serialised again: far fewer fragments built than member visits.
    assert visits > 3 * serial.built > 0


def _work(work_id: str, data: str, *members: str) -> SerialisedWork:
    """A work whose members' holdings are `{"member": m, "d": <its letter in data>}` (`data` spells each version)."""
    holdings = tuple(orjson.dumps({"member": m, "d": d}) for m, d in zip(members, data))
    header = orjson.dumps({"work_id": work_id, "d": data})[:-1]
    return SerialisedWork(work_id, header, tuple((m, (d,), 0) for m, d in zip(members, data)), holdings)


def _status(member: str, state: TargetState = TargetState.OK) -> tuple[TargetStatus, bytes]:
    status = TargetStatus(member=member, state=state)
    return status, orjson.dumps({**status.model_dump(mode="json"), "member_name": member})


def _diff(session: SearchSession, since: int) -> dict:
    return orjson.loads(session.diff(since))


def test_diffs_since_each_version_and_the_settled_answer_removing_merged_works() -> None:
    session = SearchSession("s", keep_versions=100)
    session.start([_status("a", TargetState.PENDING), _status("b", TargetState.PENDING), _status("c", TargetState.PENDING)])
    session.apply([_work("w1", "a", "a"), _work("w2", "a", "a")], [_status("a")])  # v1
    session.apply([_work("w1", "ab", "a", "b"), _work("w3", "b", "b")], [_status("b")])  # v2
    assert session.version == 2
    d = _diff(session, 1)
    assert [w["work_id"] for w in d["inserted"]] == ["w3"]
    assert [(u["work"]["work_id"], u["members"]) for u in d["updated"]] == [("w1", ["b"])]
    assert [s["member"] for s in d["finished"]] == ["b"] and d["running"] == ["c"] and not d["done"]
    assert not session.done and session.diff(1) is session.diff(1), "one assembled diff per version and `since`, shared"
    # Settled: w2 and w3 merged into w1 (w3 was born after version 1: to a client at 1 it is no news).
    session.finish([_work("w1", "abc", "a", "b", "c")], {("a", "2"): "w1", ("b", "3"): "w1"},
                   {"w2": ("a", "2"), "w3": ("b", "3"), "w1": ("a", "1")}, [_status("c")])  # fmt: skip
    d = _diff(session, 1)
    assert d["removed"] == [{"work_id": "w2", "merged_into": "w1"}]
    assert [(u["work"]["work_id"], u["members"]) for u in d["updated"]] == [("w1", ["b", "c"])]
    assert d["inserted"] == [] and d["done"] and d["order"] == ["w1"] and d["running"] == []
    d = _diff(session, 2)
    assert sorted(r["work_id"] for r in d["removed"]) == ["w2", "w3"]
    full = _diff(session, 0)
    assert [w["d"] for w in full["inserted"]] == ["abc"] and full["removed"] == [] and not full["reset"]
    assert sorted(s["member"] for s in full["finished"]) == ["a", "b", "c"]
    SearchDiff.model_construct(**full)  # the shape the wire model names


def test_a_version_the_log_no_longer_keeps_gets_the_whole_state() -> None:
    session = SearchSession("s", keep_versions=2)
    session.start([_status("a", TargetState.PENDING)])
    for n in range(5):
        session.apply([_work(f"w{n}", "x", "a")], [])
    assert not session.keeps(1) and session.keeps(3) and session.keeps(5) and not session.keeps(9)
    assert _diff(session, 1)["reset"] and len(_diff(session, 1)["inserted"]) == 5
    assert not _diff(session, 3)["reset"] and [w["work_id"] for w in _diff(session, 3)["inserted"]] == ["w3", "w4"]
    session.apply([_work("w4", "x", "a")], [])  # no change: no version
    assert session.version == 5


def test_an_update_carries_the_holdings_of_the_members_that_changed_alone_and_the_settled_answer_whole() -> None:
    session = SearchSession("s", keep_versions=100)
    session.start([_status(m, TargetState.PENDING) for m in "abc"])
    session.apply([_work("w1", "a", "a")], [_status("a")])  # v1
    session.apply([_work("w1", "ab", "a", "b")], [_status("b")])  # v2
    session.apply([_work("w1", "aBc", "a", "b", "c")], [_status("c")])  # v3: b's holdings changed, c joined
    holding = {m: {"member": m.lower(), "d": m} for m in "abcB"}
    assert _diff(session, 2)["updated"] == [
        {"members": ["b", "c"], "whole": False, "work": {"work_id": "w1", "d": "aBc", "holdings": [holding["B"], holding["c"]]}}
    ]
    assert _diff(session, 1)["updated"] == _diff(session, 2)["updated"], "b changed twice since 1: its holdings once, as now"
    # Settled: dedup regrouped the members (same holdings, new order): the update is the whole work.
    session.finish([_work("w1", "cBa", "c", "b", "a")], {}, {}, [])
    assert _diff(session, 2)["updated"] == [
        {"members": ["b", "c"], "whole": True, "work": {"work_id": "w1", "d": "cBa", "holdings": [holding[m] for m in "cBa"]}}
    ]
    assert _diff(session, 3)["updated"] == [
        {"members": [], "whole": True, "work": {"work_id": "w1", "d": "cBa", "holdings": [holding[m] for m in "cBa"]}}
    ]


async def test_a_client_applying_partial_updates_holds_every_work_as_the_broker_has_it(
    okayama_sandbox: SandboxedConsortium, http: HttpClient
) -> None:
    """Real member answers through WorkBytes and a session; the client polls every other version."""
    consortium = okayama_sandbox.consortium
    names = DisplayNames.of(consortium)
    serial, session, state = WorkBytes(names), SearchSession("s", keep_versions=100), ProgressiveState()
    views: dict[str, dict] = {}  # every work as the broker has it now
    homes: dict[str, tuple[str, str]] = {}
    partial = 0
    async for event in SearchService(MemberRegistry(consortium, http)).stream(SearchQuery(author="夏目漱石")):
        if event.final:
            ranked = event.works
            session.finish([serial.serialise(w) for w in ranked], record_homes(ranked), homes, [])
            diff = SearchDiff.model_validate_json(session.diff(state.version))
            assert diff.updated and all(u.whole for u in diff.updated)
            state.apply(diff)
            assert [w.model_dump(mode="json") for w in state.ranked()] == [work_view(w, names) for w in ranked]
            break
        homes.update(progressive_homes(event.works))
        session.apply([serial.serialise(w) for w in event.works], [])
        views.update((w.work_id, work_view(w, names)) for w in event.works)
        if session.version % 2:
            continue
        diff = SearchDiff.model_validate_json(session.diff(state.version))
        for update in diff.updated:
            assert not update.whole and [h.member for h in update.work.holdings] == update.members
            partial += update.work.member_count - len(update.members)
        state.apply(diff)
        assert {k: w.model_dump(mode="json") for k, w in state.works.items()} == views
    assert partial > 0, "some updates left out holdings the client already had"


async def test_a_done_sessions_works_log_and_statuses_are_no_work_for_the_garbage_collector() -> None:
    """Thousands of open sessions: each full collection walks what they hold, except untracked containers."""

    async def done_session(n: int) -> SearchSession:
        session = SearchSession(f"s{n}", keep_versions=100)
        members = [f"m{i:02d}" for i in range(30)]
        session.start([_status(m, TargetState.PENDING) for m in members])
        for i, member in enumerate(members):  # 30 versions, each touching the 40 works
            session.apply([_work(f"w{k}", "x" * (i + 1), *members[: i + 1]) for k in range(40)], [_status(member)])
        session.finish([_work(f"w{k}", "x" * 30, *members) for k in range(40)], {}, {}, [])
        full = session.diff(0)
        await session.pack()
        assert session.diff(0) == full, "packed, the same state"
        return session

    gc.collect()
    before = len(gc.get_objects())
    sessions = [await done_session(n) for n in range(40)]
    gc.collect()
    gc.collect()  # a tuple is untracked once what it holds is: the outer ones on the second pass
    per_session = (len(gc.get_objects()) - before) / len(sessions)
    assert all(session.done and len(session._log) == 31 for session in sessions)
    # The session and its few containers: not its 40 works, 31 versions and 30 statuses.
    assert per_session < 12, per_session
