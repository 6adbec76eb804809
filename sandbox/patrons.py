"""Test patrons of the shipped consortia, loaded into the simulated members' hold ledgers.

Each patron is a person with cards at some members (Okayama mutual use: one card per
municipality; a prefectural hub: the hub's card; Takarazuka: the city's card, also issued to
residents of its neighbours). The cards cover what eligibility has to see through
`lookup_patron`: loans of books and of audiovisual material counted apart, an overdue loan, an
expired card, a card unused for 2 years, holds already placed, a card at its hold limit, and
people who lack a card at a member (for card-gap advice).

A card is described by counts (`sandbox.spec.PatronCard`); `enrol_cards` picks concrete titles
from the member's own holdings when the sandbox starts, deterministically per card number.
Card numbers start with 2 (the ledger's default cards are 10000001…10000010) and are unique
across the consortia, so a patron id and member id are enough to find one.

These PINs are test data for simulated member systems; the broker never stores them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from yokodan import Availability, MaterialType
from sandbox.accounts import HoldLedger, SandboxPatron
from sandbox.holdings import HeldWork
from sandbox.spec import PatronCard

TEST_PIN = "2468"

# Profiles: what a card looks like, by the behaviour it is there to exercise.
READER = dict(book_loans=2, av_loans=1, book_holds=1)
AV_READER = dict(book_loans=0, av_loans=2, book_holds=2, av_holds=1)
OVERDUE = dict(book_loans=2, overdue=1, book_holds=1)
EXPIRED = dict(card_expired=True)
INACTIVE = dict(inactive=True)
CLEAN = dict()
# The sandbox ledger refuses the 11th hold (sandbox.accounts.MAX_HOLDS); the consortium's own
# limit (Aomori: 20) is policy data the broker applies, not the simulated ILS.
AT_HOLD_LIMIT = dict(book_loans=1, book_holds=10)


_CONSORTIUM_DIGITS = {"okayama": 1, "kumamoto": 2, "aomori": 3, "takarazuka": 4}


@dataclass(frozen=True)
class TestPatron:
    __test__ = False  # test data, not a pytest test class

    id: str
    consortium: str
    home_municipality: str
    about: str
    cards: Mapping[str, PatronCard]  # member id -> card
    preferred_pickup: tuple[str, ...] = field(default=())  # consortium branch ids, best first

    def card(self, member_id: str) -> PatronCard:
        try:
            return self.cards[member_id]
        except KeyError:
            raise KeyError(f"test patron {self.id} has no card at {member_id}") from None


def _patron(
    number: int,
    consortium: str,
    patron_id: str,
    home: str,
    about: str,
    cards: Mapping[str, Mapping[str, object]],
    preferred_pickup: tuple[str, ...] = (),
) -> TestPatron:
    # 2 C PP MM 01: consortium digit, patron number, member position in this patron's card list.
    prefix = f"2{_CONSORTIUM_DIGITS[consortium]}{number:02d}"
    return TestPatron(
        id=patron_id,
        consortium=consortium,
        home_municipality=home,
        about=about,
        cards={
            member: PatronCard(card_number=f"{prefix}{i:02d}01", pin=TEST_PIN, **profile)  # type: ignore[arg-type]
            for i, (member, profile) in enumerate(cards.items(), start=1)
        },
        preferred_pickup=preferred_pickup,
    )


TEST_PATRONS: dict[str, tuple[TestPatron, ...]] = {
    "okayama": (
        _patron(1, "okayama", "okayama-reader", "岡山市",
                "books and AV on loan at 岡山市 and the prefectural library; no 津山市 card (card-gap advice)",
                {"okayama-city": READER, "okayama-pref": AV_READER}, ("okayama-city/chuo",)),
        _patron(2, "okayama", "okayama-overdue", "津山市",
                "an overdue loan at 津山市 (blocks holds there), clean at the prefectural library",
                {"tsuyama-city": OVERDUE, "okayama-pref": CLEAN}),
        _patron(3, "okayama", "okayama-expired", "玉野市", "an expired 玉野市 card",
                {"tamano-city": EXPIRED, "okayama-pref": READER}),
        _patron(4, "okayama", "okayama-inactive", "岡山市", "a 岡山市 card unused for 2 years",
                {"okayama-city": INACTIVE}),
        _patron(5, "okayama", "okayama-at-limit", "瀬戸内市", "10 holds waiting at 瀬戸内市",
                {"setouchi-city": AT_HOLD_LIMIT, "okayama-pref": CLEAN}),
        _patron(6, "okayama", "okayama-kibichuo", "吉備中央町", "a 吉備中央町 reader (JSF WebOPAC)",
                {"kibichuo-town": READER}),
    ),
    "kumamoto": (
        _patron(1, "kumamoto", "kumamoto-reader", "宇土市", "the hub's card, books and AV", {"kumamoto-pref": READER},
                ("kumamoto-pref/uto",)),
        _patron(2, "kumamoto", "kumamoto-overdue", "天草市", "an overdue loan", {"kumamoto-pref": OVERDUE}),
        _patron(3, "kumamoto", "kumamoto-expired", "人吉市", "an expired card", {"kumamoto-pref": EXPIRED}),
        _patron(4, "kumamoto", "kumamoto-at-limit", "荒尾市", "10 holds waiting", {"kumamoto-pref": AT_HOLD_LIMIT}),
    ),
    "aomori": (
        _patron(1, "aomori", "aomori-reader", "弘前市", "the hub's card, books and AV", {"aomori-pref": READER},
                ("aomori-pref/hirosaki-toshokan",)),
        _patron(2, "aomori", "aomori-overdue", "八戸市", "an overdue loan", {"aomori-pref": OVERDUE}),
        _patron(3, "aomori", "aomori-expired", "むつ市", "an expired card", {"aomori-pref": EXPIRED}),
        _patron(4, "aomori", "aomori-av", "青森市", "AV loans and an AV hold", {"aomori-pref": AV_READER}),
        _patron(5, "aomori", "aomori-at-limit", "十和田市", "10 holds waiting (Aomori's own limit is 20)",
                {"aomori-pref": AT_HOLD_LIMIT}),
    ),
    "takarazuka": (
        _patron(1, "takarazuka", "takarazuka-resident", "宝塚市", "a resident with books and AV",
                {"takarazuka-city": READER}, ("takarazuka-city/nishi",)),
        _patron(2, "takarazuka", "takarazuka-neighbour", "西宮市",
                "a resident of a reciprocal neighbour city (seed 004)", {"takarazuka-city": AV_READER}),
        _patron(3, "takarazuka", "takarazuka-overdue", "宝塚市", "an overdue loan", {"takarazuka-city": OVERDUE}),
        _patron(4, "takarazuka", "takarazuka-expired", "伊丹市", "missed the 3-yearly renewal",
                {"takarazuka-city": EXPIRED}),
    ),
}


def patron_named(consortium: str, patron_id: str) -> TestPatron:
    for patron in TEST_PATRONS.get(consortium, ()):
        if patron.id == patron_id:
            return patron
    raise KeyError(f"no test patron {patron_id!r} in consortium {consortium!r}")



def cards_for(consortium: str, member_id: str) -> list[PatronCard]:
    """The test cards one member of one shipped consortium issues (none for an unknown consortium)."""
    return [p.cards[member_id] for p in TEST_PATRONS.get(consortium, ()) if member_id in p.cards]


class NotEnoughTitles(ValueError):
    """The member's holdings cannot give a card the loans or holds it describes."""


def enrol_cards(ledger: HoldLedger, held: list[HeldWork], cards: list[PatronCard]) -> None:
    """Issue each card at the member: pick its loans and holds from `held`, place the holds.

    Holds are placed before the blocks are set (an overdue or expired card may hold titles from
    before it became blocked), through the ledger's own `place`, so every rule still applies.
    """
    books = [h for h in held if h.work.material_type is MaterialType.BOOK]
    av = [h for h in held if h.work.material_type is MaterialType.AUDIOVISUAL]
    pickup = next(iter(sorted(ledger.pickup_codes)), None)
    for card in cards:
        rotation = zlib.crc32(card.card_number.encode())
        book_ids = _titles(books, card.book_loans + card.book_holds, rotation, "books", card, ledger.member_id)
        av_ids = _titles(av, card.av_loans + card.av_holds, rotation, "audiovisual titles", card, ledger.member_id)
        patron = SandboxPatron(card.card_number, card.pin)
        patron.loans = book_ids[: card.book_loans] + av_ids[: card.av_loans]
        ledger.enrol(patron)
        to_hold = book_ids[card.book_loans :] + av_ids[card.av_loans :]
        if to_hold and pickup is None:
            raise NotEnoughTitles(f"{ledger.member_id}: card {card.card_number} has holds but the member has no pickup point")
        for n, record_id in enumerate(to_hold, start=1):
            ledger.place(card.card_number, record_id, None, pickup, f"test-patron-{card.card_number}-{n:02d}")  # type: ignore[arg-type]
        patron.overdue = min(card.overdue, len(patron.loans))
        patron.card_expired = card.card_expired
        patron.inactive = card.inactive


_NOT_HOLDABLE = {Availability.LIBRARY_USE_ONLY, Availability.NOT_FOR_LOAN}


def _titles(pool: list[HeldWork], count: int, rotation: int, what: str, card: PatronCard, member: str) -> list[str]:
    holdable = [h for h in pool if h.copies and not all(c.availability in _NOT_HOLDABLE for c in h.copies)]
    if count > len(holdable):
        raise NotEnoughTitles(f"{member}: card {card.card_number} needs {count} {what}, the member holds {len(holdable)}")
    if not count:
        return []
    start = rotation % len(holdable)
    ordered = holdable[start:] + holdable[:start]
    return [h.local_id for h in ordered[:count]]
