"""Flat holding rows for the work page, the staff page and its CSV: one row per copy.

The API's nested view (broker/views.py) groups copies member -> branch for portals; a table
wants one row per copy with its queue, which the API view does not carry.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from broker.views import DisplayNames
from yokodan import Availability, Work


@dataclass(frozen=True, slots=True)
class HoldingRow:
    title: str
    isbn: str
    member: str
    member_name: str
    branch_id: str | None
    branch_name: str
    call_number: str
    availability: Availability
    status_text: str
    due_date: date | None
    queue_length: int | None


def holding_rows(works: list[Work], names: DisplayNames) -> list[HoldingRow]:
    rows = []
    for work in works:
        isbn = work.isbns[0] if work.isbns else ""
        for record in work.records:
            for h in record.holdings:
                rows.append(
                    HoldingRow(
                        title=work.title + (f" {work.volume}" if work.volume else ""),
                        isbn=isbn,
                        member=record.member,
                        member_name=names.members.get(record.member, record.member),
                        branch_id=h.branch_id,
                        branch_name=names.branches.get(h.branch_id or "", h.location or ""),
                        call_number=h.call_number or "",
                        availability=h.availability,
                        status_text=h.status_text,
                        due_date=h.due_date,
                        queue_length=h.queue_length,
                    )
                )
    return rows


# Spreadsheet programs run a cell starting with these as a formula (CSV injection): a member's
# title or call number must stay text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def holdings_csv(rows: list[HoldingRow], headers: list[str], availability_words: dict[str, str]) -> bytes:
    """UTF-8 with a BOM, so that Excel opens Japanese correctly; CRLF line ends (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for r in rows:
        writer.writerow(
            [_cell(v) for v in (
                r.title, r.isbn, r.member_name, r.branch_name, r.call_number,
                availability_words[r.availability.value], r.status_text,
                r.due_date.isoformat() if r.due_date else "", "" if r.queue_length is None else r.queue_length,
            )]
        )  # fmt: skip
    return "\ufeff".encode() + out.getvalue().encode("utf-8")
