"""The shipped Okayama file against seeds 000/001: 12 systems, 41 libraries, the prefectural library's pickup service."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from broker.consortium import CONSORTIA_DIR, Consortium, load_consortium

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_001 = SHARED / "seeds" / "001_e6da7cf0bda5d05c.txt"


@pytest.fixture(scope="module")
def okayama() -> Consortium:
    return load_consortium(CONSORTIA_DIR / "okayama.toml")


def test_12_systems_41_libraries_and_the_prefectural_library(okayama: Consortium) -> None:
    municipal = [m for m in okayama.members if m.id != "okayama-pref"]
    assert len(municipal) == 12 and sum(len(m.branches) for m in municipal) == 41
    assert [b.id for b in okayama.member("okayama-pref").branches] == ["okayama-pref/honkan"]


def test_no_mobile_vans_or_community_corners(okayama: Consortium) -> None:
    assert not [b.id for b in okayama.branches() if b.mobile]
    assert not [b.name for b in okayama.branches() if re.search("公民館|地域センター|移動図書館", b.name)]


def test_the_okayama_city_libraries_that_take_no_prefectural_returns_are_those_of_seed_001(okayama: Consortium) -> None:
    if not SEED_001.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SEED_001} is missing")
        pytest.skip("needs ../shared/seeds")
    seed = SEED_001.read_text(encoding="utf-8")
    (printed,) = re.findall(r"ただし、(岡山市立.+?)はできません", seed)
    assert printed == "岡山市立中央、幸町、浦安、足守、伊島図書館および西大寺緑花公園緑の図書室"
    flagged = [b.id for b in okayama.branches() if "Does not take returns of 岡山県立図書館 items" in (b.notes or "")]
    assert flagged == [f"okayama-city/{s}" for s in ("chuo", "saiwai", "urayasu", "ashimori", "ijima", "midori")]


def test_the_prefectural_pickup_service_is_described_and_its_unknowns_said(okayama: Consortium) -> None:
    notes = okayama.member("okayama-pref").notes or ""
    assert "受渡館" in notes and "not printed in seed 001" in notes
    assert "via their municipality's central library" in notes


def test_sru_members_have_a_holds_connector(okayama: Consortium) -> None:
    sru = [m.id for m in okayama.members if m.connector.kind == "sru"]
    assert sru == ["okayama-city", "setouchi-city", "misaki-town"]
    assert [okayama.member(m).holds.kind for m in sru] == ["ncip", "ils_rest", "ncip"]  # type: ignore[union-attr]
    assert okayama.holds_settings("okayama-city").endpoint == "http://127.0.0.1:8410/okayama-city/ncip"  # type: ignore[union-attr]
