"""Settings of the search sessions of one broker process (every number in one place)."""

from __future__ import annotations

from dataclasses import dataclass

from yokodan.errors import ConfigError

__all__ = ["SessionSettings", "SessionSettingsError"]


class SessionSettingsError(ConfigError):
    """A session setting that cannot be used."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    max_sessions: int = 2_000  # open sessions per process; the next POST gets 429 + Retry-After
    idle_expiry_s: float = 120.0  # a session nobody polled (and no SSE stream holds) for this long ends
    max_poll_timeout_s: float = 30.0  # the longest a long-poll waits, whatever `timeout` asks
    keep_versions: int = 512  # change-log entries kept; a client further behind gets the whole state (reset)
    sweep_interval_s: float = 1.0  # how often idle sessions are looked for
    sse_ping_s: float = 15.0  # SSE comment lines that keep proxies from closing a quiet stream
    node: str = ""  # prefix of session ids, so that a load balancer can route a poll to its node

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.keep_versions < 1:
            raise SessionSettingsError("max_sessions and keep_versions must be >= 1")
        if min(self.idle_expiry_s, self.max_poll_timeout_s, self.sweep_interval_s, self.sse_ping_s) <= 0:
            raise SessionSettingsError("idle_expiry_s, max_poll_timeout_s, sweep_interval_s and sse_ping_s must be > 0")
        if self.node and not self.node.replace("-", "").isalnum():
            raise SessionSettingsError(f"node must be letters, digits and '-': {self.node!r}")
