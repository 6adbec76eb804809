"""The prefecture table that selection by place relies on (broker/prefectures.py)."""

from __future__ import annotations

import pytest

from broker.prefectures import PREFECTURES, REGIONS, neighbours_of, prefecture, region_members


def test_47_prefectures_with_two_digit_codes_in_jis_order() -> None:
    assert list(PREFECTURES) == [f"{n:02d}" for n in range(1, 48)]
    assert len({p.name for p in PREFECTURES.values()}) == 47


def test_land_neighbours_are_symmetric_and_only_the_islands_have_none() -> None:
    for code, pref in PREFECTURES.items():
        assert code not in pref.neighbours, pref.name
        for other in pref.neighbours:
            assert code in PREFECTURES[other].neighbours, f"{pref.name} -> {PREFECTURES[other].name} but not back"
    assert sorted(p.name for p in PREFECTURES.values() if not p.neighbours) == ["北海道", "沖縄県"]


def test_okayama_and_its_neighbours() -> None:
    assert [p.name for p in neighbours_of("33")] == ["兵庫県", "鳥取県", "広島県"]


def test_regions_of_the_eight_region_division() -> None:
    assert REGIONS == ("北海道", "東北", "関東", "中部", "近畿", "中国", "四国", "九州")
    assert [p.name for p in region_members("中国")] == ["鳥取県", "島根県", "岡山県", "広島県", "山口県"]
    assert [p.code for p in region_members("中国地方")] == ["31", "32", "33", "34", "35"]
    assert region_members("関西") == ()


@pytest.mark.parametrize("value", ["33", "3" + "3", 33, "岡山県", "岡山", "３３"])
def test_a_prefecture_by_code_or_name(value: object) -> None:
    found = prefecture(value)  # type: ignore[arg-type]
    assert found is not None and found.code == "33"


def test_short_names_and_unknowns() -> None:
    assert prefecture("1") is PREFECTURES["01"] and prefecture("北海道") is PREFECTURES["01"]
    assert prefecture("東京") is PREFECTURES["13"] and prefecture("京都") is PREFECTURES["26"]
    for bad in ("48", "0", "", "岡山市", "Okayama"):
        assert prefecture(bad) is None, bad
