"""What a record is: normalisation, dedup clustering into works (and later ranking, facets, the store).

Imports only the shared vocabulary (`yokodan`) from the project.

- `index.normalize`: the one import for normalisation (re-exports the helpers below)
- `index.text`: fold / key; `index.titles`: title structure; `index.volume`: volume designations;
  `index.editions`: edition/format hints; `index.names`: authors and publishers;
  `index.years`: publication years; `index.numerals`: kanji and roman numerals
- `index.features`: per-record matching keys; `index.matching`: the match cascade and thresholds;
  `index.dedup`: `WorkClusterer`, incremental clustering of records into works
"""
