"""Recall benchmark: find every copy however each library catalogued it (issue 11).

Builds four member catalogues from the 233 real NDL records in
../shared/data/bibliographic/ndl_jpmarc21_enju_233.csv, each catalogued its own way
(a deterministic generator: the same records, holdings and status words every run):

  ndl-copy   NDL as it is: hyphenated ISBN-13, katakana readings (880), 貸出可 / 貸出中 / 禁帯出
  isbn10     ISBN-10 only, readings kept, its own words: 利用可 / 貸出中(12/10返却予定) / 禁帯出本
  fullwidth  full-width ASCII in titles (ＥＰＵＢ, ｉＰａｄ), no readings, unhyphenated ISBN-13,
             marks ○ / × / △ of which its consortium file maps ○ and × (△ stays unknown)
  sparse     no readings, no ISBN on a third of its records (older / locally catalogued)

Each member holds ~80 % of the records (a hash of member and record). Every catalogue is
served by its own real Zebra SRU server (tests/zebra_server.py, Debian idzebra-2.0), and
every record is searched through the broker's SRU connector by its title as printed
(punctuation and all), by its ISBN-13 and by its title reading. Printed:

  recall     per query kind and per member variation: copies returned / copies held
  dedup      pairwise precision of the works the answers cluster into (index.dedup)
  status     share of returned copies whose status word classified (not `unknown`)

ISBN -> a copy without an ISBN, and reading -> a member without readings, need the
second-stage look-ups of issue 11 item 2 (not built yet): those figures are printed as
they are today and labelled so.

Usage: python3 bench/recall.py [--concurrency 8] [--page-size 100] [--as-typed]
(--as-typed sends each whitespace word as typed, the query building before issue 11, for comparison)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yokodan import Availability, Record, SearchQuery  # noqa: E402
from yokodan import isbn as isbn_tools  # noqa: E402
from connectors.errors import ConnectorError  # noqa: E402
from connectors.http import HttpClient  # noqa: E402
from connectors.settings import TargetSettings  # noqa: E402
from connectors.sru import SRUConnector, cql_term  # noqa: E402
from index.dedup import WorkClusterer  # noqa: E402
from tests.zebra_server import NDL_CSV, ZebraServer, start_zebra, zebra_available  # noqa: E402

INDEXES = {"text": "any", "title": "title", "author": "author", "isbn": "isbn", "year": "date"}
HOLD_SHARE = 0.8
QUERY_KINDS = ("title", "isbn", "reading")


@dataclass(frozen=True)
class Variation:
    member: str
    isbn_form: str  # "hyphenated13" | "13" | "10"
    readings: bool
    full_width: bool
    isbn_missing_share: float
    words: dict[Availability, str]  # the status word it writes for each state
    consortium_words: dict[str, Availability]  # what its consortium file maps


VARIATIONS = [
    Variation("ndl-copy", "hyphenated13", True, False, 0.0,
              {Availability.AVAILABLE: "貸出可", Availability.ON_LOAN: "貸出中", Availability.LIBRARY_USE_ONLY: "禁帯出"}, {}),
    Variation("isbn10", "10", True, False, 0.0,
              {Availability.AVAILABLE: "利用可", Availability.ON_LOAN: "貸出中(12/10返却予定)",
               Availability.LIBRARY_USE_ONLY: "禁帯出本"}, {}),
    Variation("fullwidth", "13", False, True, 0.0,
              {Availability.AVAILABLE: "○", Availability.ON_LOAN: "×", Availability.LIBRARY_USE_ONLY: "△"},
              {"○": Availability.AVAILABLE, "×": Availability.ON_LOAN}),
    Variation("sparse", "13", False, False, 1 / 3,
              {Availability.AVAILABLE: "在架", Availability.ON_LOAN: "貸出中", Availability.LIBRARY_USE_ONLY: "館内閲覧のみ"}, {}),
]  # fmt: skip


def unit(*parts: str) -> float:
    """A deterministic number in [0, 1) for these parts (no RNG state to keep in step)."""
    digest = hashlib.blake2b("/".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def load_rows() -> list[dict[str, str]]:
    with NDL_CSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _full_width(text: str) -> str:
    return text.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F) if chr(c).isalnum()})


def _isbn_text(row: dict[str, str], variation: Variation) -> str | None:
    isbn13 = isbn_tools.to_isbn13(row["isbn"]) if row["isbn"] else None
    if isbn13 is None or unit(variation.member, "no-isbn", row["ndl_bib_id"]) < variation.isbn_missing_share:
        return None
    if variation.isbn_form == "10":
        return isbn_tools.to_isbn10(isbn13) or isbn13
    return row["isbn"] if variation.isbn_form == "hyphenated13" and "-" in row["isbn"] else isbn13


def _subfields(tag: str, pairs: list[tuple[str, str]], ind1: str = " ", ind2: str = " ") -> str:
    inner = "".join(f'<subfield code="{code}">{escape(value)}</subfield>' for code, value in pairs if value)
    return f'<datafield tag="{tag}" ind1="{ind1}" ind2="{ind2}">{inner}</datafield>'


def marc_record(row: dict[str, str], variation: Variation) -> tuple[str, list[Availability]]:
    """One MARCXML record as this member catalogues it, and the states of its copies."""
    bib = row["ndl_bib_id"]
    year = row["year_008"] if row["year_008"].isdigit() else "    "
    title = _full_width(row["title"]) if variation.full_width else row["title"]
    main, _, rest = title.partition(" : ")
    fields = [
        f'<controlfield tag="001">{variation.member}-{bib}</controlfield>',
        f'<controlfield tag="008">230401s{year}    ja ||||g |||| ||||||jpn  </controlfield>',
    ]
    if isbn := _isbn_text(row, variation):
        fields.append(_subfields("020", [("a", isbn)]))
    heading = row["authors"].split(" | ")[0]
    readings = variation.readings and bool(row["title_kana"])
    if heading:
        fields.append(_subfields("100", [("a", heading)], "1"))
    fields.append(
        _subfields("245", [("6", "880-01" if readings else ""), ("a", main + (" :" if rest else "")), ("b", rest),
                           ("c", row["responsibility"])], "1", "0")  # fmt: skip
    )
    fields.append(_subfields("260", [("a", "東京 :"), ("b", row["publisher"]), ("c", row["year_008"])]))
    states: list[Availability] = []
    for copy in range(1 + (unit(variation.member, "copies", bib) < 0.3)):
        roll = unit(variation.member, "state", bib, str(copy))
        state = Availability.ON_LOAN if roll < 0.35 else Availability.LIBRARY_USE_ONLY if roll < 0.45 else Availability.AVAILABLE
        states.append(state)
        fields.append(_subfields("852", [("a", "中央図書館"), ("b", "一般"), ("p", f"{variation.member}-{bib}-{copy}"),
                                         ("z", variation.words[state])]))  # fmt: skip
    if readings:
        fields.append(_subfields("880", [("6", "245-01/$1"), ("a", row["title_kana"])], "1", "0"))
    return "<record><leader>00000cam a2200000zi 4500</leader>" + "".join(fields) + "</record>", states


@dataclass
class Member:
    variation: Variation
    held: dict[str, list[Availability]]  # bib id -> true states of its copies
    has_isbn: set[str]
    server: ZebraServer | None = None
    connector: SRUConnector | None = None


def build_member(rows: list[dict[str, str]], variation: Variation, workdir: Path) -> Member:
    held: dict[str, list[Availability]] = {}
    has_isbn: set[str] = set()
    records = []
    for row in rows:
        if unit(variation.member, "holds", row["ndl_bib_id"]) >= HOLD_SHARE:
            continue
        xml, states = marc_record(row, variation)
        records.append(xml)
        held[row["ndl_bib_id"]] = states
        if _isbn_text(row, variation):
            has_isbn.add(row["ndl_bib_id"])
    path = workdir / f"{variation.member}.marcxml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<collection xmlns="http://www.loc.gov/MARC21/slim">\n'
        + "\n".join(records) + "\n</collection>\n", encoding="utf-8",
    )  # fmt: skip
    member = Member(variation, held, has_isbn)
    member.server = start_zebra(workdir / variation.member, [path])
    return member


def query_for(kind: str, row: dict[str, str]) -> SearchQuery | None:
    if kind == "title":
        return SearchQuery(title=row["title"], page_size=100)
    if kind == "isbn":
        isbn13 = isbn_tools.to_isbn13(row["isbn"]) if row["isbn"] else None
        return SearchQuery(isbn=isbn13, page_size=100) if isbn13 else None
    return SearchQuery(title=row["title_kana"], page_size=100) if row["title_kana"] else None


def as_typed_cql(query: SearchQuery) -> str:
    """The query building before issue 11: each whitespace word sent as typed (for comparison)."""
    if query.isbn:
        return f"isbn={cql_term(query.isbn)}"
    return " and ".join(f"title={cql_term(word)}" for word in (query.title or "").split())


async def run(rows: list[dict[str, str]], members: list[Member], concurrency: int, *, as_typed: bool = False) -> None:
    gate = asyncio.Semaphore(concurrency)
    # (kind, member, label) -> [found, held]
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    pairs = Counter[str]()
    status = Counter[tuple[str, bool]]()
    errors = Counter[str]()
    requests = 0

    async def ask(member: Member, query: SearchQuery) -> list[Record]:
        nonlocal requests
        assert member.connector is not None
        async with gate:
            requests += 1
            try:
                if as_typed:
                    return (await member.connector.search_cql(as_typed_cql(query), maximum=query.page_size)).records
                return (await member.connector.search(query)).records
            except ConnectorError as exc:
                errors[f"{member.variation.member}: {exc.reason}"] += 1
                return []

    async def one(kind: str, row: dict[str, str]) -> None:
        query = query_for(kind, row)
        bib = row["ndl_bib_id"]
        if query is None:
            return
        answers = await asyncio.gather(*(ask(m, query) for m in members))
        clusterer = WorkClusterer()
        for records in answers:
            clusterer.add(records)
        for work in clusterer.works():  # dedup precision: pairs of copies of one base record
            bases = [r.local_id.split("-")[-1] for r in work.records]
            n = len(bases)
            pairs["predicted"] += n * (n - 1) // 2
            pairs["true"] += sum(c * (c - 1) // 2 for c in Counter(bases).values())
        target_works = [w for w in clusterer.works() if any(r.local_id.endswith(f"-{bib}") for r in w.records)]
        for member, records in zip(members, answers, strict=True):
            if bib not in member.held:
                continue
            name = member.variation.member
            found = any(r.local_id == f"{name}-{bib}" for r in records)
            if kind == "isbn":
                label = "with ISBN" if bib in member.has_isbn else "no ISBN on record (needs second stage)"
            elif kind == "reading":
                label = "with reading" if member.variation.readings else "no readings (needs second stage)"
            else:
                label = "all"
            tally[(kind, name, label)][0] += found
            tally[(kind, name, label)][1] += 1
            if found and kind == "title":
                record = next(r for r in records if r.local_id == f"{name}-{bib}")
                for holding in record.holdings:
                    status[(name, holding.availability is not Availability.UNKNOWN)] += 1
        if len(target_works) > 1:
            errors["split works (one record in two works)"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(kind, row) for kind in QUERY_KINDS for row in rows))
    elapsed = time.perf_counter() - started

    print(f"{requests} SRU requests to {len(members)} Zebra servers in {elapsed:.1f} s")
    print("recall (copies returned / copies held), per query kind and member variation:")
    for kind in QUERY_KINDS:
        found = sum(v[0] for (k, _, label), v in tally.items() if k == kind and "second stage" not in label)
        held = sum(v[1] for (k, _, label), v in tally.items() if k == kind and "second stage" not in label)
        every_found = sum(v[0] for (k, _, _), v in tally.items() if k == kind)
        every_held = sum(v[1] for (k, _, _), v in tally.items() if k == kind)
        print(f"  {kind:8s} {found / held:.4f}  ({found}/{held}) where the member's record can match; "
              f"{every_found / every_held:.4f} ({every_found}/{every_held}) of every copy held")
        for (k, name, label), (f, h) in sorted(tally.items()):
            if k == kind:
                print(f"    {name:10s} {label:42s} {f / h:.4f}  ({f}/{h})")
    print("second stage (issue 11 item 2): not built yet, 0 extra requests; the 'needs second stage' rows are today's figures")
    precision = pairs["true"] / pairs["predicted"] if pairs["predicted"] else 1.0
    print(f"dedup precision (pairs of copies of one record / pairs in one work): {precision:.4f} "
          f"({pairs['true']}/{pairs['predicted']})")  # fmt: skip
    print("status words classified (not unknown), copies found by title:")
    for member in members:
        name = member.variation.member
        known, unknown = status[(name, True)], status[(name, False)]
        print(f"    {name:10s} {known / max(1, known + unknown):.4f}  ({known}/{known + unknown})  "
              f"words {sorted(set(member.variation.words.values()))}")  # fmt: skip
    if errors:
        print("problems:", dict(errors))


async def main_async(args: argparse.Namespace) -> int:
    rows = load_rows()
    with tempfile.TemporaryDirectory(prefix="yokodan-recall-") as tmp:
        members: list[Member] = []
        try:
            for variation in VARIATIONS:
                members.append(build_member(rows, variation, Path(tmp)))
            async with HttpClient() as http:
                for member in members:
                    assert member.server is not None
                    settings = TargetSettings(
                        member=member.variation.member, kind="sru", endpoint=member.server.sru_url, timeout_s=10,
                        max_records=args.page_size, status_words=member.variation.consortium_words,
                        options={"cql_indexes": INDEXES},
                    )  # fmt: skip
                    member.connector = SRUConnector(settings, http)
                held = {m.variation.member: len(m.held) for m in members}
                print(f"{len(rows)} real NDL records; member catalogues (records held): {held}")
                await run(rows, members, args.concurrency, as_typed=args.as_typed)
        finally:
            for member in members:
                if member.server is not None:
                    member.server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--page-size", type=int, default=100, help="maximumRecords per request")
    parser.add_argument("--as-typed", action="store_true", help="send each word as typed (the query building before issue 11)")
    args = parser.parse_args()
    if not NDL_CSV.is_file():
        print(f"bench/recall.py: {NDL_CSV} not found (../shared/data beside the repository)", file=sys.stderr)
        return 2
    if not zebra_available():
        print("bench/recall.py: zebrasrv not installed (apt-get install -y idzebra-2.0 yaz)", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
