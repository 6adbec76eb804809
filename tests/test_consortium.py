"""The consortium model and the shipped Okayama file (consortia/okayama.toml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.consortium import (
    Consortium,
    ConsortiumFileError,
    load_consortium,
    normalise_phone,
)
from yokodan import Availability, ConfigError
from connectors.options import HtmlOpacOptions, SruOptions
from connectors.settings import TargetSettings

MEMBER_IDS = [
    "okayama-city",
    "tsuyama-city",
    "tamano-city",
    "bizen-city",
    "setouchi-city",
    "akaiwa-city",
    "maniwa-city",
    "wake-town",
    "hayashima-town",
    "kumenan-town",
    "misaki-town",
    "kibichuo-town",
    "okayama-pref",
]
PHONE = re.compile(r"0\d{1,4}-\d{1,4}-\d{4}")
LEAFLET = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_0843328c4f32dde9.txt"


@pytest.fixture(scope="module")
def okayama() -> Consortium:
    return load_consortium(Consortium.default_path())


def _branch_by_name(c: Consortium, name: str):
    (branch,) = [b for b in c.branches() if b.name == name]
    return branch


# --- the shipped file -----------------------------------------------------------------------------


def test_default_path_is_the_shipped_okayama_file() -> None:
    path = Consortium.default_path()
    assert path.name == "okayama.toml" and path.parent.name == "consortia"
    assert path.is_file()
    assert load_consortium().id == "okayama"  # no argument: the default file


def test_members_and_branch_counts(okayama: Consortium) -> None:
    assert okayama.kind == "mutual_use"
    assert [m.id for m in okayama.members] == MEMBER_IDS
    municipal = [m for m in okayama.members if m.id != "okayama-pref"]
    assert sum(len(m.branches) for m in municipal) == 41  # the leaflet's 全４１館
    assert len({m.municipality for m in municipal}) == 12  # 7 cities + 5 towns
    assert len(okayama.member("okayama-pref").branches) == 1
    counts = {m.id: len(m.branches) for m in municipal}
    assert counts["okayama-city"] == 10 and counts["maniwa-city"] == 7 and counts["bizen-city"] == 3


def test_ids_unique_and_prefixed(okayama: Consortium) -> None:
    branch_ids = [b.id for b in okayama.branches()]
    assert len(branch_ids) == len(set(branch_ids)) == 42
    for member in okayama.members:
        assert all(b.id.startswith(member.id + "/") for b in member.branches)


def test_every_phone_is_ascii_and_well_formed(okayama: Consortium) -> None:
    for member in okayama.members:
        assert member.phone and PHONE.fullmatch(member.phone), member.id
        for branch in member.branches:
            assert branch.phone and PHONE.fullmatch(branch.phone), branch.id


@pytest.mark.parametrize(
    ("name", "phone"),
    [
        ("岡山市立中央図書館", "086-223-3373"),
        ("津山市立図書館", "0868-24-2919"),
        ("美咲町立旭図書館", "0867-27-9012"),
        ("真庭市立北房図書館", "0866-52-5220"),
        ("真庭市立中央図書館", "0867-44-2012"),  # printed as （086７）-４４-２０１２
        ("吉備中央町ロマン高原かよう図書館", "0866-54-1331"),
    ],
)
def test_phone_spot_checks(okayama: Consortium, name: str, phone: str) -> None:
    assert _branch_by_name(okayama, name).phone == phone


def test_prefectural_library(okayama: Consortium) -> None:
    pref = okayama.member("okayama-pref")
    assert pref.phone == "086-224-1287"  # 図書館協力班 direct line, seed 001
    assert "図書館協力班" in (pref.notes or "")
    honkan = okayama.branch("okayama-pref/honkan")
    assert honkan.address and "丸の内2-6-30" in honkan.address
    assert honkan.lat is not None and honkan.coordinates_source


@pytest.mark.shared_data("seeds/000_0843328c4f32dde9.txt")
def test_phones_match_the_leaflet_in_order(okayama: Consortium) -> None:
    printed = [normalise_phone(t) for t in re.findall(r"TEL([^\n]+)", LEAFLET.read_text(encoding="utf-8"))]
    shipped = [b.phone for m in okayama.members if m.id != "okayama-pref" for b in m.branches]
    assert shipped == printed


def test_inferred_names_say_so(okayama: Consortium) -> None:
    inferred = {b.id for b in okayama.branches() if "Name inferred" in (b.notes or "")}
    assert inferred == {
        "okayama-city/urayasu",
        "okayama-city/takebe",
        "okayama-city/seto",
        "okayama-city/midori",
        "tsuyama-city/kamo",
        "bizen-city/yoshinaga",
        "bizen-city/hinase",
    }


def test_coordinates_are_sourced_or_explained(okayama: Consortium) -> None:
    for branch in okayama.branches():
        if branch.lat is None:
            assert branch.lon is None and branch.coordinates_note, branch.id
        else:
            assert branch.coordinates_source == "MLIT 国土数値情報 P27 (2013)", branch.id
    # P27 has the predecessor building, not the current site: deliberately no coordinates.
    shimin = okayama.branch("setouchi-city/shimin")
    assert shimin.lat is None and "predecessor" in (shimin.coordinates_note or "")


def test_relocations_are_noted(okayama: Consortium) -> None:
    assert "ゆめとぴあ長船" in (okayama.branch("setouchi-city/osafune").notes or "")
    assert "美咲町生涯学習センター" in (okayama.branch("misaki-town/chuo").notes or "")
    assert "旭地域多世代交流拠点" in (okayama.branch("misaki-town/asahi").notes or "")
    assert "令和８年度" in (okayama.notes or "")


def test_all_libraries_take_returns_and_pickups(okayama: Consortium) -> None:
    for branch in okayama.branches():
        assert branch.accepts_returns and branch.pickup_point and not branch.mobile


def test_target_settings_resolve_endpoint_and_map_codes(okayama: Consortium) -> None:
    ts = okayama.target_settings("okayama-city")
    assert isinstance(ts, TargetSettings)
    assert ts.kind == "sru"
    assert ts.endpoint == "http://127.0.0.1:8410/okayama-city/sru"
    assert ts.branch_codes["CHUO"] == "okayama-city/chuo"
    assert ts.branch_codes["幸町図書館"] == "okayama-city/saiwai"
    assert ts.branch_codes["岡山市立中央図書館"] == "okayama-city/chuo"  # the name too
    assert ts.branch_codes["okayama-city/nadasaki"] == "okayama-city/nadasaki"  # and the id
    # Each member's labels map only to its own branches: 中央図書館 means a different building per member.
    assert okayama.target_settings("akaiwa-city").branch_codes["中央図書館"] == "akaiwa-city/chuo"


def test_with_base_url_returns_a_copy(okayama: Consortium) -> None:
    moved = okayama.with_base_url("http://sandbox.test:9000/")
    assert moved.endpoint_for("misaki-town") == "http://sandbox.test:9000/misaki-town/sru"
    assert moved.endpoint_for("maniwa-city") == "http://sandbox.test:9000/maniwa-city/opac/"
    assert okayama.endpoint_for("maniwa-city") == "http://127.0.0.1:8410/maniwa-city/opac/"
    with pytest.raises(ValueError, match="http"):
        okayama.with_base_url("ftp://example.org")


def test_lookups_raise_key_error(okayama: Consortium) -> None:
    with pytest.raises(KeyError):
        okayama.member("kurashiki-city")
    with pytest.raises(KeyError):
        okayama.branch("okayama-city/nowhere")


# --- phone normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("printed", "stored"),
    [
        ("TEL（086）223-3373", "086-223-3373"),
        ("（086７）-４４-２０１２", "0867-44-2012"),
        (" TEL（０８６）295-１９４２ ", "086-295-1942"),
        ("086-223-3373", "086-223-3373"),
        ("0868−24−2919", "0868-24-2919"),
    ],
)
def test_normalise_phone(printed: str, stored: str) -> None:
    assert normalise_phone(printed) == stored


@pytest.mark.parametrize("bad", ["223-3373", "086-223-33", "+81 86 223 3373", "call us"])
def test_normalise_phone_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(bad)


# --- broken files ---------------------------------------------------------------------------------

MINIMAL = """\
id = "test"
name = "Test consortium"
kind = "mutual_use"
base_url = "http://127.0.0.1:8410"

[[members]]
id = "alpha-city"
name = "Alpha City Library"
municipality = "Alpha"
phone = "086-000-0000"
connector = { kind = "sru", endpoint = "/alpha-city/sru" }

[[members.branches]]
id = "alpha-city/main"
name = "Alpha Main"
municipality = "Alpha"
lat = 34.6
lon = 133.9
coordinates_source = "test"
codes = ["MAIN"]
pickup_point = true
accepts_returns = true

[[members]]
id = "beta-town"
name = "Beta Town Library"
municipality = "Beta"
connector = { kind = "sru", endpoint = "https://beta.example/sru", timeout_s = 5 }
maintenance = [{ start = "04:30", end = "05:00" }]

[[members.branches]]
id = "beta-town/main"
name = "Beta Main"
municipality = "Beta"
coordinates_note = "unknown"
codes = ["MAIN", "本館"]
pickup_point = true
accepts_returns = false
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConsortiumFileError) as info:
        load_consortium(path)
    message = str(info.value)
    assert str(path) in message
    assert all(line.startswith(f"{path}: ") for line in message.splitlines())
    return message


def test_minimal_file_loads(tmp_path: Path) -> None:
    c = load_consortium(_write(tmp_path, MINIMAL))
    assert [m.id for m in c.members] == ["alpha-city", "beta-town"]
    assert c.endpoint_for("beta-town") == "https://beta.example/sru"  # absolute: base_url ignored
    beta = c.member("beta-town")
    assert beta.connector.timeout_s == 5 and beta.maintenance[0].start.hour == 4


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('name = "Alpha Main"', 'name = "Alpha Main'))
    assert "TOML syntax error" in message
    assert re.search(r"line 15, column \d+", message)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConsortiumFileError, match="file not found") as info:
        load_consortium(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ConfigError) and not isinstance(info.value, ValueError)


def test_unknown_field_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace("lat = 34.6", "lattitude = 34.6\nlat = 34.6"))
    assert "members[0].branches[0].lattitude (branch alpha-city/main): unknown field" in message


def test_branch_of_another_member(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('id = "beta-town/main"', 'id = "alpha-city/main"'))
    assert "members[1].branches[0].id (branch alpha-city/main): must be 'beta-town/<slug>'" in message


def test_duplicate_member_id(tmp_path: Path) -> None:
    text = MINIMAL.replace('id = "beta-town"', 'id = "alpha-city"').replace("beta-town/main", "alpha-city/other")
    message = _error(tmp_path, text)
    assert "members[1].id (member alpha-city): duplicate member id" in message


def test_duplicate_branch_id(tmp_path: Path) -> None:
    extra = MINIMAL.split("[[members]]\nid = \"beta-town\"")[0]
    branch = extra[extra.index("[[members.branches]]") :].replace('codes = ["MAIN"]', 'codes = ["OTHER"]')
    branch = branch.replace('name = "Alpha Main"', 'name = "Alpha Other"')
    message = _error(tmp_path, MINIMAL + "\n" + branch.replace("alpha-city", "beta-town"))
    assert "members[1].branches[1].id (branch beta-town/main): duplicate branch id" in message


def test_branch_id_must_carry_member_prefix(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('id = "beta-town/main"', 'id = "beta/main"'))
    assert "members[1].branches[0].id" in message and "beta-town/" in message


def test_duplicate_code_within_member(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('codes = ["MAIN", "本館"]', 'codes = ["MAIN", "MAIN"]'))
    assert "members[1].branches[0].codes[1]" in message and "listed twice" in message


def test_lat_out_of_range(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace("lat = 34.6", "lat = 134.6"))
    assert "members[0].branches[0].lat (branch alpha-city/main)" in message
    assert "90" in message and "134.6" in message


def test_coordinates_without_source(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('coordinates_source = "test"\n', ""))
    assert "members[0].branches[0].coordinates_source" in message


def test_branch_without_coordinates_needs_a_note(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('coordinates_note = "unknown"\n', ""))
    assert "members[1].branches[0].coordinates_note" in message


def test_wrong_type(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace("timeout_s = 5", 'timeout_s = "fast"'))
    assert "members[1].connector.timeout_s (member beta-town)" in message


def test_bad_status_word(tmp_path: Path) -> None:
    text = MINIMAL.replace("timeout_s = 5", 'timeout_s = 5, status_words = { "貸出可" = "lendable" }')
    message = _error(tmp_path, text)
    assert 'members[1].connector.status_words."貸出可"' in message
    # A valid one loads into the shared vocabulary.
    good = MINIMAL.replace("timeout_s = 5", 'timeout_s = 5, status_words = { "貸出可" = "available" }')
    c = load_consortium(_write(tmp_path, good))
    assert c.target_settings("beta-town").status_words == {"貸出可": Availability.AVAILABLE}


def test_missing_required_field(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace("pickup_point = true\naccepts_returns = false\n", "accepts_returns = false\n"))
    assert "members[1].branches[0].pickup_point (branch beta-town/main): required field is missing" in message


def test_bad_phone(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('phone = "086-000-0000"', 'phone = "000"'))
    assert "members[0].phone (member alpha-city)" in message


def test_bad_maintenance_time(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('end = "05:00"', 'end = "25:00"'))
    assert "members[1].maintenance[0].end" in message and "HH:MM" in message


def test_relative_endpoint_without_base_url(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('base_url = "http://127.0.0.1:8410"\n', ""))
    assert "members[0].connector.endpoint" in message and "base_url" in message


def test_bad_endpoint(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace('"/alpha-city/sru"', '"alpha-city/sru"'))
    assert "members[0].connector.endpoint (member alpha-city)" in message


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = MINIMAL.replace("lat = 34.6", "lat = 99.0").replace('kind = "mutual_use"', 'kind = "mutual"')
    message = _error(tmp_path, text)
    assert len(message.splitlines()) == 2
    assert "kind" in message and "members[0].branches[0].lat" in message


# --- typed connector options (connectors/options.py) ----------------------------------------------

ALPHA_CONNECTOR = 'connector = { kind = "sru", endpoint = "/alpha-city/sru" }'


def _alpha_connector(text: str) -> str:
    """MINIMAL with alpha-city's connector table replaced by `text`."""
    assert ALPHA_CONNECTOR in MINIMAL
    return MINIMAL.replace(ALPHA_CONNECTOR, text)


def test_misspelt_connector_option_names_file_path_and_allowed_names(tmp_path: Path) -> None:
    message = _error(tmp_path, _alpha_connector(
        'connector = { kind = "sru", endpoint = "/alpha-city/sru", options = { sru_verison = "2.0" } }'
    ))
    path = tmp_path / "broken.toml"
    assert message == (
        f"{path}: members[0].connector.options.sru_verison (member alpha-city): "
        "unknown field (misspelt? allowed here: cql_indexes, extra_params, query_terms, record_schema, sru_version)"
    )


def test_wrong_option_type_names_the_path(tmp_path: Path) -> None:
    message = _error(tmp_path, _alpha_connector(
        'connector = { kind = "sru", endpoint = "/alpha-city/sru", options = { sru_version = 2.0 } }'
    ))
    assert "members[0].connector.options.sru_version (member alpha-city): Input should be '1.1', '1.2' or '2.0' (got 2.0)" in message
    message = _error(tmp_path, _alpha_connector(
        'connector = { kind = "sru", endpoint = "/alpha-city/sru", options = { cql_indexes = { titel = "ti" } } }'
    ))
    assert "members[0].connector.options.cql_indexes.titel (member alpha-city): Input should be 'text', 'title'" in message


def test_each_kind_has_its_own_option_names(tmp_path: Path) -> None:
    # `profile` is an html_opac option: an SRU member may not have it.
    message = _error(tmp_path, _alpha_connector(
        'connector = { kind = "sru", endpoint = "/alpha-city/sru", options = { profile = "tos" } }'
    ))
    assert "members[0].connector.options.profile (member alpha-city): unknown field" in message
    good = _alpha_connector('connector = { kind = "html_opac", endpoint = "/alpha-city/opac/", options = { profile = "tos" } }')
    assert load_consortium(_write(tmp_path, good)).target_settings("alpha-city").options == HtmlOpacOptions(profile="tos")


def test_unknown_connector_kind_fails_at_load_naming_the_allowed_kinds(tmp_path: Path) -> None:
    message = _error(tmp_path, _alpha_connector('connector = { kind = "z3950", endpoint = "/alpha-city/z" }'))
    path = tmp_path / "broken.toml"
    assert message == (
        f"{path}: members[0].connector.kind (member alpha-city): "
        "unknown value 'z3950' (allowed: calil, html_opac, ils_rest, ncip, opensearch, sru)"
    )


def test_missing_connector_kind(tmp_path: Path) -> None:
    message = _error(tmp_path, _alpha_connector('connector = { endpoint = "/alpha-city/sru" }'))
    assert message.endswith("members[0].connector.kind (member alpha-city): required field is missing")


def test_a_family_with_required_options_needs_them(tmp_path: Path) -> None:
    message = _error(tmp_path, _alpha_connector('connector = { kind = "calil", endpoint = "https://api.calil.jp" }'))
    assert message.endswith("members[0].connector.options (member alpha-city): required field is missing")
    message = _error(tmp_path, _alpha_connector(
        'connector = { kind = "calil", endpoint = "https://api.calil.jp", options = { systemid = "Okayama_Pref" } }'
    ))
    assert message.endswith("members[0].connector.options.appkey (member alpha-city): required field is missing")


def test_option_problems_are_reported_with_the_rest(tmp_path: Path) -> None:
    text = _alpha_connector(
        'connector = { kind = "sru", endpoint = "alpha-city/sru", options = { sru_verison = "2.0", record_schema = "" } }'
    ).replace("lat = 34.6", "lat = 99.0")
    lines = _error(tmp_path, text).splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [
        "members[0].connector.endpoint (member alpha-city)",
        "members[0].connector.options.record_schema (member alpha-city)",
        "members[0].connector.options.sru_verison (member alpha-city)",
        "members[0].branches[0].lat (branch alpha-city/main)",
    ]


def test_other_unknown_fields_list_the_allowed_names_too(tmp_path: Path) -> None:
    message = _error(tmp_path, MINIMAL.replace("timeout_s = 5", "timeout = 5"))
    assert "members[1].connector.timeout (member beta-town): unknown field (misspelt? allowed here: " in message
    assert "timeout_s" in message and "circuit_failures" in message


def test_options_load_typed_with_defaults(tmp_path: Path) -> None:
    text = _alpha_connector(
        'connector = { kind = "sru", endpoint = "/alpha-city/sru", options = { sru_version = "2.0", cql_indexes = { year = "date" } } }'
    )
    c = load_consortium(_write(tmp_path, text))
    options = c.target_settings("alpha-city").options
    assert options == SruOptions(sru_version="2.0", cql_indexes={"year": "date"})
    assert options.cql_indexes == {"text": "any", "title": "title", "author": "author", "isbn": "isbn", "year": "date"}
    assert c.target_settings("beta-town").options == SruOptions()  # no options table: the defaults
    # A copy for another base URL keeps them.
    assert c.with_base_url("http://sandbox.test:9000/").target_settings("alpha-city").options == options


def test_shipped_html_opac_members_carry_their_overrides(okayama: Consortium) -> None:
    tamano = okayama.target_settings("tamano-city").options
    assert tamano == HtmlOpacOptions(profile="tos", profile_overrides={"status": {"empty_status_means": "available"}})
    assert okayama.target_settings("kibichuo-town").options == HtmlOpacOptions(profile="wopc")
