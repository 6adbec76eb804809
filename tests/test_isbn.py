import pytest
from pydantic import ValidationError

from broker.isbn import find_isbns, to_isbn10, to_isbn13
from broker.models import Record, SearchQuery


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
