"""A hold's state in words, Japanese (the seeds' words) and English: one source for the API, pages and CLI.

The pages' catalogues (broker/pages/i18n.py) take their `hold.*` sentences from here, so My holds,
`GET /api/v1/holds` (`state_label`) and `yokodan holds list` never disagree about what a state is called.
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.language import Language
from broker.ledger.records import HoldRow, Outcome

# States (yokodan.HoldState values) and the outcomes before a hold has one.
HOLD_WORDS: Mapping[Language, Mapping[str, str]] = {
    "ja": {
        "submitted": "予約申込", "waiting": "予約中（確保待ち）", "secured": "確保済み（準備中）", "in_transit": "配送中",
        "ready": "受け取りできます", "collected": "貸出済み", "expired": "期限切れ", "cancelled": "取り消し済み",
        "intent": "図書館の応答を確認中です", "unknown": "図書館の応答を確認中です",
        "refused": "予約できませんでした", "deferred": "前の巻が届いてから予約します",
    },
    "en": {
        "submitted": "requested", "waiting": "waiting", "secured": "secured (being prepared)", "in_transit": "in transit",
        "ready": "ready to collect", "collected": "collected", "expired": "expired", "cancelled": "cancelled",
        "intent": "waiting for the library's answer", "unknown": "waiting for the library's answer",
        "refused": "not placed", "deferred": "placed when the volume before it is ready",
    },
}  # fmt: skip


def state_label(row: HoldRow, language: Language) -> str:
    """The hold's state in words; before the member has it, what the ledger is doing about it."""
    words = HOLD_WORDS[language]
    if row.outcome is Outcome.PLACED and row.state is not None:
        return words[row.state.value]
    return words[row.outcome.value]
