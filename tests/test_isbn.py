import pytest
from pydantic import ValidationError

from yokodan.isbn import find_isbns, to_isbn10, to_isbn13
from yokodan import Record, SearchQuery


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9784101010014", "9784101010014"),
        ("978-4-10-101001-4", "9784101010014"),
        ("4101010137", "9784101010137"),
        ("4-10-101013-7", "9784101010137"),
        ("４１０１０１０１３７", "9784101010137"),  # full-width digits from a Japanese OPAC
        ("080442957X", "9780804429573"),
        ("080442957x", "9780804429573"),
        ("9784101010015", None),  # bad check digit: not an ISBN
        ("4101010138", None),
        ("12345", None),
    ],
)
def test_to_isbn13(raw: str, expected: str | None) -> None:
    assert to_isbn13(raw) == expected


def test_to_isbn10_round_trip() -> None:
    assert to_isbn10("9784101010137") == "4101010137"
    assert to_isbn10("9791234567896") is None  # 979- ISBNs have no ISBN-10 form


def test_find_isbns_keeps_invalid_raw() -> None:
    valid, invalid = find_isbns("978-4-7949-7075-6 : 1700円")
    assert valid == ["9784794970756"] and invalid == []
    valid, invalid = find_isbns("4101010137 (pbk.) 4101010138")
    assert valid == ["9784101010137"] and invalid == ["4101010138"]


def test_models_validate_isbns() -> None:
    record = Record(member="m", local_id="1", title="こころ", isbns=["4-10-101013-7", "9784101010137"])
    assert record.isbns == ["9784101010137"]
    with pytest.raises(ValidationError, match="not a valid ISBN"):
        Record(member="m", local_id="1", title="x", isbns=["9784101010015"])
    assert SearchQuery(isbn="4101010137").isbn == "9784101010137"


def test_trusted_construction_equals_validated() -> None:
    """The hot-path constructor must build exactly what validation builds."""
    from datetime import date

    from yokodan import Availability, Holding, trusted

    values = {
        "member": "m", "branch_id": "m/b", "location": "中央", "call_number": "913.6/ナ", "item_id": "1",
        "availability": Availability.ON_LOAN, "status_text": "貸出中", "due_date": date(2026, 12, 1),
        "queue_length": None, "collection": None,
    }
    built = trusted(Holding, dict(values))
    validated = Holding(**values)
    assert built == validated and built.model_dump() == validated.model_dump() and hash(built) == hash(validated)
    assert built.model_dump_json() == validated.model_dump_json()
    record = trusted(Record, {**Record(member="m", local_id="1", title="t").model_dump(), "holdings": [built]})
    assert record == Record(member="m", local_id="1", title="t", holdings=[validated])
    with pytest.raises(TypeError, match="missing"):
        trusted(Holding, {"member": "m"})
