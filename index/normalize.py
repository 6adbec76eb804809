"""Record normalisation: the one import for callers outside `index`.

Pure functions, each in a module with one job:

- `index.text`: `fold` (search/match form), `key` (blocking/dedup key)
- `index.titles`: `parse_title`, `strip_isbd`, `split_subtitle`, `strip_responsibility`, `strip_leading_article`
- `index.volume`: `parse_volume`, `split_volume`, `Volume`, `volumes_compatible`
- `index.editions`: `edition_hints`, `EditionHints`
- `index.names`: `normalize_author`, `split_names`, `author_tokens_key`, `normalize_publisher`
- `index.years`: `parse_year`
- `index.numerals`: `kanji_to_int`, `roman_to_int`
"""

from __future__ import annotations

from index.editions import EditionHints, edition_hints
from index.names import (
    author_tokens_key,
    normalize_author,
    normalize_publisher,
    split_names,
)
from index.numerals import kanji_to_int, roman_to_int
from index.text import fold, key
from index.titles import (
    ParsedTitle,
    parse_title,
    split_subtitle,
    strip_isbd,
    strip_leading_article,
    strip_responsibility,
)
from index.volume import Volume, parse_volume, split_volume, volumes_compatible
from index.years import parse_year

__all__ = [
    "EditionHints",
    "ParsedTitle",
    "Volume",
    "author_tokens_key",
    "edition_hints",
    "fold",
    "kanji_to_int",
    "key",
    "normalize_author",
    "normalize_publisher",
    "parse_title",
    "parse_volume",
    "parse_year",
    "roman_to_int",
    "split_names",
    "split_subtitle",
    "split_volume",
    "strip_isbd",
    "strip_leading_article",
    "strip_responsibility",
    "volumes_compatible",
]
