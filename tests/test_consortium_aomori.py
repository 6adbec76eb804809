"""The shipped Aomori file (consortia/aomori.toml): prefectural library + the 59 cooperating libraries of seed 003."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from broker.consortium import CONSORTIA_DIR, Branch, Consortium, load_consortium

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED = SHARED / "seeds" / "003_24ca6888a2d4a3b3.txt"
P27_CSV = SHARED / "data" / "libraries" / "mlit_p27_2013_libraries_okayama_hyogo_kumamoto_aomori.csv"
CINII_CSV = SHARED / "data" / "libraries" / "cinii_fa_libraries_aomori_hyogo_okayama_kumamoto.csv"
P27 = "MLIT 国土数値情報 P27 (2013)"
# Seed rows whose name did not survive extraction (the file says so instead of guessing) or was inferred.
NAME_LOST = {46: "大間町", 48: "風間浦村"}
NAME_INFERRED = {50: "八戸市立図書館"}
# Seed 003's 地区 headings and how many cooperating libraries each lists.
REGIONS = {"東青": 6, "西北五": 12, "中弘南黒": 11, "上十三": 11, "むつ下北": 9, "三八": 10}


def shared_file(path: Path) -> Path:
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (CI must have ../shared)")
        pytest.skip(f"needs {path} beside the repository")
    return path


@pytest.fixture(scope="module")
def aomori() -> Consortium:
    return load_consortium(CONSORTIA_DIR / "aomori.toml")


def cooperating(c: Consortium) -> list[Branch]:
    return [b for b in c.branches() if b.id != "aomori-pref/honkan"]


def seed_number(branch: Branch) -> int:
    match = re.search(r"\(貸出協力館\) No\. (\d+) of seed 003, region (\S+?):", branch.notes or "")
    assert match, branch.id
    return int(match[1])


def seed_region(branch: Branch) -> str:
    match = re.search(r"region (\S+?):", branch.notes or "")
    assert match, branch.id
    return match[1]


def test_loads_as_a_prefectural_hub_with_one_member(aomori: Consortium) -> None:
    assert (aomori.id, aomori.kind, [m.id for m in aomori.members]) == ("aomori", "prefectural_hub", ["aomori-pref"])
    pref = aomori.member("aomori-pref")
    assert pref.name == "青森県立図書館" and pref.connector.kind == "sru"
    assert pref.holds is not None and pref.holds.kind == "ncip"


def test_59_cooperating_libraries_numbered_as_in_the_seed_plus_the_prefectural_library(aomori: Consortium) -> None:
    branches = aomori.member("aomori-pref").branches
    assert len(branches) == 60 and branches[0].id == "aomori-pref/honkan"
    assert [seed_number(b) for b in cooperating(aomori)] == list(range(1, 60))
    assert Counter(seed_region(b) for b in cooperating(aomori)) == REGIONS


def test_every_cooperating_library_is_a_pickup_and_return_point_without_stock(aomori: Consortium) -> None:
    for branch in cooperating(aomori):
        assert (branch.pickup_point, branch.accepts_returns, branch.holds_stock, branch.mobile) == (True, True, False, False)
        assert branch.codes == [], "pickup-only points carry no holdings codes"
    honkan = aomori.branch("aomori-pref/honkan")
    assert honkan.pickup_point and honkan.holds_stock and honkan.codes


def test_community_centres_the_school_library_and_offices_are_included_as_printed(aomori: Consortium) -> None:
    names = [b.name for b in cooperating(aomori)]
    # Nos. 1, 3, 5, 14, 16, 24, 26-29, 34, 36, 40 (in brackets), 49, 57: counted by hand in the seed's table.
    assert sum("公民館" in n for n in names) == 15
    assert "南部町立名川中学校図書室" in names and "東通村教育委員会" in names
    school = next(b for b in cooperating(aomori) if "中学校" in b.name)
    assert "school library" in (school.notes or "")
    centres = [b for b in cooperating(aomori) if "公民館" in b.name and "図書館" not in b.name]
    assert all("listed by the seed itself" in (b.notes or "") for b in centres)


def test_names_are_as_printed_and_every_departure_says_so(aomori: Consortium) -> None:
    seed = shared_file(SEED).read_text(encoding="utf-8")
    for branch in cooperating(aomori):
        number = seed_number(branch)
        if number in NAME_LOST:
            assert branch.name.startswith(NAME_LOST[number]) and "名称は原資料から欠落" in branch.name
            assert "Name missing" in (branch.notes or "") and branch.lat is None
        elif number in NAME_INFERRED:
            assert branch.name == NAME_INFERRED[number] and "Name inferred, not printed" in (branch.notes or "")
        elif branch.name not in seed:
            # Only a line-break space after a middle dot was dropped; the note says so.
            assert branch.name.replace("・", "・ ") in seed and "line-break artefact" in (branch.notes or "")
    for printed, note in (("平川市碓ヶ関公民館", "probably a misprint"), ("日本海拠点館", "鱒ヶ沢町")):
        branch = next(b for b in cooperating(aomori) if b.name == printed)
        assert note in (branch.notes or "")
    assert next(b for b in cooperating(aomori) if b.name == "日本海拠点館").municipality == "鰺ヶ沢町"


def test_coordinates_come_from_p27_rows_and_a_non_exact_match_says_so(aomori: Consortium) -> None:
    with shared_file(P27_CSV).open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["pref"] == "青森県"]
    located = [b for b in aomori.branches() if b.lat is not None]
    assert len(located) == 27  # the prefectural library + 26 cooperating libraries
    for branch in located:
        assert branch.coordinates_source == P27
        (row,) = [r for r in rows if (round(float(r["lat"]), 6), round(float(r["lon"]), 6)) == (branch.lat, branch.lon)]
        assert row["muni_name_2020s"] in branch.municipality or branch.municipality == "青森市"
        if row["name"] != branch.name:
            assert branch.coordinates_note, f"{branch.id}: P27 says {row['name']}, the branch note must explain"
        assert branch.address == f"青森県{row['muni_name_2020s']}{row['address_in_muni']}"
    for branch in aomori.branches():
        if branch.lat is None:
            assert branch.coordinates_note and branch.coordinates_source is None


def test_the_only_phone_is_the_prefectural_librarys_from_cinii(aomori: Consortium) -> None:
    with shared_file(CINII_CSV).open(encoding="utf-8") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["FA番号"] == "FA012896"]
    assert row["電話1"].startswith("017-729-4311")
    assert aomori.member("aomori-pref").phone == "017-729-4311"
    assert [b.id for b in aomori.branches() if b.phone] == ["aomori-pref/honkan"]
    assert "CiNii" in (aomori.member("aomori-pref").notes or "")
    assert any("FA012896" in s for s in aomori.sources)


def test_seed_rules_for_the_policy_sections_are_recorded(aomori: Consortium) -> None:
    notes = aomori.notes or ""
    for fact in ("20 holds and 10 loans", "every Thursday", "following Sunday", "held 8 days", "held 7 days", "3 Thursday runs"):
        assert fact in notes
