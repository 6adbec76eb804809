"""The national consortium file: generated from the real P27 and CiNii lists, and its place fields."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from broker.consortium import ConsortiumFileError, load_consortium
from broker.national_file import CINII_FILE, P27_FILE, generate_national, national_consortium
from broker.prefectures import PREFECTURES
from tests.conftest import SHARED_DIR

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = SHARED_DIR / "data" / "libraries"
SHIPPED = ROOT / "consortia" / "national.toml"

needs_libraries = pytest.mark.shared_data(f"data/libraries/{P27_FILE}", f"data/libraries/{CINII_FILE}")


def _p27_rows() -> list[dict[str, str]]:
    with (LIBRARIES / P27_FILE).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@needs_libraries
def test_generation_is_deterministic_and_the_shipped_file_is_a_fresh_generation() -> None:
    first = generate_national(LIBRARIES)
    assert generate_national(LIBRARIES) == first
    assert SHIPPED.read_text(encoding="utf-8") == first, (
        "consortia/national.toml differs from a fresh generation: run "
        "`python -m broker.cli consortium generate-national --data ../shared/data/libraries --out consortia/national.toml`"
    )


@needs_libraries
def test_the_cli_writes_the_same_file(tmp_path: Path) -> None:
    out = tmp_path / "national.toml"
    subprocess.run(
        [sys.executable, "-m", "broker.cli", "consortium", "generate-national", "--data", str(LIBRARIES), "--out", str(out)],
        cwd=ROOT, check=True, timeout=120,
    )  # fmt: skip
    assert out.read_text(encoding="utf-8") == SHIPPED.read_text(encoding="utf-8")


@needs_libraries
def test_the_header_says_how_the_file_was_made() -> None:
    header = [line for line in SHIPPED.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    text = "\n".join(header)
    assert "yokodan consortium generate-national --data ../shared/data/libraries --out consortia/national.toml" in text
    assert P27_FILE in text and CINII_FILE in text
    assert re.search(r"sha256 [0-9a-f]{64}", text)


@needs_libraries
def test_one_member_per_p27_municipality_and_every_p27_library_a_branch_once() -> None:
    consortium = load_consortium(SHIPPED)
    rows = _p27_rows()
    municipal = [r for r in rows if r["P27_007_manager"] == "3" and r["P27_003_public_facility_class"] == "03003"]
    # Wards of a designated city (岡山市北区) belong to the city's one system.
    expected_systems = {re.sub(r"^(.+?市).+区$", r"\1", r["muni_name_2020s"]) for r in municipal}
    systems = [m for m in consortium.members if m.id.startswith("muni-")]
    assert sorted(m.municipality for m in systems) == sorted(expected_systems)
    okayama = consortium.member("muni-33100")
    assert okayama.municipality == "岡山市"
    assert sorted(b.name for b in okayama.branches) == sorted(
        r["name"] for r in municipal if r["muni_name_2020s"].startswith("岡山市")
    )
    # Every P27 row is exactly one branch, with its own coordinates.
    p27_branches = sorted(
        (b.name, b.lat, b.lon) for m in consortium.members for b in m.branches if b.coordinates_source
    )
    assert p27_branches == sorted((r["name"], round(float(r["lat"]), 6), round(float(r["lon"]), 6)) for r in rows)
    assert len(rows) == 270


@needs_libraries
def test_members_carry_their_prefecture_and_region() -> None:
    consortium = load_consortium(SHIPPED)
    assert Counter(m.prefecture.code for m in consortium.members if m.prefecture) == Counter(
        {"02": 41, "28": 109, "33": 63, "43": 49}
    )
    assert all(m.prefecture is not None and m.region == PREFECTURES[m.prefecture.code].region for m in consortium.members)
    assert {m.region for m in consortium.members} == {"東北", "近畿", "中国", "九州"}
    pref_library = next(m for m in consortium.members if m.name == "岡山県立図書館")
    # The CiNii row of the same name merged into the P27 one: coordinates and CiNii's number and phone.
    assert pref_library.id == "fa011000"
    assert pref_library.branches[0].lat == pytest.approx(34.66, abs=0.05)
    assert pref_library.branches[0].phone == "086-224-1286"
    names = [m.name for m in consortium.members]
    assert names.count("岡山県立図書館") == 1


def _write_cinii(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["FA番号", "KENCODE", "館名", "住所", "電話1", "電話2", "電話3", "電話4", "電話5"])
        writer.writerows(rows)


@needs_libraries
def test_cinii_rows_missing_fields_are_left_out_with_a_reason_or_kept_without_them(tmp_path: Path) -> None:
    shutil.copy(LIBRARIES / P27_FILE, tmp_path / P27_FILE)
    _write_cinii(
        tmp_path / CINII_FILE,
        [
            ["FA900001", "33", "", "岡山県岡山市北区1-1", "086-000-0000", "", "", "", ""],  # no name
            ["FA900002", "", "名無し県図書室", "どこか1-1", "", "", "", "", ""],  # no prefecture
            ["FA900003", "33", "住所なし図書室", "", "", "", "", "", ""],  # no address
            ["FA900004", "43", "電話なし図書室", "熊本県上益城郡益城町1-1", "", "", "", "", ""],  # no phone: kept
            ["FA90005X", "28", "括弧電話図書室", "神戸市灘区1-1", "受付:(078)803-7339(直通)", "", "", "", ""],
        ],
    )
    data, skipped = national_consortium(tmp_path)
    assert skipped == [
        "CiNii FA900001 (no name): no library name",
        "CiNii FA900002 名無し県図書室: no known prefecture code (KENCODE)",
        "CiNii FA900003 住所なし図書室: no address (its municipality is unknown)",
    ]
    by_id = {m["id"]: m for m in data["members"]}
    no_phone = by_id["fa900004"]
    assert no_phone["municipality"] == "益城町" and "phone" not in no_phone["branches"][0]
    assert no_phone["prefecture"] == {"code": "43", "name": "熊本県"} and no_phone["region"] == "九州"
    bracketed = by_id["fa90005x"]
    assert bracketed["municipality"] == "神戸市" and bracketed["branches"][0]["phone"] == "078-803-7339"
    # What is generated still loads as a consortium.
    text = generate_national(tmp_path)
    assert "#   CiNii FA900003 住所なし図書室: no address (its municipality is unknown)" in text
    out = tmp_path / "national.toml"
    out.write_text(text, encoding="utf-8")
    assert len(load_consortium(out).members) == len(data["members"])


def test_a_missing_source_file_is_a_named_error(tmp_path: Path) -> None:
    from broker.national_file import NationalDataError

    with pytest.raises(NationalDataError, match=re.escape(str(tmp_path / P27_FILE)) + ": file not found"):
        national_consortium(tmp_path)


# --- the member schema's place fields -------------------------------------------------------------

_MEMBER = """
[[members]]
id = "a"
name = "A"
municipality = "岡山市"
{place}
[members.connector]
kind = "sru"
endpoint = "/a/sru"
[[members.branches]]
id = "a/b"
name = "B"
municipality = "岡山市"
pickup_point = true
accepts_returns = true
coordinates_note = "test"
"""


def _file(tmp_path: Path, place: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(
        'id = "x"\nname = "x"\nkind = "mutual_use"\nbase_url = "http://127.0.0.1:1"\n' + _MEMBER.format(place=place),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("place", "line"),
    [
        ('prefecture = { code = "48", name = "岡山県" }', "members[0].prefecture.code (member a): unknown JIS X 0401 prefecture code '48' (01–47, two digits)"),
        ('prefecture = { code = "33", name = "広島県" }', "members[0].prefecture.name (member a): prefecture 33 is 岡山県, not '広島県'"),
        ('prefecture = { code = "33", name = "岡山県" }\nregion = "近畿"', "members[0].region (member a): 岡山県 is in 中国, not '近畿'"),
        ('region = "関西"', "members[0].region (member a): unknown region '関西' (allowed: 北海道, 東北, 関東, 中部, 近畿, 中国, 四国, 九州)"),
        ('prefecture = { code = "33" }', "members[0].prefecture.name (member a): required field is missing"),
    ],
)
def test_a_bad_place_in_a_file_names_the_file_the_field_and_the_reason(tmp_path: Path, place: str, line: str) -> None:
    path = _file(tmp_path, place)
    with pytest.raises(ConsortiumFileError) as caught:
        load_consortium(path)
    assert str(caught.value).splitlines() == [f"{path}: {line}"]


def test_place_fields_are_optional_and_an_integer_code_is_read_as_two_digits(tmp_path: Path) -> None:
    assert load_consortium(_file(tmp_path, "")).members[0].prefecture is None
    member = load_consortium(_file(tmp_path, 'prefecture = { code = 2, name = "青森県" }')).members[0]
    assert member.prefecture is not None and member.prefecture.code == "02"
    assert member.region is None and member.region_name == "東北"


def test_the_shipped_file_is_toml_the_other_tools_read() -> None:
    # Plain TOML (no comments needed to understand it): tomllib reads it as the broker does.
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    assert data["id"] == "national" and data["search"] == {"second_stage": False}
