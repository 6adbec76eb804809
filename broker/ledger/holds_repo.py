"""The holds table: intents, outcomes, leases and transitions, safe with several broker nodes.

Every write that two nodes (or a restarted node and its former self) could race on is a
compare-and-set: a lease (`lease_owner`, `lease_until`) says who may talk to the member about a
hold right now, and `version` makes a transition land once even if two pollers saw the same
member answer. PostgreSQL claims rows with `FOR UPDATE SKIP LOCKED`, so pollers on two nodes take
disjoint batches; SQLite has one writer, so its `BEGIN IMMEDIATE` does the same job.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date

from yokodan import Hold, HoldState
from yokodan.errors import YokodanError

from broker.ledger.db import Database, Transaction
from broker.ledger.records import FINISHED_STATES, HoldRow, Outcome, Transition, iso, utc_now


class IdempotencyKeyReused(YokodanError):
    """The same Idempotency-Key came with a different body (IETF draft: 422)."""


@dataclass(frozen=True, slots=True)
class NewHold:
    account_id: str
    card_id: str
    client_key: str
    fingerprint: str
    member: str
    record_id: str
    item_id: str | None
    pickup_branch_id: str
    promised_ready: date | None = None
    promised_until: date | None = None
    series_id: str | None = None
    series_position: int | None = None
    display_enc: str | None = None  # sealed by the caller, who holds the vault


# The row's columns, in HoldRow's field order (one list for SELECT, INSERT and RETURNING).
_COLUMNS = ", ".join(f.name for f in fields(HoldRow))
_UNSETTLED = f"('{Outcome.INTENT}', '{Outcome.UNKNOWN}')"


class HoldLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- placement ----------------------------------------------------------------------

    async def begin(
        self, new: NewHold, *, node: str, lease_s: float, now: float, deferred: bool = False
    ) -> tuple[HoldRow, bool]:
        """Commit the intent (leased to `node`) or find the one this key already made.

        Answers (row, created). The same key with another body raises IdempotencyKeyReused.
        """
        hold_id = secrets.token_hex(16)
        stamp = iso(utc_now())
        async with self.db.transaction() as tx:
            inserted = await tx.execute(
                f"INSERT INTO holds ({_COLUMNS}) VALUES ({', '.join('?' * len(fields(HoldRow)))}) "
                "ON CONFLICT (account_id, client_key) DO NOTHING",
                (
                    hold_id, new.account_id, new.card_id, new.client_key, new.fingerprint, new.member,
                    new.record_id, new.item_id, new.pickup_branch_id,
                    (Outcome.DEFERRED if deferred else Outcome.INTENT).value,
                    None, None, None, None, None, None, None,
                    _day(new.promised_ready), _day(new.promised_until), new.series_id, new.series_position,
                    0, None if deferred else node, None if deferred else now + lease_s, None, 0, stamp, stamp, None, None,
                    new.display_enc,
                ),
            )  # fmt: skip
            row = await tx.fetchone(
                f"SELECT {_COLUMNS} FROM holds WHERE account_id = ? AND client_key = ?", (new.account_id, new.client_key)
            )
        assert row is not None  # inserted or already there: the unique key guarantees one
        found = HoldRow.of(row)
        if found.fingerprint != new.fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
        return found, bool(inserted) and found.id == hold_id

    async def take_lease(self, hold_id: str, *, node: str, lease_s: float, now: float) -> HoldRow | None:
        """Lease an unsettled hold to `node` unless another node's lease is still running."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE holds SET lease_owner = ?, lease_until = ?, version = version + 1 "
                f"WHERE id = ? AND outcome IN {_UNSETTLED} AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)",
                (node, now + lease_s, hold_id, now, node),
            )
            row = await tx.fetchone(f"SELECT {_COLUMNS} FROM holds WHERE id = ?", (hold_id,)) if changed else None
        return HoldRow.of(row) if row else None

    async def claim_unsettled(self, *, node: str, lease_s: float, now: float, limit: int = 50) -> list[HoldRow]:
        """Intents and unknown outcomes that are due and unleased (crash leftovers, lost answers)."""
        return await self._claim(
            f"outcome IN {_UNSETTLED} AND (lease_until IS NULL OR lease_until < ?) "
            "AND (next_check_at IS NULL OR next_check_at <= ?)",
            (now, now),
            node=node,
            lease_s=lease_s,
            now=now,
            limit=limit,
        )

    async def claim_due(self, *, node: str, lease_s: float, now: float, limit: int = 200) -> list[HoldRow]:
        """Placed, unfinished holds whose next status check is due (for the poller)."""
        return await self._claim(
            f"outcome = '{Outcome.PLACED}' AND finished_at IS NULL AND next_check_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?)",
            (now, now),
            node=node,
            lease_s=lease_s,
            now=now,
            limit=limit,
        )

    async def _claim(
        self, where: str, params: Sequence[object], *, node: str, lease_s: float, now: float, limit: int
    ) -> list[HoldRow]:
        # One statement: the sub-select picks (and on PostgreSQL row-locks, skipping rows another
        # node holds) the batch, the UPDATE leases it and RETURNING answers it — no per-row round trips.
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE holds SET lease_owner = ?, lease_until = ?, version = version + 1 WHERE id IN "
                f"(SELECT id FROM holds WHERE {where} ORDER BY next_check_at LIMIT ? FOR UPDATE SKIP LOCKED) "
                # Again outside: PostgreSQL re-checks the outer WHERE (not the sub-select) against a row
                # another node changed while this statement waited for its lock.
                f"AND {where} RETURNING {_COLUMNS}",
                (node, now + lease_s, *params, limit, *params),
            )
        return sorted((HoldRow.of(row) for row in rows), key=lambda r: (r.next_check_at or 0, r.id))

    async def lease_placed(self, hold_id: str, *, node: str, lease_s: float, now: float) -> HoldRow | None:
        """Lease a placed, open hold for a patron's own action (cancel, change pickup)."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE holds SET lease_owner = ?, lease_until = ?, version = version + 1 WHERE id = ? "
                f"AND outcome = '{Outcome.PLACED}' AND finished_at IS NULL AND (lease_until IS NULL OR lease_until < ?)",
                (node, now + lease_s, hold_id, now),
            )
            row = await tx.fetchone(f"SELECT {_COLUMNS} FROM holds WHERE id = ?", (hold_id,)) if changed else None
        return HoldRow.of(row) if row else None

    async def deferred_in_series(self, series_id: str) -> list[HoldRow]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT {_COLUMNS} FROM holds WHERE series_id = ? AND outcome = '{Outcome.DEFERRED}' "
                "ORDER BY series_position",
                (series_id,),
            )
        return [HoldRow.of(row) for row in rows]

    async def release_deferred(self, hold_id: str, *, node: str, lease_s: float, now: float) -> HoldRow | None:
        """A deferred volume's turn has come: make it an intent leased to `node` (once)."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE holds SET outcome = '{Outcome.INTENT}', lease_owner = ?, lease_until = ?, version = version + 1, "
                f"updated_at = ? WHERE id = ? AND outcome = '{Outcome.DEFERRED}'",
                (node, now + lease_s, iso(utc_now()), hold_id),
            )
            row = await tx.fetchone(f"SELECT {_COLUMNS} FROM holds WHERE id = ?", (hold_id,)) if changed else None
        return HoldRow.of(row) if row else None

    async def drop_deferred(self, series_id: str, reason: str) -> int:
        """Cancelling a series: the volumes not yet placed are settled as refused, never sent."""
        stamp = iso(utc_now())
        async with self.db.transaction() as tx:
            return await tx.execute(
                f"UPDATE holds SET outcome = '{Outcome.REFUSED}', refusal_reason = ?, refusal_message = ?, "
                f"updated_at = ?, finished_at = ? WHERE series_id = ? AND outcome = '{Outcome.DEFERRED}'",
                (reason, "the series was cancelled before this volume was placed", stamp, stamp, series_id),
            )

    async def save_intent(self, hold_id: str, intent_json: str, *, node: str) -> bool:
        """Record the connector's intent before the placement is sent (only while leased to `node`)."""
        async with self.db.transaction() as tx:
            return bool(
                await tx.execute(
                    f"UPDATE holds SET intent = ? WHERE id = ? AND outcome IN {_UNSETTLED} AND lease_owner = ?",
                    (intent_json, hold_id, node),
                )
            )

    async def settle_placed(self, hold_id: str, hold: Hold, *, node: str, next_check_at: float) -> bool:
        """The member has the hold: record its id and first state (once: False if already settled)."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE holds SET outcome = ?, state = ?, member_hold_id = ?, status_text = ?, queue_position = ?, "
                f"ready_until = ?, lease_owner = NULL, lease_until = NULL, next_check_at = ?, check_failures = 0, "
                f"version = version + 1, updated_at = ? WHERE id = ? AND outcome IN {_UNSETTLED} AND lease_owner = ?",
                (
                    Outcome.PLACED.value, hold.state.value, hold.hold_id, hold.status_text, hold.queue_position,
                    _day(hold.ready_until), next_check_at, iso(utc_now()), hold_id, node,
                ),
            )  # fmt: skip
            if changed:
                await _append_transition(tx, hold_id, None, hold.state, hold.status_text or None)
        return bool(changed)

    async def settle_refused(self, hold_id: str, reason: str, message: str, *, node: str) -> bool:
        stamp = iso(utc_now())
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE holds SET outcome = ?, refusal_reason = ?, refusal_message = ?, lease_owner = NULL, "
                f"lease_until = NULL, version = version + 1, updated_at = ?, finished_at = ? "
                f"WHERE id = ? AND outcome IN {_UNSETTLED} AND lease_owner = ?",
                (Outcome.REFUSED.value, reason, message, stamp, stamp, hold_id, node),
            )
        return bool(changed)

    async def mark_unknown(self, hold_id: str, *, node: str, next_check_at: float) -> bool:
        """The answer was lost: release the lease and look the hold up at `next_check_at`."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE holds SET outcome = ?, lease_owner = NULL, lease_until = NULL, next_check_at = ?, "
                f"check_failures = check_failures + 1, version = version + 1, updated_at = ? "
                f"WHERE id = ? AND outcome IN {_UNSETTLED} AND lease_owner = ?",
                (Outcome.UNKNOWN.value, next_check_at, iso(utc_now()), hold_id, node),
            )
        return bool(changed)

    # --- lifecycle ----------------------------------------------------------------------

    async def advance(self, row: HoldRow, hold: Hold, *, node: str, next_check_at: float) -> bool:
        """Record what the member now says of a leased, placed hold; a changed state is one transition.

        A compare-and-set on `version`: a second poller holding a stale row changes nothing.
        """
        return (await self.advance_many([(row, hold, next_check_at)], node=node))[0]

    async def advance_many(self, updates: Sequence[tuple[HoldRow, Hold, float]], *, node: str) -> list[bool]:
        """`advance` for a poll pass's answers in one transaction (one commit, not one per hold)."""
        stamp = iso(utc_now())
        landed = []
        async with self.db.transaction() as tx:
            for row, hold, next_check_at in updates:
                finished = hold.state in FINISHED_STATES
                changed = await tx.execute(
                    # A member stops showing the pickup-by date once the book is collected: keep the last one.
                    "UPDATE holds SET state = ?, status_text = ?, queue_position = ?, ready_until = COALESCE(?, ready_until), "
                    "pickup_branch_id = COALESCE(?, pickup_branch_id), lease_owner = NULL, lease_until = NULL, "
                    "next_check_at = ?, check_failures = 0, version = version + 1, updated_at = ?, "
                    "finished_at = COALESCE(finished_at, ?) WHERE id = ? AND version = ? AND lease_owner = ?",
                    (
                        hold.state.value, hold.status_text, hold.queue_position, _day(hold.ready_until),
                        hold.pickup_branch_id, next_check_at, stamp, stamp if finished else None,
                        row.id, row.version, node,
                    ),
                )  # fmt: skip
                if changed and hold.state is not row.state:
                    await _append_transition(tx, row.id, row.state, hold.state, hold.status_text or None)
                landed.append(bool(changed))
        return landed

    async def release(self, row: HoldRow, *, node: str, next_check_at: float, failed: bool) -> None:
        """Give a leased hold back without news (member unreachable, in maintenance …)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE holds SET lease_owner = NULL, lease_until = NULL, next_check_at = ?, "
                "check_failures = check_failures + ? WHERE id = ? AND lease_owner = ?",
                (next_check_at, 1 if failed else 0, row.id, node),
            )

    # --- reading ------------------------------------------------------------------------

    async def get(self, account_id: str, hold_id: str) -> HoldRow | None:
        """One of this account's holds; another account's id answers None (so ids leak nothing)."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(f"SELECT {_COLUMNS} FROM holds WHERE id = ? AND account_id = ?", (hold_id, account_id))
        return HoldRow.of(row) if row else None

    async def by_id(self, hold_id: str) -> HoldRow | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchone(f"SELECT {_COLUMNS} FROM holds WHERE id = ?", (hold_id,))
        return HoldRow.of(row) if row else None

    async def list_for(self, account_id: str) -> list[HoldRow]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT {_COLUMNS} FROM holds WHERE account_id = ? ORDER BY created_at, id", (account_id,)
            )
        return [HoldRow.of(row) for row in rows]

    async def transitions(self, hold_id: str) -> list[Transition]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT hold_id, seq, from_state, to_state, member_word, at FROM transitions WHERE hold_id = ? ORDER BY seq",
                (hold_id,),
            )
        return [Transition.of(row) for row in rows]

    async def purge_finished(self, before_iso: str) -> int:
        """Delete holds finished before `before_iso` (collected, expired, cancelled, refused)."""
        async with self.db.transaction() as tx:
            return await tx.execute("DELETE FROM holds WHERE finished_at IS NOT NULL AND finished_at < ?", (before_iso,))


async def _append_transition(
    tx: Transaction, hold_id: str, from_state: HoldState | None, to_state: HoldState, word: str | None
) -> None:
    last = await tx.fetchone("SELECT MAX(seq) AS seq FROM transitions WHERE hold_id = ?", (hold_id,))
    seq = (last["seq"] if last and last["seq"] is not None else 0) + 1
    await tx.execute(
        "INSERT INTO transitions (hold_id, seq, from_state, to_state, member_word, at) VALUES (?, ?, ?, ?, ?, ?)",
        (hold_id, seq, from_state.value if from_state else None, to_state.value, word, iso(utc_now())),
    )


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None
