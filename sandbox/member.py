"""One simulated member system at run time: its holdings, search, record cache and faults.

Built once when the app starts; a request then costs a cached CQL evaluation over the process's
corpus of distinct records (sandbox/corpus.py) and a join of cached record bytes, so 60 members
answering 20 records each do not make the sandbox the bottleneck of a benchmark.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from datetime import date
from functools import lru_cache

from sandbox.accounts import HoldLedger
from sandbox.catalogue import Catalogue
from sandbox.corpus import CORPUS
from sandbox.corpus import matching as corpus_matching
from sandbox.cql import SearchFields
from sandbox.holdings import HeldWork, holdings_for
from sandbox.marc import dublin_core, marcxml
from sandbox.spec import FaultConfig, SandboxMember
from sandbox.works import CatalogueWork

_RESULT_CACHE_SIZE = 256


def search_fields(held: HeldWork) -> SearchFields:
    """What Zebra would index for this record: 245 (+ its 880 reading), 1XX/7XX, 020, 008 date."""
    return _search_fields(held.work, held.title_reading, held.isbn_text is not None)


# Members differ only in the reading and ISBN they keep, so one entry serves many members.
@lru_cache(maxsize=16384)
def _search_fields(work: CatalogueWork, title_reading: str | None, with_isbn: bool) -> SearchFields:
    titles = [work.title, f"{work.title} {work.volume}" if work.volume else "", title_reading or ""]
    authors = [name for a in work.authors for name in (a.heading, a.reading or "")]
    isbns = [form for form in (work.isbn.isbn13, work.isbn.isbn10) if form] if with_isbn and work.isbn else []
    return SearchFields.build(
        titles=titles,
        authors=authors,
        isbns=isbns,
        year=work.year,
        other=[work.publisher, work.ndc, work.responsibility, work.edition or ""],
    )


class MemberSystem:
    def __init__(self, spec: SandboxMember, catalogue: Catalogue, as_of: date | None = None) -> None:
        self.spec = spec
        self.held = holdings_for(spec, catalogue, as_of)
        # Patrons and holds, for the protocols that place holds (REST, NCIP, HTML OPAC).
        # protocol_options["pickup_codes"] ("CHUO,KITA") narrows the pickup points to some branches.
        narrowed = {c.strip() for c in spec.protocol_options.get("pickup_codes", "").split(",") if c.strip()}
        self.ledger = HoldLedger(spec.id, self.held, narrowed or {b.code for b in spec.branches}, as_of)
        self.ledger.dedupe_keys = spec.protocol_options.get("dedupe_hold_keys", "yes") != "no"
        if "max_holds" in spec.protocol_options:
            self.ledger.max_holds = int(spec.protocol_options["max_holds"])
        # Each held record as its id in the process's corpus, and the positions of each id here.
        self._positions: dict[int, list[int]] = {}
        for position, held in enumerate(self.held):
            self._positions.setdefault(CORPUS.add(search_fields(held)), []).append(position)
        self._records: dict[str, list[bytes | None]] = {
            "marcxml": [None] * len(self.held),
            "dc": [None] * len(self.held),
        }
        self._results: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self.set_faults(spec.faults)

    @property
    def id(self) -> str:
        return self.spec.id

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = faults
        # Seeded per member, so "error_rate 0.5" fails the same requests on every run.
        self.dice = random.Random(f"{faults.seed}:{self.spec.id}")

    def search(self, query: str) -> tuple[int, ...]:
        """Positions in `held` matching the CQL query, in catalogue order; raises CQLError."""
        cached = self._results.get(query)
        if cached is not None:
            self._results.move_to_end(query)
            return cached
        matching = corpus_matching(query)
        if len(matching) < len(self._positions):
            found = [p for record in matching for p in self._positions.get(record, ())]
        else:
            found = [p for record, positions in self._positions.items() if record in matching for p in positions]
        hits = tuple(sorted(found))
        self._results[query] = hits
        if len(self._results) > _RESULT_CACHE_SIZE:
            self._results.popitem(last=False)
        return hits

    def record(self, position: int, schema: str) -> bytes:
        """The record at `position` in `schema` ('marcxml' or 'dc'), serialised once."""
        cache = self._records[schema]
        data = cache[position]
        if data is None:
            held = self.held[position]
            text = marcxml(self.spec, held) if schema == "marcxml" else dublin_core(held)
            data = cache[position] = text.encode()
        return data

    def delay_s(self) -> float:
        """This request's delay: normal latency, the fault delay and seeded jitter."""
        jitter = self.dice.uniform(0, self.faults.jitter_ms) if self.faults.jitter_ms else 0.0
        return (self.spec.latency_ms + self.faults.delay_ms + jitter) / 1000

    def roll_error(self) -> bool:
        return self.faults.error_rate > 0 and self.dice.random() < self.faults.error_rate
