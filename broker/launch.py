"""Starting one search's member requests, and collecting their answers as they finish.

Without an outbound gate every member's task starts at once. With one (broker.outbound), each
member is a submission that waits in the gate as a queue entry: its task is created when the gate
grants it a slot, or a ready answer stands in for it when no slot came within its wait
(`broker_busy`, not contacted). Either way each answer arrives on `finished`, with its place in the
launch order in `order`, so the search reads them through one queue: asyncio.wait() over the
pending set would add and remove a callback on every pending task at every wake-up, O(members²)
per search.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable, Sequence
from functools import partial
from typing import Any, Generic, TypeVar

from broker.outbound import OutboundGate, Submission
from connectors import Connector

A = TypeVar("A")


class Launch(Generic[A]):
    """One search's member requests: `ask(connector)` is a member's request, `busy(connector, waited_s)`
    the answer for a member the gate had no slot for; `probes` the members whose half-open probe this
    search carries (`no_verdict(member)` when one of them is given up before an answer)."""

    def __init__(
        self,
        ask: Callable[[Connector], Coroutine[Any, Any, A]],
        busy: Callable[[Connector, float], A],
        *,
        probes: set[str],
        no_verdict: Callable[[str], None],
    ) -> None:
        self._ask = ask
        self._busy = busy
        self._probes = probes
        self._no_verdict = no_verdict
        self.finished: asyncio.Queue[asyncio.Future[A]] = asyncio.Queue()
        self.order: dict[asyncio.Future[A], int] = {}  # each answer's place in the launch order
        self.tasks: list[asyncio.Task[A]] = []
        self._waiting_probes: dict[Submission, str] = {}
        self._gate: OutboundGate | None = None
        self._flow: Hashable = object()  # this search's turn in the outbound gate's round-robin
        self._places = 0  # launch-order places handed out (further requests come after every member)

    def start_all(self, connectors: Sequence[Connector]) -> None:
        """Every member's task at once (no gate)."""
        self._places = len(connectors)
        for n, connector in enumerate(connectors):
            self._start(n, connector)

    async def submit_all(
        self, gate: OutboundGate, connectors: Sequence[Connector], wait_s: Callable[[Connector], float], *, first: int = 0
    ) -> None:
        """Each member through the gate, in order; a member waits at most `wait_s(connector)` for its slot
        (its own timer starts when its request is sent, as with the member's own slots). `first`: the
        launch-order place of the first of them, when an earlier call submitted the places before."""
        self._gate = gate
        self._places = first + len(connectors)
        began = asyncio.get_running_loop().time()
        for n, connector in enumerate(connectors, start=first):
            waited_s = wait_s(connector)
            submission = gate.submit(
                self._flow, partial(self._start_granted, n, connector), partial(self._expired, n, connector, waited_s),
                began + waited_s,
            )  # fmt: skip
            if connector.member in self._probes and not submission.done():
                self._waiting_probes[submission] = connector.member
            if n == gate.settings.burst - 1:
                # The first burst (the known-fastest members) sends before the rest are queued:
                # queueing 1,700 takes a few ms, and their answers come first.
                await asyncio.sleep(0)

    def add(self, task: asyncio.Task[A]) -> None:
        """A further request of the search (a second stage), read through the same queue."""
        self.order[task] = self._places
        self._places += 1
        task.add_done_callback(self.finished.put_nowait)

    async def close(self, extra: Sequence[asyncio.Task[A]] = ()) -> None:
        """Withdraw what still waits in the gate and cancel what still runs (a caller that stopped
        listening must leave no member running); after a complete search neither is left, and
        gathering sixty finished tasks would cost callbacks for nothing."""
        if self._gate is not None:
            for submission in self._gate.withdraw(self._flow):
                if submission in self._waiting_probes:
                    self._no_verdict(self._waiting_probes[submission])
        running = [task for task in (*self.tasks, *extra) if not task.done()]
        for task in running:
            task.cancel()
        if running:  # let the cancellations land (and their callbacks run) before the caller goes on
            await asyncio.gather(*running, return_exceptions=True)

    def _start(self, n: int, connector: Connector, slot: _GateSlot | None = None) -> asyncio.Task[A]:
        task = asyncio.create_task(self._queued(connector, slot), name=f"search:{connector.member}")
        self.tasks.append(task)
        self.order[task] = n
        if connector.member in self._probes:
            # A done callback, not an except clause in the request: a task cancelled before its
            # first step never runs its own code, and must still give its verdict.
            task.add_done_callback(partial(self._verdict_if_cancelled, connector.member))
        return task

    async def _queued(self, connector: Connector, slot: _GateSlot | None) -> A:
        """The member's request; as it ends, its task puts itself on `finished` and gives back its
        gate slot. Done callbacks would run a loop turn later, and at national scale each turn also
        builds a burst of requests (~5 ms); the search reads the task when it wakes, by when the
        task has its result. In that order, so that the search's wake-up is queued ahead of the
        request the freed slot starts (~0.3 ms to build).
        """
        try:
            return await self._ask(connector)  # made here: a task cancelled before its first step leaves no coroutine unawaited
        finally:
            self.finished.put_nowait(asyncio.current_task())  # type: ignore[arg-type]
            if slot is not None:
                slot.release()

    def _start_granted(self, n: int, connector: Connector) -> None:
        gate = self._gate
        assert gate is not None
        # The task owns the gate's slot and gives it back as it ends; a done callback gives it back
        # too, for a task cancelled before its first step (its own `finally` never runs).
        slot = _GateSlot(gate)
        self._start(n, connector, slot).add_done_callback(slot.release_after)

    def _expired(self, n: int, connector: Connector, waited_s: float) -> None:
        ready: asyncio.Future[A] = asyncio.get_running_loop().create_future()
        ready.set_result(self._busy(connector, waited_s))
        self.order[ready] = n
        self.finished.put_nowait(ready)

    def _verdict_if_cancelled(self, member: str, task: asyncio.Task[A]) -> None:
        if task.cancelled():
            self._no_verdict(member)


class _GateSlot:
    """One granted slot of the outbound gate, given back once, by whichever comes first."""

    __slots__ = ("_gate",)

    def __init__(self, gate: OutboundGate) -> None:
        self._gate: OutboundGate | None = gate

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    def release_after(self, _task: asyncio.Future[Any]) -> None:
        self.release()
