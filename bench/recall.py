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
every record is searched through the broker's SearchService (SRU connectors, member
registry, dedup and the second stage, as a consortium's search runs) by its title as printed
(punctuation and all), by its ISBN-13 and by its title reading. Printed:

  recall     per query kind and per member variation: copies returned / copies held
  dedup      pairwise precision of the works the answers cluster into (index.dedup)
  second     second-stage requests per member that came back empty (issue 11 item 2)
  status     share of returned copies whose status word classified (not `unknown`)

ISBN -> a copy without an ISBN, and reading -> a member without readings, are found only
by the second-stage look-ups (rows labelled "needs second stage").

Usage: python3 bench/recall.py [--concurrency 8] [--page-size 100] [--no-second-stage] [--as-typed]
(--no-second-stage: the consortium's [search] second_stage = false, for comparison;
--as-typed sends each whitespace word as typed through the bare connector, the query building
before issue 11, for comparison)
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

from yokodan import Availability, Record, SearchQuery, TargetState, Work  # noqa: E402
from yokodan import isbn as isbn_tools  # noqa: E402
from broker.consortium import Consortium  # noqa: E402
from broker.members import MemberRegistry  # noqa: E402
from broker.search import SearchService  # noqa: E402
from broker.second_stage import came_back_empty  # noqa: E402
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


def consortium_of(members: list[Member], page_size: int, *, second_stage: bool) -> Consortium:
    """The benchmark's members as a consortium file would describe them (one branch each)."""
    return Consortium.model_validate({
        "id": "recall-bench", "name": "recall benchmark", "kind": "mutual_use",
        "search": {"second_stage": second_stage},
        "members": [
            {
                "id": m.variation.member, "name": m.variation.member, "municipality": m.variation.member,
                "connector": {
                    "kind": "sru", "endpoint": m.server.sru_url if m.server else "", "timeout_s": 10,
                    "max_records": page_size, "status_words": m.variation.consortium_words,
                    "options": {"cql_indexes": INDEXES},
                },
                "branches": [{
                    "id": f"{m.variation.member}/chuo", "name": "中央図書館", "municipality": m.variation.member,
                    "codes": ["中央図書館"], "pickup_point": True, "accepts_returns": True,
                    "coordinates_note": "benchmark member",
                }],
            }
            for m in members
        ],
    })  # fmt: skip


async def run(
    rows: list[dict[str, str]],
    members: list[Member],
    service: SearchService,
    concurrency: int,
    *,
    as_typed: bool = False,
    show_missing: bool = False,
) -> None:
    gate = asyncio.Semaphore(concurrency)
    # (kind, member, label) -> [found, held]
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    pairs = Counter[str]()
    status = Counter[tuple[str, bool]]()
    errors = Counter[str]()
    second = Counter[str]()  # empty answers, second-stage requests sent, records kept
    unreachable = Counter[str]()  # missed copies of queries that found no work at all
    requests = 0

    async def ask_bare(member: Member, query: SearchQuery) -> list[Record]:
        assert member.connector is not None
        try:
            return (await member.connector.search_cql(as_typed_cql(query), maximum=query.page_size)).records
        except ConnectorError as exc:
            errors[f"{member.variation.member}: {exc.reason}"] += 1
            return []

    async def search(query: SearchQuery) -> list[Work]:
        """The consortium's search (SearchService); --as-typed: the bare connectors, clustered here."""
        nonlocal requests
        async with gate:
            if as_typed:
                requests += len(members)
                clusterer = WorkClusterer()
                for records in await asyncio.gather(*(ask_bare(m, query) for m in members)):
                    clusterer.add(records)
                return clusterer.works()
            outcome = await service.search(query)
        for target in outcome.statuses:
            requests += 1
            if target.state is not TargetState.OK:
                errors[f"{target.member}: {target.reason}"] += 1
            if came_back_empty(target):
                second["empty answers"] += 1
            if target.second_stage is not None:
                sent = target.second_stage.state is not TargetState.SKIPPED
                second["requests"] += sent
                requests += sent
                second["records kept"] += target.second_stage.merged
                second["records dropped"] += target.second_stage.returned - target.second_stage.merged
                if target.second_stage.state not in (TargetState.OK, TargetState.SKIPPED):
                    errors[f"{target.member} (second stage): {target.second_stage.reason}"] += 1
        return outcome.works

    async def one(kind: str, row: dict[str, str]) -> None:
        query = query_for(kind, row)
        bib = row["ndl_bib_id"]
        if query is None:
            return
        works = await search(query)
        found_ids = {r.local_id for w in works for r in w.records}
        for work in works:  # dedup precision: pairs of copies of one base record
            bases = [r.local_id.split("-")[-1] for r in work.records]
            n = len(bases)
            pairs["predicted"] += n * (n - 1) // 2
            pairs["true"] += sum(c * (c - 1) // 2 for c in Counter(bases).values())
        target_works = [w for w in works if any(r.local_id.endswith(f"-{bib}") for r in w.records)]
        for member in members:
            if bib not in member.held:
                continue
            name = member.variation.member
            found = f"{name}-{bib}" in found_ids
            if kind == "isbn":
                label = "with ISBN" if bib in member.has_isbn else "no ISBN on record (needs second stage)"
            elif kind == "reading":
                label = "with reading" if member.variation.readings else "no readings (needs second stage)"
            else:
                label = "all"
            tally[(kind, name, label)][0] += found
            if not found:
                # No work found anywhere: no member record matched, so there is no title to ask by.
                unreachable[kind] += not works
                if show_missing:
                    print("missing", kind, name, label, row["title"][:60], "|", [w.title[:30] for w in works])
            tally[(kind, name, label)][1] += 1
            if found and kind == "title":
                record = next(r for w in works for r in w.records if r.local_id == f"{name}-{bib}")
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
        if every_held - every_found:
            print(f"    missed copies whose query found no work at any member (nothing to ask by): "
                  f"{unreachable[kind]} of {every_held - every_found}")  # fmt: skip
    if as_typed or not service.second_stage:
        print("second stage: off, 0 extra requests")
    else:
        per_empty = second["requests"] / second["empty answers"] if second["empty answers"] else 0.0
        print(f"second stage: {second['requests']} extra requests for {second['empty answers']} empty member answers "
              f"({per_empty:.3f} per empty answer, at most 1 by construction); records kept "
              f"{second['records kept']}, dropped by dedup {second['records dropped']}")  # fmt: skip
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
                consortium = consortium_of(members, args.page_size, second_stage=not args.no_second_stage)
                service = SearchService(MemberRegistry(consortium, http))
                await run(rows, members, service, args.concurrency, as_typed=args.as_typed, show_missing=args.show_missing)
        finally:
            for member in members:
                if member.server is not None:
                    member.server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--page-size", type=int, default=100, help="maximumRecords per request")
    parser.add_argument("--show-missing", action="store_true", help="print every copy not found")
    parser.add_argument("--no-second-stage", action="store_true", help="[search] second_stage = false")
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
