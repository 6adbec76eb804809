"""Server-side state of one simulated HTML OPAC: login sessions and JSF view states.

Sessions expire `ttl_s` after login (no sliding renewal: an OPAC that times
out mid-use is the case the broker must survive) and can all be ended at once
by tests. View states are JSF's server-side form state: a POST must echo one
issued by this OPAC for the same session (or for no session, before login).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from sandbox.holdings import HeldWork

_MAX_VIEW_STATES = 2048  # JSF keeps a bounded number of views; the oldest are forgotten

# What the next hold placement does after the ledger accepted it (tests of lost answers):
# answer as if the session had expired, or never answer.
AfterHold = Literal["expire", "hang"]


@dataclass
class OpacState:
    ttl_s: float
    works: dict[str, HeldWork]  # the member's records by local id
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)  # session id -> (card, expires at)
    view_states: OrderedDict[str, str | None] = field(default_factory=OrderedDict)  # token -> session id
    hold_posts: int = 0  # hold placements received, to prove none was sent twice
    served: Counter[str] = field(default_factory=Counter)  # requests by operation ('search', 'detail' …)
    after_next_hold: AfterHold | None = None

    def open_session(self, card_number: str) -> str:
        session_id = secrets.token_hex(16)
        self.sessions[session_id] = (card_number, time.monotonic() + self.ttl_s)
        return session_id

    def card_for(self, session_id: str | None) -> str | None:
        """The card logged in under `session_id`, or None (no such session, or expired)."""
        entry = self.sessions.get(session_id or "")
        if entry is None:
            return None
        card, expires_at = entry
        if expires_at <= time.monotonic():
            del self.sessions[session_id or ""]
            return None
        return card

    def expire_all(self) -> int:
        count = len(self.sessions)
        self.sessions.clear()
        return count

    def issue_view_state(self, session_id: str | None) -> str:
        token = secrets.token_urlsafe(18)
        self.view_states[token] = session_id
        while len(self.view_states) > _MAX_VIEW_STATES:
            self.view_states.popitem(last=False)
        return token

    def view_state_ok(self, token: str | None, session_id: str | None) -> bool:
        return token is not None and token in self.view_states and self.view_states[token] == session_id
