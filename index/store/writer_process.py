"""The broker's side of the writer process: start it, feed it, notice when it dies, restart it.

`ChildCommitter` is the "process" writer's Committer (writer.py): the write-behind thread
calls `commit` as it would commit itself, and this module sends the works to a writer
process (writer_child.py) and blocks on the pipe until it answers, which costs the broker
no GIL while the engine indexes and merges. The broker keeps searching the directory; each
answer is followed by the write-behind's `on_commit` (the back end's refresh).

Faults, each with a named, counted outcome:
- the process dies (kill -9, out of memory) during a commit: `WriterCrashed` is raised
  (the write-behind puts the batch back once), one warning is logged, and a new process
  is started at once; its first act is to clear the dead one's lock and debris;
- it dies while idle: noticed within `tick_s` by the write-behind's tick, same restart;
- it dies again before committing anything (and within _STABLE_S of its start): each
  restart waits twice as long as the one before (from _FIRST_BACKOFF_S up to
  _MAX_BACKOFF_S), so a process that cannot start does not spin;
- it cannot open the index ("unusable"): a UnionIndexError for the batch, and a restart
  after the back-off.
Searches never depend on the writer process: the broker reads the last committed state.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import pickle
import time
from collections.abc import Callable, Mapping
from typing import Any

from index.store import writer_child
from index.store.backend import IndexBackend
from index.store.committer import CommitReport
from index.store.results import UnionIndexError, WriterCrashed
from index.store.writer_wire import CHUNK_WORKS, decode, encode, encode_works
from yokodan import Work

__all__ = ["ChildCommitter"]

log = logging.getLogger(__name__)

_CONTEXT = multiprocessing.get_context("spawn")  # never fork a process with an event loop and threads
_STABLE_S = 10.0  # a process that lived this long (or committed) resets the back-off
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 10.0
_START_TIMEOUT_S = 60.0  # spawn + imports take ~0.4 s; a loaded machine can take many times that


class ChildCommitter:
    """Commits through a writer process. Build it in the write-behind's owner; use it from its thread."""

    tick_s: float | None = 1.0

    def __init__(
        self,
        open_backend: Callable[[], IndexBackend],
        *,
        max_works: int,
        max_age_s: float,
        before_commit: Callable[[], None] | None,
        on_restart: Callable[[], None] | None,
        name: str,
    ) -> None:
        """`open_backend` and `before_commit` run in the writer process and must be picklable
        (module-level functions, or functools.partial of them): a TypeError says so now.
        `on_restart` runs (in the write-behind thread) when a restarted process is ready: a
        commit may have landed just before its predecessor died."""
        for what, value in (("open_backend", open_backend), ("before_commit", before_commit)):
            try:
                pickle.dumps(value)
            except Exception as exc:
                raise TypeError(f"the writer process needs a picklable {what} (a module-level function): {exc}") from exc
        self._args = (open_backend, max_works, max_age_s, before_commit)
        self._on_restart = on_restart
        self._name = name
        self._process: Any = None  # multiprocessing.Process (spawn context)
        self._conn: multiprocessing.connection.Connection | None = None
        self._ready = False
        self._started_at = 0.0
        self._backoff_s = 0.0
        self._quick_deaths = 0  # deaths in a row of processes that never committed
        self._healthy = False  # this process committed at least once
        self._not_before = 0.0  # monotonic time before which no restart is attempted
        self._unit = 0
        self._closed = False
        self.pid: int | None = None
        self.restarts = 0
        self._start()

    # --- Committer -----------------------------------------------------------------------

    def commit(self, works: Mapping[str, Work], municipalities: Mapping[str, str], now: float) -> CommitReport:
        batch = list(works.values())
        frames = encode_works(batch)
        chunks = -(-len(batch) // CHUNK_WORKS)
        header = {"op": "commit", "now": now, "municipalities": dict(municipalities), "chunks": chunks}
        return self._exchange(header, frames, f"a commit of {len(batch)} works")

    def sweep(self, now: float) -> CommitReport:
        return self._exchange({"op": "sweep", "now": now}, iter(()), "an age sweep")

    def tick(self) -> None:
        """While idle: notice a dead process and start its successor (not waiting for it)."""
        if self._closed:
            return
        if self._process is not None and not self._process.is_alive():
            self._died("while idle")
        if self._process is None and time.monotonic() >= self._not_before:
            self._start()

    def close(self, timeout: float) -> None:
        """Ask the process to stop (it finishes nothing: the queue was drained before), join it."""
        self._closed = True
        process, conn = self._process, self._conn
        if process is None:
            return
        deadline = time.monotonic() + timeout
        try:
            if conn is not None:
                conn.send_bytes(encode({"op": "stop"}))
                while time.monotonic() < deadline:
                    remaining = deadline - time.monotonic()
                    ready = multiprocessing.connection.wait([conn, process.sentinel], remaining)
                    if not ready or process.sentinel in ready and conn not in ready:
                        break
                    if decode(conn.recv_bytes())["op"] == "stopped":
                        break
        except (OSError, EOFError):
            pass  # it is already gone
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("union index writer process %s (pid %s) did not stop; killing it", self._name, process.pid)
            self.kill()
        self._forget()

    def kill(self) -> None:
        """SIGKILL the process and wait for it (safe from any thread: close() when the writer is stuck)."""
        process = self._process
        if process is not None and process.is_alive():
            process.kill()
            process.join(5)

    # --- the process ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise UnionIndexError(f"union index {self._name}: the writer is closed")
        ours, theirs = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(
            target=writer_child.serve, args=(theirs, *self._args), name=f"union-index-writer:{self._name}", daemon=True
        )
        process.start()
        if self._started_at:
            self.restarts += 1
        theirs.close()  # ours alone now: EOF on it means the process is gone
        self._process, self._conn, self._ready = process, ours, False
        self._started_at = time.monotonic()
        self.pid = process.pid

    def _ensure_ready(self) -> None:
        if self._process is not None and not self._process.is_alive():
            self._died("before a commit")
        if self._process is None:
            wait_s = self._not_before - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)  # the write-behind thread; the back-off after quick deaths
            self._start()
        if self._ready:
            return
        message = self._receive(_START_TIMEOUT_S, "while starting")
        if message["op"] == "unusable":
            self._died("unusable", error=message.get("error"))
            raise UnionIndexError(f"union index {self._name}: the writer process cannot open it: {message.get('error')}")
        if message["op"] != "ready":
            raise UnionIndexError(f"union index {self._name}: the writer process said {message['op']!r} before 'ready'")
        self._ready = True
        if self.restarts and self._on_restart is not None:
            self._on_restart()

    def _exchange(self, header: dict[str, Any], frames: Any, doing: str) -> CommitReport:
        self._ensure_ready()
        self._unit += 1
        header["unit"] = self._unit
        conn = self._conn
        assert conn is not None
        try:
            conn.send_bytes(encode(header))
            for frame in frames:  # serialised chunk by chunk: the GIL is free between them
                conn.send_bytes(frame)
        except OSError:
            self._died(f"during {doing}")
            raise WriterCrashed(f"union index {self._name}: the writer process died during {doing}") from None
        message = self._receive(None, f"during {doing}")
        if message.get("unit") != self._unit:
            raise UnionIndexError(f"union index {self._name}: the writer process answered {message!r} for unit {self._unit}")
        if message["op"] == "failed":
            raise UnionIndexError(f"union index {self._name}: the writer process failed: {message.get('error')}")
        self._healthy = True  # it works: a death after this restarts at once
        return CommitReport(int(message["commits"]), int(message["evicted"]), message.get("commit_ms"))

    def _receive(self, timeout: float | None, doing: str) -> dict[str, Any]:
        conn, process = self._conn, self._process
        assert conn is not None and process is not None
        ready = multiprocessing.connection.wait([conn, process.sentinel], timeout)
        if conn in ready:
            try:
                return decode(conn.recv_bytes())
            except (EOFError, OSError):
                pass
        elif not ready:
            self.kill()
            self._died(doing, error=f"no answer within {timeout:.0f} s")
            raise UnionIndexError(f"union index {self._name}: the writer process did not answer {doing}")
        self._died(doing)
        raise WriterCrashed(f"union index {self._name}: the writer process died {doing}")

    def _died(self, doing: str, *, error: str | None = None) -> None:
        """Log one line, forget the process and schedule its successor (with the back-off)."""
        process = self._process
        if process is not None:
            process.join(5)
        code = process.exitcode if process is not None else None
        how = error or (f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}")
        if self._healthy or time.monotonic() - self._started_at >= _STABLE_S:
            self._quick_deaths = 0  # it had worked: restart at once
        backoff_s = 0.0 if not self._quick_deaths else min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2 ** (self._quick_deaths - 1))
        self._quick_deaths += 1
        self._healthy = False
        self._backoff_s = backoff_s
        self._not_before = time.monotonic() + self._backoff_s
        log.warning(
            "union index writer process %s (pid %s) %s %s; restarting it%s",
            self._name, self.pid, how, doing,
            f" in {self._backoff_s:.1f} s" if self._backoff_s else "",
        )  # fmt: skip
        self._forget()
        if not self._closed and self._backoff_s == 0.0:
            self._start()

    def _forget(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn, self._ready, self.pid = None, None, False, None
