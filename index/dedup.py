"""Incremental clustering of member records into works, as members answer.

    clusterer = WorkClusterer()
    changed = clusterer.add(records_from_member_a)   # ids of works created or changed
    changed = clusterer.add(records_from_member_b)
    page = clusterer.works()

How a batch is added without re-scoring everything:
- a record whose content (everything but member, local id and holdings) was seen
  before joins the same cluster at once — the common case when 60 members copy-
  catalogued one NDL record;
- otherwise its features are extracted once and looked up in block indexes (each
  ISBN-13, the JP number, the folded main title and reading, first author + year,
  and the composite key title-or-reading|first author|year|volume); only the
  clusters found there are scored (`index.matching.match`), against their aggregate
  profile, and the record joins the best one or founds a new cluster.

While records arrive, clusters are never merged after the fact: a work id handed out
by `add` keeps meaning the same work for the progressive answer (the broker streams
diff events by id). Greedy clustering depends on arrival order, though (a sparse record
may join whichever candidate came first), so `works()` — the final answer, and what the
union index stores — is *settled*: the distinct record contents are clustered again in
an order that does not depend on arrival (fullest records first, then by content), from
the features already extracted, so the same records give the same works, ids and record
order whichever member answered first. A settled work may merge works the progressive
diffs showed apart. `work(id)` answers for the progressive ids.
Ids are derived from the founding record (its smallest ISBN-13, else its JP number,
else its title/author/year/volume key), so the same input gives the same ids.

Manifestation level by default; `group_editions=True` also groups other editions
and formats (hardback and 文庫) of the same title and author. Volumes never merge.

`Work.match_reasons` lists, in order of first use, why records joined the work:
'isbn', 'jpno', 'title+author+year', 'title+author' (a year missing), 'title+year' /
'title+publisher' / 'title' (no names on one side: exact titles only),
'title+author+edition' (group_editions: another edition), 'identical' (a copy of
the founding record too sparse for any other rule, e.g. title only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from yokodan import Record, Work
from index.features import RecordFeatures, extract_features
from index.matching import ClusterProfile, Match, match
from index.titles import strip_isbd, strip_responsibility
from index.volume import split_volume

# An author+year block shared by this many clusters is too generic to be worth scoring
# (a corporate author's many reports in one year); the title and identifier blocks still apply.
MAX_AUTHOR_BLOCK = 32

_Signature = tuple[object, ...]


def _signature(record: Record) -> _Signature:
    """Record content that matching can see: equal signatures always match each other."""
    return (
        record.title,
        record.title_reading,
        tuple(record.authors),
        tuple(record.author_readings),
        record.publisher,
        record.year,
        tuple(record.isbns),
        record.volume,
        record.edition,
        record.jpno,
    )


def _quality(record: Record) -> tuple[bool, bool, bool, bool, bool, int]:
    """Which record speaks for the work: one with a reading and an ISBN, the fullest one."""
    return (
        bool(record.title_reading),
        bool(record.isbns),
        bool(record.authors),
        record.year is not None,
        bool(record.publisher),
        len(record.title),
    )


@dataclass(slots=True)
class _Seen:
    work_id: str
    reason: str | None  # None for the founding record until a copy of it arrives
    features: RecordFeatures
    quality: tuple[bool, bool, bool, bool, bool, int]
    records: list[Record] = field(default_factory=list)  # every record with this content


def _arrival_free_order(item: tuple[_Signature, _Seen]) -> tuple[object, ...]:
    """Fullest content first (it founds the clusters sparse records then join), ties by content.

    A total order on content alone: None and '' are told apart by the last element, so no
    tie is left to the (arrival-ordered) dict the items come from.
    """
    signature, seen = item
    quality = seen.quality
    return (
        not quality[0], not quality[1], not quality[2], not quality[3], not quality[4], -quality[5],
        *(("" if value is None else value) for value in signature[:5]),
        -1 if signature[5] is None else signature[5],
        *(("" if value is None else value) for value in signature[6:]),
        tuple(value is None for value in signature),
    )  # fmt: skip


@dataclass(slots=True)
class _Cluster:
    work_id: str
    profile: ClusterProfile = field(default_factory=ClusterProfile)
    records: list[Record] = field(default_factory=list)
    features: list[RecordFeatures] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    best: int = 0
    best_quality: tuple[bool, bool, bool, bool, bool, int] = (False, False, False, False, False, 0)
    work: Work | None = None  # built lazily, dropped on change
    # The ISBNs of records[:isbns_folded], kept across builds: records are only ever appended, so a
    # rebuild folds in the new ones alone instead of every record again (a progressive search
    # rebuilds a popular work once per member that answers).
    isbns: dict[str, None] = field(default_factory=dict)
    isbns_folded: int = 0


class WorkClusterer:
    """Clusters records into `Work`s incrementally; one instance per search."""

    def __init__(self, *, group_editions: bool = False) -> None:
        self.group_editions = group_editions
        self._clusters: dict[str, _Cluster] = {}
        self._blocks: dict[str, list[str]] = {}
        # signature -> where that content went, why, its features and records
        self._seen: dict[_Signature, _Seen] = {}
        self._settled: list[Work] | None = None  # works() until the next add()

    # --- public API -------------------------------------------------------------------
    def add(self, records: Iterable[Record]) -> list[str]:
        """Cluster a batch; return the ids of works created or changed, in first-touched order."""
        changed: dict[str, None] = {}
        for record in records:
            changed[self._add_one(record)] = None
        if changed:
            self._settled = None
        return list(changed)

    def works(self) -> list[Work]:
        """All works, settled: the same works (ids, records, order) whatever the arrival order."""
        if self._settled is None:
            self._settled = self._settle()
        return list(self._settled)

    def progressive_works(self) -> list[Work]:
        """The works as clustered on arrival (the ids `add` returned), in the order they were founded."""
        return [self._build(cluster) for cluster in self._clusters.values()]

    def work(self, work_id: str) -> Work:
        """One progressive work by id, as `add` named it (KeyError when unknown)."""
        return self._build(self._clusters[work_id])

    def __len__(self) -> int:
        return len(self._clusters)

    # --- clustering -------------------------------------------------------------------
    def _add_one(self, record: Record) -> str:
        signature = _signature(record)
        seen = self._seen.get(signature)
        if seen is not None:
            seen.records.append(record)
            cluster = self._clusters[seen.work_id]
            if seen.reason is None:  # a copy of the founding record: say what the copies share
                found = match(seen.features, cluster.profile, group_editions=self.group_editions)
                seen.reason = found.reason if found is not None else "identical"
            self._attach(cluster, record, seen.features, seen.reason, new_content=False)
            return seen.work_id
        features = extract_features(record)
        best = self._best_match(features)
        quality = _quality(record)
        if best is None:
            cluster = self._found(record, features, quality)
            self._seen[signature] = _Seen(cluster.work_id, None, features, quality, [record])
            return cluster.work_id
        found, cluster = best
        self._attach(cluster, record, features, found.reason, quality=quality)
        self._index(cluster.work_id, features)
        self._seen[signature] = _Seen(cluster.work_id, found.reason, features, quality, [record])
        return cluster.work_id

    def _best_match(self, features: RecordFeatures) -> tuple[Match, _Cluster] | None:
        best: tuple[Match, _Cluster] | None = None
        for cluster in self._candidates(features):
            found = match(features, cluster.profile, group_editions=self.group_editions)
            if found is not None and (best is None or found.rank > best[0].rank):
                best = (found, cluster)
        return best

    def _settle(self) -> list[Work]:
        """Cluster every distinct content again in an arrival-free order, from the kept features.

        Costs one cascade per distinct content (no feature extraction): copies of one
        record, the bulk of a consortium's answer, are attached without matching.
        """
        settled = WorkClusterer(group_editions=self.group_editions)
        for _, seen in sorted(self._seen.items(), key=_arrival_free_order):
            features = seen.features
            best = settled._best_match(features)
            if best is None:
                cluster = settled._found(seen.records[0], features, seen.quality)
                copies_reason = None
                if len(seen.records) > 1:  # copies of the founding record: say what they share
                    found = match(features, cluster.profile, group_editions=self.group_editions)
                    copies_reason = found.reason if found is not None else "identical"
            else:
                found, cluster = best
                settled._attach(cluster, seen.records[0], features, found.reason, quality=seen.quality)
                settled._index(cluster.work_id, features)
                copies_reason = found.reason
            if copies_reason is not None:
                # Copies change neither the profile nor the best record: appended in bulk.
                copies = seen.records[1:]
                cluster.records.extend(copies)
                cluster.features.extend([features] * len(copies))
                if copies_reason not in cluster.reasons:
                    cluster.reasons.append(copies_reason)
        works = settled.progressive_works()
        for work in works:  # shown member by member, not in the order the pass placed them
            work.records.sort(key=lambda r: (r.member, r.local_id))
        return works

    def _candidates(self, features: RecordFeatures) -> list[_Cluster]:
        ids: dict[str, None] = {}
        for block_key in features.block_keys:
            members = self._blocks.get(block_key)
            if not members or (block_key[0] == "a" and len(members) > MAX_AUTHOR_BLOCK):
                continue
            for work_id in members:
                ids[work_id] = None
        return [self._clusters[work_id] for work_id in ids]

    def _found(self, record: Record, features: RecordFeatures, quality: tuple[bool, bool, bool, bool, bool, int]) -> _Cluster:
        cluster = _Cluster(work_id=self._new_id(features))
        self._clusters[cluster.work_id] = cluster
        self._attach(cluster, record, features, None, quality=quality)
        self._index(cluster.work_id, features)
        return cluster

    def _attach(
        self,
        cluster: _Cluster,
        record: Record,
        features: RecordFeatures,
        reason: str | None,
        *,
        new_content: bool = True,
        quality: tuple[bool, bool, bool, bool, bool, int] | None = None,
    ) -> None:
        cluster.records.append(record)
        cluster.features.append(features)
        if reason is not None and reason not in cluster.reasons:
            cluster.reasons.append(reason)
        cluster.work = None
        if not new_content:  # a copy of content already in the cluster: same profile, same quality
            return
        cluster.profile.add(features)
        if quality is None:
            quality = _quality(record)
        if quality > cluster.best_quality:
            cluster.best, cluster.best_quality = len(cluster.records) - 1, quality

    def _index(self, work_id: str, features: RecordFeatures) -> None:
        for block_key in features.block_keys:
            members = self._blocks.setdefault(block_key, [])
            if work_id not in members:
                members.append(work_id)

    def _new_id(self, features: RecordFeatures) -> str:
        if features.isbns:
            basis = f"isbn:{min(features.isbns)}"
        elif features.jpno:
            basis = f"jpno:{features.jpno}"
        else:
            title = features.title
            author = features.authors[0] if features.authors else ""
            basis = f"key:{title.reading_main or title.main}|{title.full}|{author}|{features.year or ''}"
        volume = features.volume.label if features.volume else ""
        digest = hashlib.blake2b(f"{basis}|{volume}".encode(), digest_size=6).hexdigest()
        work_id = f"w{digest}"
        n = 2
        while work_id in self._clusters:  # same founding identity twice (e.g. two editions with group_editions off)
            work_id = f"w{digest}-{n}"
            n += 1
        return work_id

    # --- output -----------------------------------------------------------------------
    def _build(self, cluster: _Cluster) -> Work:
        if cluster.work is not None:
            return cluster.work
        best = cluster.records[cluster.best]
        isbns = cluster.isbns
        for record in cluster.records[cluster.isbns_folded :]:
            isbns.update(dict.fromkeys(record.isbns))
        cluster.isbns_folded = len(cluster.records)
        best_features = cluster.features[cluster.best]
        title = strip_isbd(strip_responsibility(best.title))
        if best.volume is None and best_features.volume_text:
            title = split_volume(title)[0] or title  # show '地のはてから' + volume '上', not the volume twice
        # model_construct: every field is built here from already-validated Records, and
        # validating 60 nested Records per work on every update would cost more than clustering.
        cluster.work = Work.model_construct(
            work_id=cluster.work_id,
            title=title,
            title_reading=best.title_reading,
            authors=list(best.authors),
            publisher=best.publisher or next((r.publisher for r in cluster.records if r.publisher), None),
            year=best.year if best.year is not None else next((r.year for r in cluster.records if r.year), None),
            isbns=list(isbns),
            volume=best.volume or (best_features.volume.label if best_features.volume else None),
            records=list(cluster.records),
            match_reasons=list(cluster.reasons),
            # Given, not left to its default_factory: model_construct then inspects the factory's
            # signature on every call (pydantic 2.x), ~0.3 ms per work — most of a progressive
            # search's cost when a popular work is rebuilt sixty times.
            matched_by_title=[],
        )
        return cluster.work
