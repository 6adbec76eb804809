"""Status words by rule, not only by list (connectors/status_words.toml [[rules]])."""

from __future__ import annotations

import pytest

from yokodan import Availability
from connectors.status_words import StatusMapper, rule_form, shared_rules

A = Availability


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("利用可", A.AVAILABLE),  # not in the word list (only 利用可能): the 利用可* rule
        ("利用可（開架）", A.AVAILABLE),
        ("貸出可能です", A.AVAILABLE),
        ("貸出中(12/10返却予定)", A.ON_LOAN),
        ("（貸出中）", A.ON_LOAN),  # brackets are not part of the word
        ("本館貸出中", A.ON_LOAN),  # the contains rule, after every prefix rule
        ("禁帯出本", A.LIBRARY_USE_ONLY),
        ("館内閲覧用", A.LIBRARY_USE_ONLY),
        ("貸出不可(郷土資料)", A.NOT_FOR_LOAN),
        ("予約中(2件)", A.RESERVED),
        ("貸出中止", A.NOT_FOR_LOAN),  # an exact word beats the 貸出中* rule
        ("ｶｼﾀﾞｼｶ", A.UNKNOWN),  # readings are not words
    ],
)
def test_words_outside_the_list_are_classified_by_ordered_rules(word: str, expected: Availability) -> None:
    assert StatusMapper("m").classify(word) is expected


@pytest.mark.parametrize("mark", ["○", "×", "△", "◎", "-", "*"])
def test_marks_are_never_guessed(mark: str) -> None:
    assert StatusMapper("m").classify(mark) is A.UNKNOWN


def test_a_members_own_words_come_first() -> None:
    member = StatusMapper("tamano", {"○": A.AVAILABLE, "×": A.ON_LOAN, "△": A.RESERVED, "貸出中": A.IN_TRANSIT})
    assert [member.classify(w) for w in ("○", "×", "△", "貸出中")] == [A.AVAILABLE, A.ON_LOAN, A.RESERVED, A.IN_TRANSIT]
    # another member that says nothing about marks still gets unknown for them
    assert StatusMapper("okayama").classify("○") is A.UNKNOWN


def test_rule_order_decides() -> None:
    """禁帯* comes before 貸出可*: a word that starts with one and contains the other."""
    kinds = [(r.kind, r.pattern) for r in shared_rules()]
    assert kinds.index(("prefix", "禁帯")) < kinds.index(("prefix", "貸出可"))
    assert kinds[-1] == ("contains", "貸出中")  # contains rules only after every prefix rule
    assert StatusMapper("m").classify("禁帯 貸出可は不可") is A.LIBRARY_USE_ONLY


def test_rule_form_drops_punctuation_but_keeps_marks() -> None:
    assert rule_form(" （貸出中） ") == "貸出中"
    assert rule_form("○") == "○"
    assert rule_form("【利用可】") == "利用可"


def test_unknown_words_are_still_counted_and_rule_words_are_not() -> None:
    mapper = StatusMapper("rules-test")
    for _ in range(3):
        assert mapper("△") is A.UNKNOWN
        assert mapper("利用可") is A.AVAILABLE
    assert mapper.unknown_words.count("rules-test", "△") == 3
    assert mapper.unknown_words.words_of("rules-test") == {"△": 3}  # 利用可 is classified, not counted


@pytest.mark.parametrize(
    "entries",
    [[{"prefix": "貸出", "contains": "中", "state": "on_loan"}], [{"prefix": "貸出"}], [{"prefix": "（）", "state": "on_loan"}]],
)
def test_a_broken_rule_is_refused_with_its_position(entries: list[dict[str, str]]) -> None:
    from connectors.status_words import _rules_from

    with pytest.raises(ValueError, match=r"rules\[0\]"):
        _rules_from(entries)


def test_a_rule_with_an_unknown_state_is_refused() -> None:
    from connectors.status_words import _rules_from

    with pytest.raises(ValueError):
        _rules_from([{"prefix": "貸出", "state": "lent"}])
