"""Per-family and per-member query-term rules (`query_terms.toml` + `options.query_terms`)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from yokodan.terms import TermRules

_RULES_FILE = Path(__file__).with_name("query_terms.toml")


@lru_cache(maxsize=1)
def _family_rules() -> dict[str, TermRules]:
    with _RULES_FILE.open("rb") as handle:
        data = tomllib.load(handle)
    default = TermRules.from_mapping(data.get("default", {}), where=f"{_RULES_FILE.name}: default")
    rules = {"default": default}
    for family, values in data.items():
        if family != "default":
            rules[family] = TermRules.from_mapping(values, base=default, where=f"{_RULES_FILE.name}: {family}")
    return rules


def term_rules(kind: str, own: object = None, *, member: str = "") -> TermRules:
    """The rules for one member: its family's, with the member's own `query_terms` table on top.

    `own` is `QueryTermOptions.query_terms` (already checked when the consortium file loaded).
    """
    families = _family_rules()
    base = families.get(kind, families["default"])
    if own is None:
        return base
    if not isinstance(own, Mapping):
        raise ValueError(f"member {member}: options.query_terms must be a table, not {type(own).__name__}")
    return TermRules.from_mapping(dict(own), base=base, where=f"member {member}: options.query_terms")
