"""Each work serialised once per change, as the JSON bytes of its WorkView (broker.views.work_view).

A popular work of a 60-member search changes sixty times while members answer; rebuilding its
whole view each time (every member's holdings, every copy) made the progressive path quadratic in
the members holding it. Here a work's holdings are kept as one pre-serialised fragment per member
(keyed by that member's records in the work), so a change costs the work's header and the fragment
of the member that answered; the other members' fragments are reused as bytes. A work is kept as its
header and its members' fragments, so that a diff can carry a changed work's header and the fragments
of the members that changed alone (broker.sessions.changelog). The whole bytes are equal
to `orjson.dumps(work_view(work, names))` (tests/test_work_bytes.py holds them to it), and every
poller, SSE listener and stream line shares them.

Not a general JSON-patching library: the fragments are spliced into the one fixed shape work_view
has (holdings last), which keeps this a few lines and exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from broker.views import DisplayNames, copy_view, status_view, work_description
from yokodan import Availability, Record, TargetStatus, Work

__all__ = ["SerialisedWork", "WorkBytes", "compact", "status_bytes"]

FragmentKey = tuple[str, tuple[str, ...], int]  # member, its local ids in the work, identity of the first record


@dataclass(frozen=True, slots=True)
class _Fragment:
    data: bytes  # one MemberHoldings object
    copies: int
    available: int


@dataclass(slots=True)
class _WorkParts:
    """One work's member groups as last serialised, to tell what a change added."""

    groups: dict[str, list[Record]] = field(default_factory=dict)
    keys: dict[str, FragmentKey] = field(default_factory=dict)
    fragments: dict[str, _Fragment] = field(default_factory=dict)
    copies: int = 0
    available: int = 0
    count: int = 0
    first: Record | None = None
    last: Record | None = None

    def continues(self, records: list[Record]) -> bool:
        """Whether `records` are the ones seen, in order, plus new ones at the end (checked by identity)."""
        n = self.count
        return 0 < n <= len(records) and records[0] is self.first and records[n - 1] is self.last

    def seen(self, records: list[Record]) -> None:
        self.count = len(records)
        self.first, self.last = (records[0], records[-1]) if records else (None, None)


@dataclass(frozen=True, slots=True)
class SerialisedWork:
    work_id: str
    header: bytes  # the WorkView JSON up to its holdings: `{"work_id":…,"available_copies":N` (no closing brace)
    fragments: tuple[FragmentKey, ...]  # which member holdings it is made of (what changed between two versions)
    holdings: tuple[bytes, ...]  # each member's MemberHoldings JSON, in the order of `fragments`

    @property
    def data(self) -> bytes:
        """The whole WorkView JSON."""
        return self.with_holdings(self.holdings)

    def with_holdings(self, holdings: tuple[bytes, ...] | list[bytes]) -> bytes:
        """The WorkView JSON with only these members' holdings (a diff's update carries the changed ones)."""
        return b"".join((self.header, b',"holdings":[', b",".join(holdings), b"]}"))

    def holdings_of(self, members: list[str]) -> list[bytes]:
        """The holdings of `members`, in the work's member order."""
        wanted = set(members)
        return [data for key, data in zip(self.fragments, self.holdings) if key[0] in wanted]

    def same_as(self, other: SerialisedWork) -> bool:
        return self.header == other.header and self.fragments == other.fragments

    def members_changed_since(self, earlier: SerialisedWork | None) -> list[str]:
        """Members whose holdings in this work differ from `earlier` (all of them when there is none)."""
        before = set(earlier.fragments) if earlier is not None else set()
        return list(dict.fromkeys(key[0] for key in self.fragments if key not in before))


class WorkBytes:
    """One per search: the member fragments of its works, reused across their changes."""

    def __init__(self, names: DisplayNames) -> None:
        self.names = names
        self._fragments: dict[FragmentKey, _Fragment] = {}
        self._parts: dict[str, _WorkParts] = {}
        self.built = 0  # fragments serialised (the rest were reused)

    def serialise(self, work: Work) -> SerialisedWork:
        parts = self._parts.get(work.work_id)
        records = work.records
        if parts is not None and parts.continues(records):
            new = records[parts.count :]  # a progressive work only gains records: look at those alone
        else:  # first sight, or re-ordered (the settled answer): regroup, reusing fragments by key
            parts = self._parts[work.work_id] = _WorkParts()
            new = records
        touched: dict[str, None] = {}
        for record in new:  # members in the order their first record joined, as work_view
            parts.groups.setdefault(record.member, []).append(record)
            touched[record.member] = None
        for member in touched:
            group = parts.groups[member]
            key = (member, tuple(r.local_id for r in group), id(group[0]))
            fragment = self._fragments.get(key)
            if fragment is None:
                fragment = self._fragments[key] = self._fragment(member, group)
            previous = parts.fragments.get(member)
            if previous is not None:
                parts.copies -= previous.copies
                parts.available -= previous.available
            parts.keys[member], parts.fragments[member] = key, fragment
            parts.copies += fragment.copies
            parts.available += fragment.available
        parts.seen(records)
        fragments = parts.fragments.values()
        header = orjson.dumps(
            {
                **work_description(work),
                "member_count": len(parts.groups),
                "copies": parts.copies,
                "available_copies": parts.available,
            }
        )
        return SerialisedWork(work.work_id, header[:-1], tuple(parts.keys.values()), tuple(f.data for f in fragments))

    def forget(self) -> None:
        """Drop the fragments (a finished session keeps only its works' bytes)."""
        self._fragments.clear()
        self._parts.clear()

    def _fragment(self, member: str, records: list[Record]) -> _Fragment:
        self.built += 1
        branches: dict[str, dict[str, Any]] = {}
        counts: Counter[Availability] = Counter()
        for record in records:
            for holding in record.holdings:
                key = holding.branch_id or f"?{holding.location}"
                branch = branches.get(key)
                if branch is None:
                    branch = branches[key] = {
                        "branch_id": holding.branch_id,
                        "branch_name": self.names.branches.get(holding.branch_id or "", holding.location),
                        "copies": [],
                    }
                branch["copies"].append(copy_view(holding))
                counts[holding.availability] += 1
        entry = {
            "member": member,
            "member_name": self.names.members.get(member, member),
            "local_ids": [r.local_id for r in records],
            "branches": list(branches.values()),
        }
        return _Fragment(compact(orjson.dumps(entry)), sum(counts.values()), counts.get(Availability.AVAILABLE, 0))


def compact(data: bytes) -> bytes:
    """A copy of exactly its length: orjson's result keeps its whole output buffer (about 4 KB even for a
    100-byte status, measured with tracemalloc), which a session holding thousands of them cannot afford."""
    return bytes(memoryview(data))


def status_bytes(status: TargetStatus, names: DisplayNames) -> bytes:
    """A TargetStatusView as JSON bytes (broker.views.status_view)."""
    return compact(orjson.dumps(status_view(status, names)))
