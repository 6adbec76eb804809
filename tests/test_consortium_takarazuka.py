"""The shipped Takarazuka file (consortia/takarazuka.toml): one city system, reciprocal neighbours (seed 004)."""

from __future__ import annotations

import ast
import csv
import os
import re
from pathlib import Path

import pytest

from broker.consortium import CONSORTIA_DIR, Consortium, load_consortium

FILE = CONSORTIA_DIR / "takarazuka.toml"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED = SHARED / "seeds" / "004_8468d09c321fe487.txt"
P27_CSV = SHARED / "data" / "libraries" / "mlit_p27_2013_libraries_okayama_hyogo_kumamoto_aomori.csv"


def shared_file(path: Path) -> Path:
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing (CI must have ../shared)")
        pytest.skip(f"needs {path} beside the repository")
    return path


@pytest.fixture(scope="module")
def takarazuka() -> Consortium:
    return load_consortium(FILE)


def seed_neighbours() -> list[str]:
    text = shared_file(SEED).read_text(encoding="utf-8")
    (line,) = [l for l in text.splitlines() if l.endswith("にお住まいの方") and "・" in l]
    return line.removeprefix("- ").removesuffix("にお住まいの方").split("・")


def commented_list(key: str) -> list[str]:
    """A `# key = [...]` line of the file's header: the form the policy schema is to take over."""
    (line,) = [l for l in FILE.read_text(encoding="utf-8").splitlines() if re.match(rf"#\s+{key} = \[", l)]
    return ast.literal_eval(line.split("=", 1)[1].strip())


def test_loads_as_a_city_system(takarazuka: Consortium) -> None:
    assert (takarazuka.id, takarazuka.kind, [m.id for m in takarazuka.members]) == ("takarazuka", "city_system", ["takarazuka-city"])
    member = takarazuka.member("takarazuka-city")
    assert member.connector.kind == "sru" and member.holds is not None and member.holds.kind == "ils_rest"
    assert member.phone is None  # seed 004 prints no main number


def test_the_reciprocal_neighbours_are_the_seeds_eight_in_its_order(takarazuka: Consortium) -> None:
    neighbours = seed_neighbours()
    assert neighbours == ["芦屋市", "尼崎市", "伊丹市", "猪名川町", "川西市", "三田市", "西宮市", "神戸市"]
    assert commented_list("residents_of") == ["宝塚市", *neighbours]
    assert commented_list("commuters_or_students_of") == ["宝塚市"]
    notes = takarazuka.member("takarazuka-city").notes or ""
    assert all(city in notes for city in neighbours)


def test_branches_as_printed_the_mobile_library_returns_only(takarazuka: Consortium) -> None:
    branches = {b.id: b for b in takarazuka.branches()}
    assert list(branches) == ["takarazuka-city/chuo", "takarazuka-city/nishi", "takarazuka-city/idou"]
    assert [b.id for b in branches.values() if b.pickup_point] == ["takarazuka-city/chuo", "takarazuka-city/nishi"]
    mobile = branches["takarazuka-city/idou"]
    assert mobile.mobile and not mobile.pickup_point and mobile.accepts_returns and mobile.lat is None
    for pickup in ("chuo", "nishi"):
        assert "inferred" in (branches[f"takarazuka-city/{pickup}"].notes or "")


def test_the_only_phone_is_the_one_printed(takarazuka: Consortium) -> None:
    seed = shared_file(SEED).read_text(encoding="utf-8")
    assert "西図書館 (電話:0797-77-1222)" in seed
    assert [(b.id, b.phone) for b in takarazuka.branches() if b.phone] == [("takarazuka-city/nishi", "0797-77-1222")]


def test_coordinates_are_the_p27_rows(takarazuka: Consortium) -> None:
    with shared_file(P27_CSV).open(encoding="utf-8") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh) if r["muni_name_2020s"] == "宝塚市"}
    for branch in takarazuka.branches():
        if branch.lat is None:
            continue
        row = rows[branch.name]
        assert (branch.lat, branch.lon) == (float(row["lat"]), float(row["lon"]))
        assert branch.coordinates_source == "MLIT 国土数値情報 P27 (2013)"
        assert branch.address == f"兵庫県宝塚市{row['address_in_muni']}"


def test_seed_rules_for_the_policy_sections_are_recorded(takarazuka: Consortium) -> None:
    notes = takarazuka.notes or ""
    for fact in ("10 in total including requests", "up to 2 holds by phone", "15 loans", "every 3 years", "within 1 week"):
        assert fact in notes
