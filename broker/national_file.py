"""Generate `consortia/national.toml` from the real library lists in `../shared/data/libraries/`.

`yokodan consortium generate-national --data ../shared/data/libraries --out consortia/national.toml`

Sources (shared/data/SOURCES.md B1 and B3):
- MLIT 国土数値情報 P27 (2013): 270 libraries with coordinates, municipality code and name, and
  the manager (P27_007: 3 municipal, 2 prefectural, 1 national, 4 private, 0 other).
- CiNii / NACSIS-CAT/ILL participants (FA numbers): 128 libraries with address and phones.

Rules (nothing is invented; where the sources are silent the file says so):
- A municipal library (P27_007 = 3 and P27_003 = 03003, a public library as a facility) belongs to
  its municipality's system: one member per municipality, one branch per library. Wards of a
  designated city (岡山市北区 …) belong to the city's one system (`_DESIGNATED_CITIES`).
- Every other P27 row (prefectural, university, private …) is its own member: P27 does not say
  which institution a library belongs to, and guessing from names would merge wrongly.
- A CiNii row whose name equals a P27 row's name (NFKC, spaces removed: "弘前大学 附属図書館" =
  "弘前大学附属図書館") is the same library: one member, with P27's coordinates and CiNii's FA
  number, address and phone. Every other CiNii row is its own member, without coordinates.
- A CiNii row the broker cannot use (no name, no known prefecture, no address to read the
  municipality from) is left out and listed in the file's header with the reason.
- Every member searches over SRU at `/<member id>/sru` on `base_url` (the sandbox): the sources
  do not say which system each library runs. Pickup and return rules are not in the sources
  either, so no branch is a pickup or return point (hold planning offers none of them).

Output is deterministic (sorted by prefecture code, then member id; no dates), so the shipped file
can be compared with a fresh generation (tests/test_national_file.py).
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from broker.consortium import normalise_phone
from broker.prefectures import PREFECTURES
from yokodan.errors import ConfigError

__all__ = [
    "CINII_FILE",
    "GENERATE_COMMAND",
    "P27_FILE",
    "NationalDataError",
    "generate_national",
    "national_consortium",
]

P27_FILE = "mlit_p27_2013_libraries_okayama_hyogo_kumamoto_aomori.csv"
CINII_FILE = "cinii_fa_libraries_aomori_hyogo_okayama_kumamoto.csv"
GENERATE_COMMAND = "yokodan consortium generate-national --data ../shared/data/libraries --out consortia/national.toml"
SANDBOX_BASE_URL = "http://127.0.0.1:8410"
P27_SOURCE = "MLIT 国土数値情報 P27 (2013)"
P27_ATTRIBUTION = "「国土数値情報（文化施設データ）」（国土交通省）を加工して作成"
CINII_ATTRIBUTION = "CiNii / NACSIS-CAT/ILL participant list (NII), via tzhaya/NACSIS_ILL_Status fa-tel.csv"

# Designated cities (政令指定都市) whose wards appear in the P27 extract, with the city's own
# JIS X 0402 code: the wards' codes (33101 …) are not the city's. A ward of a city missing here
# is an error, not a guess.
_DESIGNATED_CITIES = {"神戸市": "28100", "岡山市": "33100", "熊本市": "43100"}
_WARD = re.compile(r"^(?P<city>.+?市)(?P<ward>.+区)$")
_MUNICIPAL_MANAGER = "3"
_PUBLIC_LIBRARY = "03003"
# The municipality at the start of an address once the prefecture is cut off: an optional
# district (郡) and then the shortest name ending in 市, 町 or 村 ("市川町" still reads whole:
# the name needs one character before its suffix).
_MUNICIPALITY_IN_ADDRESS = re.compile(r"^(?:[^市町村]+?郡)?(?P<muni>.+?[市町村])")
_PHONE_CANDIDATE = re.compile(r"[0-9()（）\-‐－]{10,}")


class NationalDataError(ConfigError):
    """A source file that cannot be turned into the national consortium (missing, wrong columns)."""


@dataclass(frozen=True, slots=True)
class _Library:
    """One library building from P27."""

    pref_code: str
    muni_code: str
    municipality: str  # as P27 (2020s names) writes it: 岡山市北区
    name: str
    address: str
    lat: float
    lon: float
    municipal: bool


@dataclass(frozen=True, slots=True)
class _CiniiRow:
    fa: str
    pref_code: str | None
    name: str
    address: str
    phones: tuple[str, ...]


def _match_key(name: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name))


def _read_csv(path: Path, required: set[str]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = required - set(reader.fieldnames or ())
            if missing:
                raise NationalDataError(f"{path}: missing columns {', '.join(sorted(missing))}")
            return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except FileNotFoundError:
        raise NationalDataError(f"{path}: file not found") from None


def _read_p27(path: Path) -> list[_Library]:
    rows = _read_csv(path, {"pref_code", "muni_code", "muni_name_2020s", "name", "address_in_muni", "lat", "lon",
                            "P27_003_public_facility_class", "P27_007_manager", "pref"})  # fmt: skip
    return [
        _Library(
            pref_code=row["pref_code"].zfill(2),
            muni_code=row["muni_code"],
            municipality=row["muni_name_2020s"],
            name=row["name"],
            # P27 writes the address without prefecture and municipality; the branch shows it whole.
            address=f"{row['pref']}{row['muni_name_2020s']}{row['address_in_muni']}",
            lat=round(float(row["lat"]), 6),
            lon=round(float(row["lon"]), 6),
            municipal=row["P27_007_manager"] == _MUNICIPAL_MANAGER
            and row["P27_003_public_facility_class"] == _PUBLIC_LIBRARY,
        )
        for row in rows
    ]


def _read_cinii(path: Path) -> list[_CiniiRow]:
    rows = _read_csv(path, {"FA番号", "KENCODE", "館名", "住所", "電話1"})
    out = []
    for row in rows:
        code = row.get("KENCODE", "")
        out.append(
            _CiniiRow(
                fa=row.get("FA番号", ""),
                pref_code=code.zfill(2) if code.isdigit() and code.zfill(2) in PREFECTURES else None,
                name=re.sub(r"\s+", " ", unicodedata.normalize("NFKC", row.get("館名", ""))).strip(),
                address=unicodedata.normalize("NFKC", row.get("住所", "")).strip(),
                phones=tuple(row.get(f"電話{i}", "") for i in range(1, 6) if row.get(f"電話{i}")),
            )
        )
    return out


def _first_phone(texts: tuple[str, ...]) -> str | None:
    """The first phone number readable in CiNii's free-text phone columns ('086-224-1286(代表)')."""
    for text in texts:
        for candidate in _PHONE_CANDIDATE.findall(unicodedata.normalize("NFKC", text)):
            try:
                phone = normalise_phone(candidate)
            except ValueError:
                continue
            if isinstance(phone, str):
                return phone
    return None


def _municipality_of(address: str, pref_code: str) -> str | None:
    """'岡山県岡山市北区津島中3-1-1' -> '岡山市'; '上北郡六戸町…' -> '六戸町'; None when unreadable."""
    rest = address.removeprefix(PREFECTURES[pref_code].name)
    match = _MUNICIPALITY_IN_ADDRESS.match(rest)
    return match["muni"] if match else None


def _system_of(library: _Library) -> tuple[str, str]:
    """(member id, municipality name) of a municipal library's system."""
    ward = _WARD.match(library.municipality)
    if ward is None:
        return f"muni-{library.muni_code}", library.municipality
    city = ward["city"]
    if city not in _DESIGNATED_CITIES:
        raise NationalDataError(f"{P27_FILE}: {library.name}: ward of {city}, which is not a known designated city")
    return f"muni-{_DESIGNATED_CITIES[city]}", city


def _place(pref_code: str) -> dict[str, Any]:
    pref = PREFECTURES[pref_code]
    return {"prefecture": {"code": pref.code, "name": pref.name}, "region": pref.region}


def _connector(member_id: str) -> dict[str, Any]:
    return {"kind": "sru", "endpoint": f"/{member_id}/sru"}


def _p27_branch(member_id: str, n: int, library: _Library, phone: str | None = None) -> dict[str, Any]:
    branch: dict[str, Any] = {
        "id": f"{member_id}/l{n:02d}",
        "name": library.name,
        "municipality": library.municipality,
        "address": library.address,
        "lat": library.lat,
        "lon": library.lon,
        "coordinates_source": P27_SOURCE,
        "pickup_point": False,
        "accepts_returns": False,
    }
    if phone:
        branch["phone"] = phone
    return branch


def national_consortium(data_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The consortium as TOML-ready data, and the source rows left out (one line each, with why)."""
    libraries = _read_p27(data_dir / P27_FILE)
    cinii = _read_cinii(data_dir / CINII_FILE)
    skipped: list[str] = []

    by_name: dict[str, _CiniiRow] = {}
    for row in cinii:
        if row.name:
            by_name.setdefault(_match_key(row.name), row)
    matched: set[str] = set()  # FA numbers merged into a P27 member

    members: list[dict[str, Any]] = []
    systems: dict[str, list[_Library]] = defaultdict(list)
    system_names: dict[str, tuple[str, str]] = {}
    others: dict[str, list[_Library]] = defaultdict(list)
    for library in libraries:
        if library.municipal:
            member_id, municipality = _system_of(library)
            systems[member_id].append(library)
            system_names[member_id] = (municipality, library.pref_code)
        else:
            others[library.muni_code].append(library)

    for member_id, branches in systems.items():
        municipality, pref_code = system_names[member_id]
        rows = sorted(branches, key=lambda lib: (lib.name, lib.lat, lib.lon))
        member_branches = []
        for n, lib in enumerate(rows, 1):
            same = by_name.get(_match_key(lib.name))
            if same is not None:
                matched.add(same.fa)
            member_branches.append(_p27_branch(member_id, n, lib, _first_phone(same.phones) if same else None))
        members.append(
            {
                "id": member_id,
                # The sources name libraries, not systems: the system is named after its municipality.
                "name": f"{municipality}の公立図書館",
                "municipality": municipality,
                **_place(pref_code),
                "connector": _connector(member_id),
                "branches": member_branches,
                "notes": f"municipal system: {len(rows)} P27 public libraries of {municipality}",
            }
        )

    for muni_code, libs in others.items():
        for n, lib in enumerate(sorted(libs, key=lambda lib: (lib.name, lib.lat, lib.lon)), 1):
            same = by_name.get(_match_key(lib.name))
            member_id = same.fa.lower() if same is not None and same.fa else f"p27-{muni_code}-{n:02d}"
            member: dict[str, Any] = {
                "id": member_id,
                "name": lib.name,
                "municipality": lib.municipality,
                **_place(lib.pref_code),
                "connector": _connector(member_id),
                "branches": [_p27_branch(member_id, 1, lib, _first_phone(same.phones) if same else None)],
            }
            if same is not None:
                matched.add(same.fa)
                member["notes"] = f"P27 row and CiNii {same.fa} (same name); address and phone from CiNii"
                member["branches"][0]["address"] = same.address or lib.address
            members.append(member)

    for row in cinii:
        if row.fa in matched:
            continue
        problem = _cinii_problem(row)
        if problem is not None:
            skipped.append(f"CiNii {row.fa or '(no FA number)'} {row.name or '(no name)'}: {problem}")
            continue
        assert row.pref_code is not None
        municipality = _municipality_of(row.address, row.pref_code)
        if municipality is None:
            skipped.append(f"CiNii {row.fa} {row.name}: no municipality readable in the address {row.address!r}")
            continue
        member_id = row.fa.lower()
        branch: dict[str, Any] = {
            "id": f"{member_id}/main",
            "name": row.name,
            "municipality": municipality,
            "address": row.address,
            "coordinates_note": "CiNii gives an address only; not in P27 (2013) by this name",
            "pickup_point": False,
            "accepts_returns": False,
        }
        phone = _first_phone(row.phones)
        if phone:
            branch["phone"] = phone
        members.append(
            {
                "id": member_id,
                "name": row.name,
                "municipality": municipality,
                **_place(row.pref_code),
                "connector": _connector(member_id),
                "branches": [branch],
            }
        )

    members.sort(key=lambda m: (m["prefecture"]["code"], m["id"]))
    consortium = {
        "id": "national",
        "name": "全国横断検索（P27・CiNii収録館）",
        "kind": "mutual_use",
        "description": "Every library system of the P27 and CiNii extracts in shared/data (4 prefectures), one member each, for national-scale fan-out",
        "base_url": SANDBOX_BASE_URL,
        "sources": [P27_ATTRIBUTION, CINII_ATTRIBUTION],
        "search": {"second_stage": False},  # a national fan-out asks each member once
        "members": members,
    }
    return consortium, skipped


def _cinii_problem(row: _CiniiRow) -> str | None:
    if not row.fa:
        return "no FA number"
    if not re.fullmatch(r"FA\d+X?", row.fa):  # the last place is a check digit, X for ten (as in ISBN-10)
        return f"FA number {row.fa!r} is not FA + digits"
    if not row.name:
        return "no library name"
    if row.pref_code is None:
        return "no known prefecture code (KENCODE)"
    if not row.address:
        return "no address (its municipality is unknown)"
    return None


def generate_national(data_dir: Path) -> str:
    """The whole file: a header saying how it was made, then the TOML."""
    data, skipped = national_consortium(data_dir)
    digests = [
        f"#   {name} sha256 {hashlib.sha256((data_dir / name).read_bytes()).hexdigest()}" for name in (P27_FILE, CINII_FILE)
    ]
    municipal = sum(1 for m in data["members"] if m["id"].startswith("muni-"))
    header = [
        "# Generated; do not edit by hand. Made by:",
        f"#   {GENERATE_COMMAND}",
        "# (broker/national_file.py; the rules are in its docstring) from these source files:",
        *digests,
        f"# {len(data['members'])} members: {municipal} municipal systems (P27 libraries grouped by municipality),",
        "# the other P27 libraries and the CiNii participants one member each (a CiNii row with a P27 row's",
        "# name merged into it). Every member is searched over SRU on base_url (the sandbox).",
    ]
    if skipped:
        header.append("# Source rows left out:")
        header.extend(f"#   {line}" for line in skipped)
    return "\n".join(header) + "\n\n" + tomli_w.dumps(data)
