"""Instant + live: the union index answers first, the members replace it, and no search waits for a commit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from yokodan import SearchQuery, TargetState
from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import HttpClient
from index.store import UnionIndex
from tests.conftest import SandboxedConsortium
from tests.index_stores import IndexStore, engine, store  # noqa: F401  (fixtures: each test on whoosh and PostgreSQL)
from tests.writer_hooks import SlowCommit

COMMIT_DELAY_S = 1.5


@pytest.fixture
def slow_index(store: IndexStore, tmp_path: Path) -> Iterator[tuple[UnionIndex, SlowCommit]]:
    """A union index whose writer holds the write lock for 1.5 s before every commit."""
    committing = SlowCommit(tmp_path / "hook", COMMIT_DELAY_S)  # picklable: it runs in the writer process
    index = store.open("index", batch_delay_s=0.0, before_commit=committing)
    yield index, committing
    index.close()


async def test_live_search_never_waits_for_a_commit(
    okayama_sandbox: SandboxedConsortium, http: HttpClient, slow_index: tuple[UnionIndex, SlowCommit]
) -> None:
    index, committing = slow_index
    service = SearchService(MemberRegistry(okayama_sandbox.consortium, http), index=index)
    first = await service.search(SearchQuery(author="夏目漱石"))
    assert first.works and {s.state for s in first.statuses} == {TargetState.OK}
    assert committing.wait_committing(30), "the first search's works were handed to the writer"
    # The writer now sleeps inside a commit with the lock held; searches go on regardless.
    for query in (SearchQuery(author="夏目漱石"), SearchQuery(title="こころ")):
        started = time.perf_counter()
        outcome = await service.search(query)
        elapsed = time.perf_counter() - started
        assert outcome.works and elapsed < COMMIT_DELAY_S / 2, f"search took {elapsed:.2f} s during a commit"
    assert index.flush(timeout=10)
    assert index.stats().doc_count >= len(first.works)


async def test_stream_answers_from_the_index_first_then_live(
    okayama_sandbox: SandboxedConsortium, http: HttpClient, store: IndexStore
) -> None:
    with store.open("index", batch_delay_s=0.0) as index:
        service = SearchService(MemberRegistry(okayama_sandbox.consortium, http), index=index)
        live = await service.search(SearchQuery(author="夏目漱石"))
        assert index.flush(timeout=10)
        events = [e async for e in service.stream(SearchQuery(author="夏目漱石"))]
        cached = events[0].cached
        assert cached is not None and events[0].answer is None, "the first event is the index's answer"
        assert {c.work_id for c in cached.works} <= {w.work_id for w in live.works}
        assert cached.works and all(c.age_seconds >= 0 for c in cached.works)
        assert cached.works[0].work["title"]
        assert all(e.cached is None for e in events[1:])
        assert events[-1].final and events[-1].works, "then the live answer replaces it"
