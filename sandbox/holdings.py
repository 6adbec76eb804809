"""Which works each member holds, how it catalogued them, and where its copies are.

Every decision is a hash of (catalogue seed, member id, work) rather than a draw
from a shared random stream, so adding a member or resizing the catalogue does
not reshuffle what the other members hold.

Holding rule: a member holds a work when
    unit_hash(seed, "hold", member.id, work.holding_key) < member.catalogue_share * work.popularity
so a popular work (popularity 3-4) is held by almost every member and a long-tail
one (popularity ~0.1) by one or none. Volumes of a set share `holding_key`: a
library holds the whole set or none of it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from datetime import date, timedelta

from yokodan import Availability
from sandbox.catalogue import Catalogue
from sandbox.spec import SandboxBranch, SandboxMember, StatusStyle
from sandbox.works import CatalogueWork

# Each member system words copy status its own way (DOMAIN.md lists the words
# seen in the seeds). "legacy" uses rarer words (予約確保, 搬送中 …) and one a
# broker cannot map with confidence (別置: "shelved apart", loanable or not
# depending on the library), so unknown-word handling gets exercised.
STATUS_VOCABULARIES: dict[StatusStyle, dict[Availability, str]] = {
    "standard": {
        Availability.AVAILABLE: "貸出可",
        Availability.ON_LOAN: "貸出中",
        Availability.LIBRARY_USE_ONLY: "禁帯出",
        Availability.NOT_FOR_LOAN: "禁帯出",
        Availability.RESERVED: "予約中",
        Availability.IN_TRANSIT: "予回送",
        Availability.ON_ORDER: "注文中",
        Availability.CLOSED: "休館中",
    },
    "tos": {
        Availability.AVAILABLE: "利用可能",
        Availability.ON_LOAN: "貸出中",
        Availability.LIBRARY_USE_ONLY: "館内のみ",
        Availability.NOT_FOR_LOAN: "館内のみ",
        Availability.RESERVED: "予受待",
        Availability.IN_TRANSIT: "回送中",
        Availability.ON_ORDER: "整理中",
        Availability.CLOSED: "休館中",
    },
    "plain": {
        Availability.AVAILABLE: "在庫",
        Availability.ON_LOAN: "貸出中",
        Availability.LIBRARY_USE_ONLY: "禁帯",
        Availability.NOT_FOR_LOAN: "研究用",
        Availability.RESERVED: "取置中",
        Availability.IN_TRANSIT: "移動中",
        Availability.ON_ORDER: "受入中",
        Availability.CLOSED: "休館",
    },
    "legacy": {
        Availability.AVAILABLE: "書架",
        Availability.ON_LOAN: "貸出中",
        Availability.LIBRARY_USE_ONLY: "禁帯出",
        Availability.NOT_FOR_LOAN: "別置",
        Availability.RESERVED: "予約確保",
        Availability.IN_TRANSIT: "搬送中",
        Availability.ON_ORDER: "発注中",
        Availability.CLOSED: "休館中",
    },
}

# Shares of copy states among circulating copies that are not on loan.
_SHELF_STATES: tuple[tuple[Availability, float], ...] = (
    (Availability.AVAILABLE, 0.80),
    (Availability.LIBRARY_USE_ONLY, 0.06),
    (Availability.NOT_FOR_LOAN, 0.02),
    (Availability.RESERVED, 0.05),
    (Availability.IN_TRANSIT, 0.04),
    (Availability.ON_ORDER, 0.03),
)
_CLOSED_BRANCH_SHARE = 0.05  # a few branches are closed (relocation, refurbishment)
_NO_READING_SHARE = 0.05  # records a member catalogued without the 880 reading
_ISBN_FORMS = ("13", "10", "hyphenated13")


@dataclass(frozen=True, slots=True)
class Copy:
    branch: SandboxBranch  # owning (home) branch
    at_branch: SandboxBranch  # where the copy is now; differs while in transit (952$b)
    barcode: str
    call_number: str
    collection: str
    availability: Availability  # what the status word means: ground truth for tests
    status_word: str  # the member's own word, as sent in 852$z / 952$z
    due_date: date | None


@dataclass(frozen=True, slots=True)
class HeldWork:
    """One member's record of one work: its own local id, ISBN form, reading and copies."""

    work: CatalogueWork
    position: int  # the work's index in the catalogue: result order, as Zebra returns insertion order
    local_id: str  # 001
    isbn_text: str | None  # 020$a exactly as this member writes it
    title_reading: str | None  # None where this member left the reading out
    copies: tuple[Copy, ...]


_SCALE = 2.0**-32
_MAX_COPIES = 3


def unit_hashes(*parts: object, count: int) -> tuple[float, ...]:
    """`count` (at most 16) independent stable floats in [0, 1) from one digest of the parts.

    Python's hash() is salted per process, so a real digest is needed; one digest
    serves a whole group of decisions because building 60 members hashes a lot.
    """
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=4 * count).digest()
    return tuple(value * _SCALE for value in struct.unpack(f">{count}I", digest))


def unit_hash(*parts: object) -> float:
    return _unit(":".join(map(str, parts)))


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") * _SCALE


def holdings_for(member: SandboxMember, catalogue: Catalogue, as_of: date | None = None) -> list[HeldWork]:
    """The works `member` holds, in catalogue order, each with 1-3 copies.

    `as_of` anchors due dates (default today), so loans look current in the demo.
    """
    today = as_of or date.today()
    seed = catalogue.seed
    member_number = int(unit_hash(seed, "member-number", member.id) * 900) + 100
    # The central library (first branch) holds half the copies and stays open: closing it by
    # chance would leave a one-library member (Aomori's prefectural library) with nothing on the shelf.
    closed = {b.id for b in member.branches[1:] if unit_hash(seed, "closed", member.id, b.id) < _CLOSED_BRANCH_SHARE}
    held: list[HeldWork] = []
    barcode_serial = 0
    hold_prefix = f"{seed}:hold:{member.id}:"  # = unit_hash(seed, "hold", member.id, key), inlined: the hot loop
    for position, work in enumerate(catalogue.works):
        if _unit(hold_prefix + work.holding_key) >= member.catalogue_share * work.popularity:
            continue
        # Four record decisions, then three per possible copy (branch, state, due date).
        rolls = unit_hashes(seed, "record", member.id, work.work_id, count=4 + 3 * _MAX_COPIES)
        second, third, reading_roll, isbn_roll = rolls[:4]
        # Popular works and big systems buy extra copies.
        copy_count = (
            1
            + (second < min(0.7, 0.15 * work.popularity + 0.3 * member.catalogue_share))
            + (third < min(0.4, 0.08 * work.popularity + 0.15 * member.catalogue_share))
        )
        shelf_mark = call_number(work)
        copies = []
        for index in range(copy_count):
            barcode_serial += 1
            copy_rolls = rolls[4 + 3 * index : 7 + 3 * index]
            barcode = f"2{member_number:03d}{barcode_serial:08d}"
            copies.append(_copy(member, work, copy_rolls, barcode, shelf_mark, closed, today))
        held.append(
            HeldWork(
                work=work,
                position=position,
                local_id=f"{member_number}{position:07d}",
                isbn_text=_isbn_text(member, work, isbn_roll),
                title_reading=work.title_reading if member.readings and reading_roll >= _NO_READING_SHARE else None,
                copies=tuple(copies),
            )
        )
    return held


def _copy(
    member: SandboxMember,
    work: CatalogueWork,
    rolls: tuple[float, ...],
    barcode: str,
    shelf_mark: str,
    closed_branches: set[str],
    today: date,
) -> Copy:
    branch_roll, state_roll, due_roll = rolls
    branches = member.branches
    # The first branch is the central library: it holds about half of all copies.
    if branch_roll < 0.5 or len(branches) == 1:
        branch = branches[0]
    else:
        branch = branches[1 + int((branch_roll - 0.5) * 2 * (len(branches) - 1))]
    availability = _availability(work, state_roll)
    if availability is Availability.AVAILABLE and branch.id in closed_branches:
        availability = Availability.CLOSED
    at_branch = branch
    if availability is Availability.IN_TRANSIT and len(branches) > 1:
        at_branch = branches[(branches.index(branch) + 1) % len(branches)]
    due = today + timedelta(days=1 + int(due_roll * 21)) if availability is Availability.ON_LOAN else None
    return Copy(
        branch=branch,
        at_branch=at_branch,
        barcode=barcode,
        call_number=shelf_mark,
        collection=work.collection,
        availability=availability,
        status_word=STATUS_VOCABULARIES[member.status_style][availability],
        due_date=due,
    )


def _availability(work: CatalogueWork, roll: float) -> Availability:
    if work.collection == "参考":  # reference works never leave the building
        return Availability.LIBRARY_USE_ONLY
    on_loan = min(0.6, 0.15 + 0.1 * work.popularity)  # popular books are out more often
    if roll < on_loan:
        return Availability.ON_LOAN
    roll = (roll - on_loan) / (1 - on_loan)
    for state, share in _SHELF_STATES:
        if roll < share:
            # Only recent books can still be on order.
            return Availability.AVAILABLE if state is Availability.ON_ORDER and work.year < 2020 else state
        roll -= share
    return Availability.AVAILABLE


def call_number(work: CatalogueWork) -> str:
    """NDC class / author mark [/ volume], as Japanese libraries label spines: "913.6/ナ/上"."""
    if work.language != "jpn" and work.authors:
        mark = re.sub(r"[^A-Za-z]", "", work.authors[0].heading)[:3].upper()
    elif work.authors and work.authors[0].reading:
        mark = work.authors[0].reading[0]
    else:
        mark = (work.title_reading or work.title)[0]
    parts = [work.ndc, mark]
    if work.volume:
        parts.append(re.sub(r"^第|巻$", "", work.volume))
    return "/".join(parts)


def _isbn_text(member: SandboxMember, work: CatalogueWork, roll: float) -> str | None:
    """The ISBN the way this member's cataloguers write it (re-cataloguing variation)."""
    if work.isbn is None or member.isbn_style == "none":
        return None
    style: str = member.isbn_style
    if style == "mixed":
        style = _ISBN_FORMS[int(roll * len(_ISBN_FORMS))]
    if style == "10":
        return work.isbn.isbn10 or work.isbn.isbn13
    if style == "hyphenated13":
        return work.isbn.hyphenated
    return work.isbn.isbn13
