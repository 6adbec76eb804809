"""The shipped Kumamoto file (consortia/kumamoto.toml): prefectural hub + 39 pickup libraries (seed 002)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broker.consortium import CONSORTIA_DIR, Consortium, load_consortium

KUMAMOTO_FILE = CONSORTIA_DIR / "kumamoto.toml"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED = SHARED / "seeds" / "002_425a9ff88af8d101.txt"
P27_CSV = SHARED / "data" / "libraries" / "mlit_p27_2013_libraries_okayama_hyogo_kumamoto_aomori.csv"
JST = ZoneInfo("Asia/Tokyo")
P27 = "MLIT 国土数値情報 P27 (2013)"

# Pickup libraries whose P27 row is a fuzzy match (the note must say so) ...
FUZZY = {
    "kumamoto-pref/uki-chuo",
    "kumamoto-pref/uki-misumi",
    "kumamoto-pref/uki-ogawa",
    "kumamoto-pref/nankan",
    "kumamoto-pref/koshi-vivre",
    "kumamoto-pref/yatsushiro",
}
# ... and those in P27 only at a site they have since left: no coordinates on purpose.
MOVED = {"kumamoto-pref/arao", "kumamoto-pref/amakusa-chuo", "kumamoto-pref/uki-toyono"}
NOT_IN_P27 = {
    "kumamoto-pref/tamana-tensui",
    "kumamoto-pref/yamaga-hidamari",
    "kumamoto-pref/yamaga-komorebi",
    "kumamoto-pref/kikuchi-chuo",
    "kumamoto-pref/kikuchi-shichijo",
    "kumamoto-pref/kikuchi-kyokushi",
    "kumamoto-pref/yamato-seiwa",
    "kumamoto-pref/yamato-soyo",
    "kumamoto-pref/asagiri",
}


@pytest.fixture(scope="module")
def kumamoto() -> Consortium:
    return load_consortium(KUMAMOTO_FILE)


def _pickups(c: Consortium):
    return [b for b in c.branches() if b.id != "kumamoto-pref/honkan"]


def _by_name(c: Consortium, name: str):
    (branch,) = [b for b in c.branches() if b.name == name]
    return branch


# --- shape ----------------------------------------------------------------------------------------


def test_loads_as_a_prefectural_hub(kumamoto: Consortium) -> None:
    assert kumamoto.id == "kumamoto"
    assert kumamoto.kind == "prefectural_hub"
    assert kumamoto.timezone == "Asia/Tokyo"
    assert [m.id for m in kumamoto.members] == ["kumamoto-pref"]
    pref = kumamoto.member("kumamoto-pref")
    assert pref.name == "熊本県立図書館"
    assert pref.connector.kind == "sru"
    assert kumamoto.endpoint_for(pref) == "http://127.0.0.1:8410/kumamoto-pref/sru"
    assert pref.policy.cards is not None and pref.policy.cards.scope == "member"
    assert pref.policy.limits is not None and (pref.policy.limits.max_holds, pref.policy.limits.max_loans) == (10, 10)  # seed 002: 予約/貸出 一人10点まで
    assert pref.phone is None  # seed 002 prints no phone number


def test_counts_39_pickup_libraries_plus_the_main_library(kumamoto: Consortium) -> None:
    branches = kumamoto.member("kumamoto-pref").branches
    assert len(branches) == 40
    assert branches[0].id == "kumamoto-pref/honkan"
    pickups = _pickups(kumamoto)
    assert len(pickups) == 39  # seed 002: 計39館 / 以上39館
    for branch in branches:
        assert branch.pickup_point and branch.accepts_returns and not branch.mobile, branch.id  # 受取・返却
    counts = Counter(b.municipality for b in pickups)
    assert counts["宇城市"] == 4 and counts["玉名市"] == 4 and counts["菊池市"] == 4
    assert counts["合志市"] == 3 and counts["山都町"] == 3 and counts["八代市"] == 3 and counts["天草市"] == 3
    assert counts["山鹿市"] == 2
    assert "熊本市" not in counts  # the service covers pickup outside Kumamoto city only


def test_ids_unique_prefixed_and_ascii(kumamoto: Consortium) -> None:
    ids = [b.id for b in kumamoto.branches()]
    assert len(ids) == len(set(ids)) == 40
    for branch_id in ids:
        assert re.fullmatch(r"kumamoto-pref/[a-z0-9]+(?:-[a-z0-9]+)*", branch_id), branch_id
    names = [b.name for b in kumamoto.branches()]
    assert len(names) == len(set(names))


def test_main_library(kumamoto: Consortium) -> None:
    honkan = kumamoto.branch("kumamoto-pref/honkan")
    assert honkan.name == "熊本県立図書館" and honkan.municipality == "熊本市"
    assert honkan.phone is None and honkan.address is None  # neither is printed in the seeds
    assert (honkan.lat, honkan.lon) == (32.786155, 130.735291) and honkan.coordinates_source == P27
    assert "7 days" in (honkan.notes or "")
    assert kumamoto.target_settings("kumamoto-pref").branch_codes["HONKAN"] == "kumamoto-pref/honkan"


# --- maintenance window ---------------------------------------------------------------------------


@pytest.mark.parametrize("day", range(7))  # every weekday: the seed says 毎日
def test_maintenance_window_daily_0430_to_0500_jst(kumamoto: Consortium, day: int) -> None:
    pref = kumamoto.member("kumamoto-pref")
    base = datetime(2025, 6, 2, tzinfo=JST) + timedelta(days=day)  # 2025-06-02 is a Monday
    window = pref.maintenance_at(base.replace(hour=4, minute=45))
    assert window is not None and "午前4時30分から午前5時" in (window.note or "")
    assert pref.maintenance_at(base.replace(hour=4, minute=30)) is not None
    assert pref.maintenance_at(base.replace(hour=4, minute=59, second=59)) is not None
    assert pref.maintenance_at(base.replace(hour=5, minute=0)) is None
    assert pref.maintenance_at(base.replace(hour=4, minute=29)) is None
    assert pref.maintenance_at(base.replace(hour=16, minute=45)) is None


def test_maintenance_window_is_in_the_consortium_time_zone(kumamoto: Consortium) -> None:
    pref = kumamoto.member("kumamoto-pref")
    local = ZoneInfo(kumamoto.timezone)
    # 19:45 UTC is 04:45 the next day in Japan; 20:00 UTC is 05:00.
    assert pref.maintenance_at(datetime(2025, 6, 1, 19, 45, tzinfo=UTC).astimezone(local)) is not None
    assert pref.maintenance_at(datetime(2025, 6, 1, 20, 0, tzinfo=UTC).astimezone(local)) is None


# --- names, notes, coordinates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "branch_id", "municipality"),
    [
        ("宇土市立図書館", "kumamoto-pref/uto", "宇土市"),
        ("玉名市民図書館", "kumamoto-pref/tamana", "玉名市"),
        ("宇城市立図書館(中央館)", "kumamoto-pref/uki-chuo", "宇城市"),
        ("合志市ヴィ―ブル図書館", "kumamoto-pref/koshi-vivre", "合志市"),  # U+2015 as printed
        ("大津町立 おおづ図書館", "kumamoto-pref/ozu", "大津町"),  # the space as printed
        ("八代市立図書館本館", "kumamoto-pref/yatsushiro", "八代市"),
        ("芦北町立図書館", "kumamoto-pref/ashikita", "芦北町"),
        ("あさぎり町生涯学習センター図書館", "kumamoto-pref/asagiri", "あさぎり町"),
        ("天草市立牛深図書館", "kumamoto-pref/amakusa-ushibuka", "天草市"),
    ],
)
def test_name_spot_checks(kumamoto: Consortium, name: str, branch_id: str, municipality: str) -> None:
    branch = _by_name(kumamoto, name)
    assert branch.id == branch_id and branch.municipality == municipality


def test_pickup_libraries_say_they_are_not_branches(kumamoto: Consortium) -> None:
    for branch in _pickups(kumamoto):
        notes = branch.notes or ""
        assert "pickup point (受取館)" in notes and "not a branch" in notes, branch.id
        assert re.search(r"Region \(seed 002\): \S+地域", notes), branch.id
        assert branch.codes == [], branch.id  # no holdings of their own in this consortium


def test_coordinates_are_sourced_or_explained(kumamoto: Consortium) -> None:
    for branch in kumamoto.branches():
        if branch.lat is None:
            assert branch.lon is None and branch.coordinates_note, branch.id
        else:
            assert branch.coordinates_source == P27, branch.id
            # Inside Kumamoto prefecture.
            assert 32.0 < branch.lat < 33.3 and 129.9 < branch.lon < 131.4, branch.id
    missing = {b.id for b in kumamoto.branches() if b.lat is None}
    assert missing == MOVED | NOT_IN_P27
    for branch_id in MOVED:
        assert "on purpose" in (kumamoto.branch(branch_id).coordinates_note or ""), branch_id
    for branch_id in FUZZY:
        branch = kumamoto.branch(branch_id)
        assert branch.lat is not None and "Fuzzy" in (branch.coordinates_note or ""), branch_id
    located = [b for b in _pickups(kumamoto) if b.lat is not None]
    assert len(located) == 27  # 21 exact + 6 fuzzy


# --- against the shared seed and data -------------------------------------------------------------


def _seed_names() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    block = text[text.index("利用可能な熊本県内の図書館") : text.index("以上39館")]
    names: list[str] = []
    for line in (raw.strip() for raw in block.splitlines()[1:]):
        if not line:
            continue
        heading = re.fullmatch(r"(\S+地域)(?:\s+(.+))?", line)  # one heading shares its line with its library
        if heading:
            if heading[2]:
                names.append(heading[2])
            continue
        names.append(line)
    return names


@pytest.mark.shared_data("seeds/002_425a9ff88af8d101.txt")
def test_pickup_names_match_the_seed_in_order(kumamoto: Consortium) -> None:
    assert [b.name for b in _pickups(kumamoto)] == _seed_names()


@pytest.mark.shared_data("data/libraries/mlit_p27_2013_libraries_okayama_hyogo_kumamoto_aomori.csv")
def test_every_coordinate_is_a_kumamoto_p27_row(kumamoto: Consortium) -> None:
    with P27_CSV.open(encoding="utf-8") as fh:
        points = {(float(r["lat"]), float(r["lon"])) for r in csv.DictReader(fh) if r["pref"] == "熊本県"}
    for branch in kumamoto.branches():
        if branch.lat is not None:
            assert (branch.lat, branch.lon) in points, branch.id


def test_pickup_only_points_hold_no_stock_in_the_demo() -> None:
    from broker.demo import sandbox_member

    consortium = load_consortium(KUMAMOTO_FILE)
    member = consortium.members[0]
    stocked = [b for b in member.branches if b.holds_stock]
    assert [b.id for b in stocked] == ["kumamoto-pref/honkan"]
    assert [b.id for b in sandbox_member(member).branches] == ["kumamoto-pref/honkan"]
