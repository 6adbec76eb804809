"""Yokodan's shared vocabulary: depends on nothing else of the project (pydantic only).

Every room imports these names: connectors turn a member's answers into `Record`/`Holding`/
`TargetStatus`, the index clusters records into `Work`s, the broker plans searches and holds with
them and the API serialises them. The public names are re-exported here, as httpx does; the
modules behind them (`yokodan.models`, `yokodan.holds`, `yokodan.isbn`) are where they live.
"""

from __future__ import annotations

from yokodan import isbn
from yokodan.errors import BadRequest, ConfigError, StoreError, YokodanError
from yokodan.holds import (
    Hold,
    HoldRequest,
    HoldState,
    PatronCredentials,
    PatronStatus,
    RefusalReason,
)
from yokodan.models import (
    ISBN13,
    Availability,
    Diagnostic,
    Holding,
    MaterialType,
    Record,
    SearchQuery,
    SecondStage,
    TargetState,
    TargetStatus,
    Work,
    trusted,
)

__all__ = [
    "ISBN13",
    "Availability",
    "BadRequest",
    "ConfigError",
    "Diagnostic",
    "Hold",
    "HoldRequest",
    "HoldState",
    "Holding",
    "MaterialType",
    "PatronCredentials",
    "PatronStatus",
    "Record",
    "RefusalReason",
    "SearchQuery",
    "SecondStage",
    "StoreError",
    "TargetState",
    "TargetStatus",
    "Work",
    "YokodanError",
    "isbn",
    "trusted",
]
