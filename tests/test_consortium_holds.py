"""The optional `[members.holds]` connector table of a consortium file."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.consortium import ConsortiumFileError, load_consortium

FILE = """\
id = "test"
name = "Test"
kind = "mutual_use"
{base_url}

[[members]]
id = "alpha-city"
name = "Alpha City Library"
municipality = "Alpha"
connector = {{ kind = "sru", endpoint = "https://alpha.example/sru" }}
{holds}

[[members.branches]]
id = "alpha-city/main"
name = "Alpha Main"
municipality = "Alpha"
coordinates_note = "test"
codes = ["MAIN"]
pickup_point = true
accepts_returns = true
"""


def _load(tmp_path: Path, holds: str, base_url: str = 'base_url = "http://127.0.0.1:9"'):
    path = tmp_path / "c.toml"
    path.write_text(FILE.format(holds=holds, base_url=base_url), encoding="utf-8")
    return load_consortium(path)


def test_holds_settings_carry_the_holds_endpoint_and_the_same_branch_codes(tmp_path: Path) -> None:
    c = _load(tmp_path, '[members.holds]\nkind = "ncip"\nendpoint = "/alpha-city/ncip"\ntimeout_s = 4\noptions = { agency_id = "ALPHA" }')
    search, holds = c.target_settings("alpha-city"), c.holds_settings("alpha-city")
    assert holds is not None and holds == c.target_settings("alpha-city", role="holds")
    assert (search.kind, search.endpoint) == ("sru", "https://alpha.example/sru")
    assert (holds.kind, holds.endpoint, holds.timeout_s, holds.options) == ("ncip", "http://127.0.0.1:9/alpha-city/ncip", 4.0, {"agency_id": "ALPHA"})
    assert holds.member_codes == search.member_codes == {"alpha-city/main": "MAIN"}
    assert c.endpoint_for("alpha-city", "holds") == holds.endpoint
    assert c.with_base_url("http://127.0.0.1:7").holds_settings("alpha-city").endpoint == "http://127.0.0.1:7/alpha-city/ncip"  # type: ignore[union-attr]


def test_without_a_holds_table_there_are_no_holds_settings(tmp_path: Path) -> None:
    c = _load(tmp_path, "")
    assert c.holds_settings("alpha-city") is None and c.member("alpha-city").holds is None
    with pytest.raises(KeyError, match="alpha-city"):
        c.target_settings("alpha-city", role="holds")
    with pytest.raises(ValueError, match="unknown connector role 'lend'"):
        c.target_settings("alpha-city", role="lend")  # type: ignore[arg-type]


def test_a_relative_holds_endpoint_needs_base_url(tmp_path: Path) -> None:
    with pytest.raises(ConsortiumFileError) as error:
        _load(tmp_path, 'holds = { kind = "ncip", endpoint = "/alpha-city/ncip" }', base_url="")
    assert "members[0].holds.endpoint (member alpha-city): relative endpoint '/alpha-city/ncip' needs base_url" in str(error.value)


def test_a_misspelt_holds_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConsortiumFileError) as error:
        _load(tmp_path, 'holds = { kind = "ncip", endpoint = "/x/ncip", timeout = 3 }')
    assert "members[0].holds.timeout (member alpha-city): unknown field" in str(error.value)
