"""The writer process's side: own the engine's writer, commit what the broker sends, answer.

Started by writer_process.ChildCommitter with multiprocessing's "spawn" context (a fresh
interpreter: the broker has an event loop and threads, which must never be forked). It
opens the engine's write side (`open_backend`, e.g. WhooshBackend.open_writer, which first
clears what a killed predecessor left), answers "ready", then commits each unit with the
same LocalCommitter the thread writer uses. The broker keeps reading the directory itself.

It runs at a lower CPU priority (WRITER_NICENESS): the index is a cache written behind,
searches are what patrons wait for. With a core to spare this changes nothing; on a busy
machine the scheduler gives the broker's searches the CPU first and the commit takes longer
(bench/union_index.py measured query p99 during a 2,000-work commit both ways).

It never outlives the broker: a watchdog thread waits on multiprocessing's parent
sentinel and exits at once when the broker is gone (even mid-commit: the commit is not
visible until its TOC is renamed into place, and the next opener removes the debris), so
a killed broker leaves no process holding the index's write lock.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from typing import Any

from index.store.backend import IndexBackend
from index.store.committer import CommitReport, LocalCommitter
from index.store.writer_wire import decode, decode_works, encode
from yokodan import Work

__all__ = ["WRITER_NICENESS", "serve"]

WRITER_NICENESS = 10  # added to the broker's niceness (os.nice); 19 is the lowest priority

_ORPHANED_EXIT = 70  # EX_SOFTWARE: the broker died under us


def serve(
    conn: multiprocessing.connection.Connection,
    open_backend: Callable[[], IndexBackend],
    max_works: int,
    max_age_s: float,
    before_commit: Callable[[], None] | None,
) -> None:
    """The writer process's main function (a multiprocessing target)."""
    _exit_with_parent()
    os.nice(WRITER_NICENESS)
    try:
        backend = open_backend()
    except Exception as exc:
        conn.send_bytes(encode({"op": "unusable", "error": f"{type(exc).__name__}: {exc}"}))
        return
    try:
        committer = LocalCommitter(backend, max_works=max_works, max_age_s=max_age_s, before_commit=before_commit)
        conn.send_bytes(encode({"op": "ready", "pid": os.getpid()}))
        while True:
            try:
                message = decode(conn.recv_bytes())
            except EOFError:
                return  # the broker closed the pipe without a stop: nothing left to do
            if message["op"] == "stop":
                return
            conn.send_bytes(encode(_handle(committer, conn, message)))
    finally:
        backend.close()
        try:
            conn.send_bytes(encode({"op": "stopped"}))
        except OSError:
            pass  # the broker is gone or stopped listening


def _handle(committer: LocalCommitter, conn: multiprocessing.connection.Connection, message: dict[str, Any]) -> dict[str, Any]:
    unit = message.get("unit")
    try:
        if message["op"] == "commit":
            # Read every chunk first, so that a bad one never leaves frames unread on the pipe.
            frames = [conn.recv_bytes() for _ in range(int(message["chunks"]))]
            latest: dict[str, Work] = {}
            for frame in frames:
                for work in decode_works(frame):
                    latest.pop(work.work_id, None)  # last one wins, in submission order
                    latest[work.work_id] = work
            report = committer.commit(latest, message.get("municipalities") or {}, float(message["now"]))
        elif message["op"] == "sweep":
            report = committer.sweep(float(message["now"]))
        else:
            raise ValueError(f"unknown writer operation {message['op']!r}")
    except Exception as exc:  # the broker counts the batch as failed; the writer lives on
        return {"op": "failed", "unit": unit, "error": f"{type(exc).__name__}: {exc}"}
    return {"op": "done", "unit": unit, **_report(report)}


def _report(report: CommitReport) -> dict[str, Any]:
    return {"commits": report.commits, "evicted": report.evicted, "commit_ms": report.commit_ms}


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(_ORPHANED_EXIT)  # not sys.exit: the main thread may be deep in a commit

    threading.Thread(target=watch, name="union-index-writer-watchdog", daemon=True).start()
