"""The local union index: every work the broker has seen, searchable without the members.

One small interface (`UnionIndex`: `open` / `open_async`, `submit`, `search`, `flush`,
`stats`, `close`) in front of an engine, so the engine can be swapped (MEASUREMENTS.md:
tantivy is ~20x faster; PostgreSQL is one) without touching the broker. The parts, one job each:

- `union`: the UnionIndex facade;
- `results`: what it answers with (CachedResult, CachedWork, IndexStats, errors), engine-free;
- `documents`: a Work (merged with what was stored for it) as an engine-neutral document;
- `writer`: the write-behind queue and its thread (batching, drop policy, resubmission);
- `committer`: what one commit does (documents, replace, age and size bounds), in either process;
- `writer_process` / `writer_child` / `writer_wire`: the writer process (the default writer:
  whoosh commits off this process's GIL), its main loop, and what they say over their pipe;
- `storage`: the directory and its schema-version marker;
- `merge_policy`: which segments a commit merges (log-structured);
- `backend`: the IndexBackend / WriteTransaction protocols an engine implements;
- `whoosh_backend`: the whoosh engine, the only module using whoosh internals (snapshots,
  locks, crash recovery), with `whoosh_schema`, `whoosh_query`, `whoosh_facets` and
  `whoosh_transaction` on whoosh's public API.
- `query_plan`: the query semantics every engine shares (words ANDed, field alternatives by
  script, boosts);
- `postgres_backend`: the PostgreSQL engine (a `postgresql://` URL), shared by several broker
  nodes, with `postgres_schema` (migrations), `postgres_documents` (pre-analysed terms) and
  `postgres_query` (SQL); the only modules using psycopg.

Facets are defined once, in `index.facets`, for cached and live answers alike.
"""

from index.facets import Facets
from index.store.merge_policy import MERGE_FACTOR
from index.store.results import CachedResult, CachedWork, IndexStats, UnionIndexError, UnionIndexInUse
from index.store.union import UnionIndex

__all__ = [
    "MERGE_FACTOR",
    "CachedResult",
    "CachedWork",
    "Facets",
    "IndexStats",
    "UnionIndex",
    "UnionIndexError",
    "UnionIndexInUse",
]
