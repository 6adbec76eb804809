"""The hold lifecycle in the seeds' words (DOMAIN.md, Aomori's being the most complete).

submitted (予約申込) → waiting (確保待ち / 予約中, with a queue position) → secured (確保済み / 準備中)
→ in_transit (配送中) → ready (貸出可能 at the pickup branch) → collected | expired | cancelled.
Moving back is real, not an error: a walk-in borrower who takes the on-shelf copy first sends a
secured hold back to waiting, and Aomori returns secured items to waiting when a patron has ten
or more. Nothing leaves a final state; a member that says so is reported, not followed.
"""

from __future__ import annotations

from yokodan import HoldState

FINAL = frozenset({HoldState.COLLECTED, HoldState.EXPIRED, HoldState.CANCELLED})
# Where a patron may still cancel online (the seeds: only while submitted or waiting).
CANCELLABLE_ONLINE = frozenset({HoldState.SUBMITTED, HoldState.WAITING})

_ORDER = [HoldState.SUBMITTED, HoldState.WAITING, HoldState.SECURED, HoldState.IN_TRANSIT, HoldState.READY]
_BACK_TO_WAITING = frozenset({HoldState.SECURED, HoldState.IN_TRANSIT})


def may_move(current: HoldState | None, new: HoldState) -> bool:
    """Whether the ledger follows a member reporting `new` for a hold it knows as `current`."""
    if current is None or current == new:
        return True
    if current in FINAL:
        return False
    if new in FINAL:
        return True
    if new is HoldState.WAITING and current in _BACK_TO_WAITING:
        return True  # the copy went to someone else first: queue again
    return _ORDER.index(new) > _ORDER.index(current)
