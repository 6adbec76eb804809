"""A circuit breaker per member system.

A member that has failed N times in a row is not asked again until a cool-off
has passed; then one probe request is let through (half-open). A success closes
the circuit, a failure opens it again, and a probe that ends without an answer
(its caller went away) gives no verdict: the circuit is open again with its old
reset time, so the next caller probes. This keeps a dead OPAC from costing every
search its full timeout, and keeps us from hammering a member that is struggling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"  # normal: requests flow
    OPEN = "open"  # failing: requests are skipped until the cool-off ends
    HALF_OPEN = "half_open"  # cool-off over: one probe is in flight


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_after_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_after_s > 0")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> CircuitState:
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self._state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after_s - self._clock())

    def allow(self) -> bool:
        """May a request go to the member now? Moves open -> half-open after the cool-off."""
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN and self.retry_in_s() == 0.0:
            self._state = CircuitState.HALF_OPEN
            return True  # this caller is the probe
        return False  # open, or half-open with the probe still out

    def record_success(self) -> None:
        self._state = CircuitState.CLOSED
        self.consecutive_failures = 0

    def record_no_verdict(self) -> None:
        """The probe was abandoned (cancelled) before the member answered.

        Without this the circuit would stay half-open, with no probe out, for good.
        The cool-off already passed, so the next caller is let through as the probe.
        """
        if self._state is CircuitState.HALF_OPEN:
            self._state = CircuitState.OPEN

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self._state is CircuitState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self._state = CircuitState.OPEN
            self._opened_at = self._clock()

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self._state.value,
            "consecutive_failures": self.consecutive_failures,
            "retry_in_s": round(self.retry_in_s(), 1),
        }
