"""The consortium model: members, their catalogue connectors and their branches.

A consortium file (TOML, under `consortia/`) is the only place where member
libraries, endpoints, branch codes and policy numbers live (ARCHITECTURE.md:
rules are data, not code). This module validates such a file strictly — every
model forbids unknown keys, so a typo in a hand-edited file is an error rather
than a silently ignored setting — and turns each member into the
`TargetSettings` a connector needs.

`load_consortium` reports *all* problems of a file at once, one line each,
naming the file and the field path as written in TOML
(`members[2].branches[0].lat`), so the person editing it can fix it in one go.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
import unicodedata
from datetime import datetime, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from yokodan import Availability
from yokodan.errors import ConfigError
from connectors.options import OPTIONS_BY_KIND, ConnectorOptions, allowed_names
from broker.prefectures import PREFECTURES, REGIONS
from broker.holds.policy import CalendarRule, HoldPolicy, _PolicyProblem, calendar_references, unknown_branch_references
from connectors.ingest_pool import IngestSettings
from connectors.settings import TargetSettings

__all__ = [
    "CONSORTIA_DIR",
    "DEFAULT_CONSORTIUM_FILE",
    "AccessSettings",
    "Branch",
    "Consortium",
    "ConsortiumFileError",
    "CONNECTOR_TABLES",
    "ConnectorBase",
    "ConnectorRole",
    "ConnectorSettings",
    "MaintenanceWindow",
    "Member",
    "MemberPrefecture",
    "load_consortium",
    "normalise_phone",
    "web_origin",
]

# Shipped consortium files sit beside the packages (repo layout <repo>/{broker,consortia});
# the sys.prefix path is where a wheel would put them as data files.
_CONSORTIA_CANDIDATES = (
    Path(__file__).resolve().parents[1] / "consortia",
    Path(sys.prefix) / "share" / "yokodan" / "consortia",
)
CONSORTIA_DIR: Path = next((p for p in _CONSORTIA_CANDIDATES if p.is_dir()), _CONSORTIA_CANDIDATES[0])
DEFAULT_CONSORTIUM_FILE: Path = CONSORTIA_DIR / "okayama.toml"


class ConsortiumFileError(ConfigError):
    """A consortium file that cannot be used; the message has one line per problem."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


# --- field types ----------------------------------------------------------------------------------

_SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_SLUG_RE = re.compile(_SLUG)
# Dash look-alikes found in Japanese text; NFKC leaves these alone.
_DASHES = re.compile(r"[‐‑‒–—―−ー－]")
_PHONE_RE = re.compile(r"0\d{1,4}-\d{1,4}-\d{3,4}")


def normalise_phone(value: object) -> object:
    """'TEL（086）223-3373' -> '086-223-3373'; '（086７）-４４-２０１２' -> '0867-44-2012'.

    Printed numbers use full-width digits and put the area code in brackets;
    the broker shows them to patrons (e.g. to cancel a secured hold), so one
    ASCII form is stored. Anything that does not end up as a Japanese number
    is rejected rather than guessed at.
    """
    if not isinstance(value, str):
        return value  # let pydantic report the wrong type
    text = _DASHES.sub("-", unicodedata.normalize("NFKC", value)).strip()
    text = re.sub(r"^(?:TEL|Tel|tel)[.:]?\s*", "", text)
    text = re.sub(r"\s+", "", text.replace("(", "").replace(")", "-"))
    text = re.sub(r"-{2,}", "-", text).strip("-")
    digits = text.replace("-", "")
    if not _PHONE_RE.fullmatch(text) or len(digits) not in (10, 11):
        raise ValueError(f"not a Japanese phone number like 086-223-3373: {value!r}")
    return text


Phone = Annotated[str, BeforeValidator(normalise_phone)]


def _parse_hhmm(value: object) -> object:
    # TOML has a native local-time type (04:30:00); "04:30" strings are what people write.
    if isinstance(value, str):
        m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value.strip())
        if not m:
            raise ValueError(f"expected a local time 'HH:MM', got {value!r}")
        return time(int(m[1]), int(m[2]))
    return value


LocalTime = Annotated[time, BeforeValidator(_parse_hhmm)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
NonEmpty = Annotated[str, Field(min_length=1)]


_Loc = tuple[str | int, ...]  # a field path as pydantic reports it: ("members", 2, "branches", 0, "lat")


class _Problems(ValueError):
    """Cross-field problems with their own sub-paths, so the file error can point at the field.

    Pydantic keeps the raised exception in the error's ctx; `load_consortium` unpacks it.
    """

    def __init__(self, problems: list[tuple[_Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_format_loc(loc) or '(top level)'}: {msg}" for loc, msg in problems))


class _Model(BaseModel):
    # frozen: one consortium object is shared by concurrent searches; nobody may mutate it.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --- models ---------------------------------------------------------------------------------------


class MaintenanceWindow(_Model):
    """A daily period (member's local time) when the member system is down, e.g. Kumamoto 04:30–05:00.

    Used by search planning to skip the member instead of waiting for a timeout.
    `end` earlier than `start` means the window runs past midnight.
    """

    start: LocalTime
    end: LocalTime
    weekdays: list[Weekday] | None = None  # None: every day
    note: str | None = None

    def active_at(self, moment: datetime) -> bool:
        """Is `moment` (already in the member's local time) inside this window?"""
        weekday = _WEEKDAYS[moment.weekday()]
        clock = moment.time().replace(tzinfo=None)
        if self.start < self.end:
            return (self.weekdays is None or weekday in self.weekdays) and self.start <= clock < self.end
        # Past midnight: the part after midnight belongs to the previous day's window.
        if clock >= self.start:
            return self.weekdays is None or weekday in self.weekdays
        previous = _WEEKDAYS[(moment.weekday() - 1) % 7]
        return clock < self.end and (self.weekdays is None or previous in self.weekdays)

    def describe(self) -> str:
        days = "daily" if self.weekdays is None else ",".join(self.weekdays)
        return f"{days} {self.start:%H:%M}–{self.end:%H:%M}" + (f" ({self.note})" if self.note else "")

    @model_validator(mode="after")
    def _check(self) -> MaintenanceWindow:
        if self.start == self.end:
            raise _Problems([(("end",), "must differ from start")])
        if self.weekdays is not None and len(set(self.weekdays)) != len(self.weekdays):
            raise _Problems([(("weekdays",), "weekday listed twice")])
        return self


class ConnectorBase(_Model):
    """How to reach the member's catalogue; becomes `connectors.settings.TargetSettings`.

    The fields every connector table has. `ConnectorSettings` (below) is the table as the file
    is read: one subclass of this per connector kind, whose `options` is that family's model.
    """

    kind: str  # narrowed to one literal per subclass: 'sru', 'opensearch', 'html_opac' …
    endpoint: NonEmpty  # absolute http(s) URL, or a path resolved against Consortium.base_url
    timeout_s: float = Field(default=8.0, gt=0, le=120)
    max_records: int = Field(default=20, ge=1, le=100)
    status_words: dict[str, Availability] = Field(default_factory=dict)
    options: ConnectorOptions  # narrowed per subclass to the family's model (connectors/options.py)
    # Circuit breaker: after this many consecutive failures the member is skipped
    # for `circuit_reset_s`, then probed once.
    circuit_failures: int = Field(default=5, ge=1, le=100)
    circuit_reset_s: float = Field(default=30.0, gt=0, le=3600)
    # Operations (searches, hold calls) in flight against the member at once; more wait in a FIFO
    # queue of at most `queue_length` for at most `queue_wait_s` before the member is reported
    # skipped as `member_busy` (broker/member_slots.py). The member's own `timeout_s` starts when
    # the request is sent, not while it queues. 4 s: under a burst an HTML OPAC search (a list page
    # and detail pages, 200 ms each) holds its slot for a second or more, and with 2 s the soak's
    # steady phase skipped members that would have answered (bench/soak.py, issue 12).
    max_operations: int = Field(default=8, ge=1, le=256)
    queue_length: int = Field(default=64, ge=0, le=10_000)
    queue_wait_s: float = Field(default=4.0, ge=0, le=60)

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if value.startswith("/") and not value.startswith("//"):
            return value
        _require_http_url(value)
        return value

    @property
    def is_relative(self) -> bool:
        return self.endpoint.startswith("/")


def _connector_table(kind: str, options: type[ConnectorOptions]) -> type[ConnectorBase]:
    """The connector table of one kind: `kind` fixed to it, `options` its family's model."""
    # A family whose options are not valid empty (calil needs systemid and appkey, html_opac a
    # profile) has no default: leaving `options` out is then "required field is missing".
    try:
        options()
        required = False
    except ValidationError:
        required = True
    return create_model(
        f"{options.__name__.removesuffix('Options')}ConnectorSettings",
        __base__=ConnectorBase,
        __module__=__name__,
        kind=(Literal[kind], ...),
        options=(options, ... if required else Field(default_factory=options)),
    )


# One table model per kind, generated from connectors.options so that a new family is added there
# only. Pydantic picks the model by `kind`: an unknown kind fails at load naming the allowed kinds,
# and an option the family does not have fails with its field path.
CONNECTOR_TABLES: dict[str, type[ConnectorBase]] = {kind: _connector_table(kind, m) for kind, m in OPTIONS_BY_KIND.items()}
ConnectorSettings = Annotated[Union[tuple(CONNECTOR_TABLES.values())], Field(discriminator="kind")]  # type: ignore[valid-type]


def _require_http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL or a path starting with '/', got {value!r}")


class Branch(_Model):
    """One library building (or service point) of a member."""

    id: str  # unique in the consortium: '<member id>/<slug>', e.g. 'okayama-city/chuo'
    name: NonEmpty  # as printed by the library
    municipality: NonEmpty
    phone: Phone | None = None
    address: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    coordinates_source: str | None = None  # e.g. 'MLIT 国土数値情報 P27 (2013)'
    coordinates_note: str | None = None  # why there are none, or a caveat on the ones given
    # Labels/codes the member's catalogue uses for this branch in holdings.
    codes: list[NonEmpty] = Field(default_factory=list)
    pickup_point: bool
    accepts_returns: bool
    # False for a pickup-only point: a municipal library where a prefectural hub's
    # patrons collect holds (Kumamoto's 受取館) holds none of the member's stock.
    holds_stock: bool = True
    mobile: bool = False
    calendar: CalendarRule | None = None  # replaces the member's policy.calendar for this branch
    # The branch's key in Calil's `libkey` map ('中央図書館', '本館'), where a source gives it: the
    # Calil-compatible check endpoint (broker/calil_check.py) answers with it instead of `name`.
    calil_libkey: NonEmpty | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _check_coordinates(self) -> Branch:
        problems: list[tuple[_Loc, str]] = []
        if (self.lat is None) != (self.lon is None):
            problems.append((("lat" if self.lat is None else "lon",), "lat and lon go together: give both or neither"))
        elif self.lat is not None and not self.coordinates_source:
            problems.append((("coordinates_source",), "coordinates need a source (who measured them)"))
        elif self.lat is None and not self.coordinates_note:
            # Distance-based pickup choice silently skips such a branch; say why it has none.
            problems.append((("coordinates_note",), "a branch without coordinates must say why in coordinates_note"))
        if problems:
            raise _Problems(problems)
        return self


class MemberPrefecture(_Model):
    """`prefecture = { code = "33", name = "岡山県" }`: where a member is, by JIS X 0401 code and name.

    Both are written so that a person reading the file sees the name and the broker keys on the
    code; they must agree (broker/prefectures.py is the table).
    """

    code: str
    name: NonEmpty

    @field_validator("code", mode="before")
    @classmethod
    def _check_code(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:02d}"  # `code = 33` in TOML
        if isinstance(value, str) and value not in PREFECTURES:
            raise ValueError(f"unknown JIS X 0401 prefecture code {value!r} (01–47, two digits)")
        return value

    @model_validator(mode="after")
    def _check_name(self) -> MemberPrefecture:
        expected = PREFECTURES[self.code].name
        if self.name != expected:
            raise _Problems([(("name",), f"prefecture {self.code} is {expected}, not {self.name!r}")])
        return self


class Member(_Model):
    """One library system of the consortium: one catalogue, one card, one or more branches."""

    id: Annotated[str, Field(pattern=rf"^{_SLUG}$")]
    name: NonEmpty
    municipality: NonEmpty
    phone: Phone | None = None  # main contact, quoted when a hold can only be cancelled by phone
    connector: ConnectorSettings
    # A second connector for holds, where the catalogue protocol cannot place them (SRU searches,
    # NCIP or the ILS's REST API holds): `[members.holds]`, same fields as `[members.connector]`.
    holds: ConnectorSettings | None = None
    branches: list[Branch] = Field(min_length=1)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    policy: HoldPolicy = Field(default_factory=HoldPolicy)  # overrides the consortium's policy, section by section
    # Calil's id of this library system ('Okayama_Okayama'), where a source documents it: the check
    # endpoint accepts it as `systemid` beside the member id. Never guessed from the name.
    calil_systemid: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+$")] | None = None
    # Where the member is, for choosing members by place (`prefecture=33`, `region=中国`,
    # `near_prefecture=33` on a search; broker/selection.py). Optional: a city consortium needs neither.
    prefecture: MemberPrefecture | None = None
    region: str | None = None  # 地方 of the eight-region division: 東北, 近畿, 中国, 九州 …
    notes: str | None = None

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and value not in REGIONS:
            raise ValueError(f"unknown region {value!r} (allowed: {', '.join(REGIONS)})")
        return value

    @model_validator(mode="after")
    def _check_region_of_prefecture(self) -> Member:
        if self.prefecture is not None and self.region is not None:
            expected = PREFECTURES[self.prefecture.code].region
            if self.region != expected:
                raise _Problems([(("region",), f"{self.prefecture.name} is in {expected}, not {self.region!r}")])
        return self

    @property
    def region_name(self) -> str | None:
        """The member's region: as written, or that of its prefecture."""
        if self.region is not None or self.prefecture is None:
            return self.region
        return PREFECTURES[self.prefecture.code].region

    def maintenance_at(self, local_moment: datetime) -> MaintenanceWindow | None:
        """The maintenance window `local_moment` falls in, if any."""
        return next((w for w in self.maintenance if w.active_at(local_moment)), None)

    @model_validator(mode="after")
    def _check_branches(self) -> Member:
        problems: list[tuple[_Loc, str]] = []
        seen_ids: set[str] = set()
        # Codes, names and ids together form the holdings lookup (`branch_labels`): none may be ambiguous.
        owner: dict[str, str] = {}
        for i, branch in enumerate(self.branches):
            prefix = f"{self.id}/"
            if not branch.id.startswith(prefix) or not _SLUG_RE.fullmatch(branch.id[len(prefix) :]):
                problems.append((("branches", i, "id"), f"must be '{prefix}<slug>' (a-z, 0-9, '-'), got {branch.id!r}"))
            if branch.id in seen_ids:
                problems.append((("branches", i, "id"), f"duplicate branch id {branch.id!r}"))
            seen_ids.add(branch.id)
            other = owner.setdefault(branch.name, branch.id)
            if other != branch.id:
                problems.append((("branches", i, "name"), f"{branch.name!r} already names branch {other!r}"))
            for j, code in enumerate(branch.codes):
                other = owner.setdefault(code, branch.id)
                if code in branch.codes[:j]:
                    problems.append((("branches", i, "codes", j), f"code {code!r} listed twice"))
                elif other != branch.id:
                    problems.append((("branches", i, "codes", j), f"{code!r} already names branch {other!r}"))
            if branch.calil_libkey is not None and owner.setdefault(branch.calil_libkey, branch.id) != branch.id:
                other = owner[branch.calil_libkey]
                problems.append((("branches", i, "calil_libkey"), f"{branch.calil_libkey!r} already names branch {other!r}"))
        if problems:
            raise _Problems(problems)
        return self

    def branch_labels(self) -> dict[str, str]:
        """Every code, name and id of every branch -> branch id (what `TargetSettings.branch_codes` holds)."""
        labels: dict[str, str] = {}
        for branch in self.branches:
            # Calil's libkey too: a Calil-family connector (ours, or a Yokodan answering as Calil) names branches by it.
            for label in (branch.id, branch.name, *branch.codes, *([branch.calil_libkey] if branch.calil_libkey else [])):
                labels[label] = branch.id
        return labels


class PrivacyPolicy(_Model):
    """What the broker keeps about patrons, and for how long (DOMAIN.md: reading is private)."""

    # Finished holds (collected, expired, cancelled, refused) are deleted this many days after they ended.
    finished_holds_days: int = Field(default=30, ge=0, le=3650)


class SearchSettings(_Model):
    """`[search]`: how a consortium's searches behave beyond asking each member once."""

    # Ask a member that came back empty once more by title (+ author, year) when an ISBN
    # or kana reading query found the work elsewhere (broker/second_stage.py).
    second_stage: bool = True
    # `[search.ingest]`: worker processes that parse bursts of records, and the record cache.
    ingest: IngestSettings = Field(default_factory=IngestSettings)


def web_origin(value: object) -> object:
    """'https://Portal.example.jp/' -> 'https://portal.example.jp': the form browsers send in `Origin`."""
    if not isinstance(value, str):
        return value
    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"an origin is scheme://host[:port] with nothing after it, got {value!r}")
    if "*" in text:
        raise ValueError(f"origins are listed one by one, no wildcards: {value!r}")
    port = f":{parts.port}" if parts.port else ""
    host = parts.hostname.lower()
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{port}"


WebOrigin = Annotated[str, BeforeValidator(web_origin)]


class AccessSettings(_Model):
    """`[access]`: who may use the machine interfaces (broker/portals).

    `anonymous_search = false` makes every search surface (`/api/v1/search…`, `/sru`, `/api/v1/check`)
    answer 401 without a portal key; the consortium's own pages keep searching (a first-party pass,
    broker/portals/first_party.py). `cors_origins` are the web origins whose pages may call the API
    from a browser with no key of their own (each key adds its own origins).
    """

    anonymous_search: bool = True
    cors_origins: list[WebOrigin] = Field(default_factory=list)


class Consortium(_Model):
    """A set of member library systems searched together (DOMAIN.md: three kinds)."""

    id: Annotated[str, Field(pattern=rf"^{_SLUG}$")]
    name: NonEmpty
    kind: Literal["mutual_use", "prefectural_hub", "city_system"]
    description: str = ""
    timezone: str = "Asia/Tokyo"
    base_url: str | None = None  # resolves members' relative endpoints ('/okayama-city/sru')
    members: list[Member] = Field(min_length=1)
    sources: list[NonEmpty] = Field(default_factory=list)  # where the data came from (attribution)
    policy: HoldPolicy = Field(default_factory=HoldPolicy)  # hold-rule defaults for every member
    privacy: PrivacyPolicy = Field(default_factory=PrivacyPolicy)
    search: SearchSettings = Field(default_factory=SearchSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    notes: str | None = None

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is not None:
            _require_http_url(value)
        return value

    @model_validator(mode="after")
    def _check_members(self) -> Consortium:
        problems: list[tuple[_Loc, str]] = []
        member_ids: set[str] = set()
        for i, member in enumerate(self.members):
            # Branch ids carry their member's id as prefix (checked by Member), so unique member ids
            # make branch ids unique across the consortium.
            if member.id in member_ids:
                problems.append((("members", i, "id"), f"duplicate member id {member.id!r}"))
            member_ids.add(member.id)
            for role, settings in (("connector", member.connector), ("holds", member.holds)):
                if settings is not None and settings.is_relative and self.base_url is None:
                    problems.append(
                        (
                            ("members", i, role, "endpoint"),
                            f"relative endpoint {settings.endpoint!r} needs base_url at the top of the file",
                        )
                    )
        systemids: dict[str, str] = {}
        for i, member in enumerate(self.members):
            if member.calil_systemid is not None:
                other = systemids.setdefault(member.calil_systemid, member.id)
                if other != member.id:
                    problems.append((("members", i, "calil_systemid"), f"{member.calil_systemid!r} already names member {other!r}"))
        branch_ids = {b.id for m in self.members for b in m.branches}
        problems.extend((("policy", *loc), msg) for loc, msg in unknown_branch_references(self.policy, branch_ids))
        for i, member in enumerate(self.members):
            refs = unknown_branch_references(member.policy, branch_ids)
            problems.extend((("members", i, "policy", *loc), msg) for loc, msg in refs)
            for j, branch in enumerate(member.branches):
                if branch.calendar is not None:
                    refs = calendar_references(branch.calendar, branch_ids)
                    problems.extend((("members", i, "branches", j, "calendar", *loc), msg) for loc, msg in refs)
        if problems:
            raise _Problems(problems)
        return self

    # --- lookups ---

    def policy_for(self, member_id: str) -> HoldPolicy:
        """The member's hold rules: its own sections over the consortium's defaults."""
        return self.member(member_id).policy.merged_over(self.policy)

    def member(self, member_id: str) -> Member:
        for member in self.members:
            if member.id == member_id:
                return member
        raise KeyError(f"no member {member_id!r} in consortium {self.id!r}")

    def branch(self, branch_id: str) -> Branch:
        for member in self.members:
            for branch in member.branches:
                if branch.id == branch_id:
                    return branch
        raise KeyError(f"no branch {branch_id!r} in consortium {self.id!r}")

    def branches(self) -> list[Branch]:
        return [b for m in self.members for b in m.branches]

    def with_base_url(self, url: str) -> Consortium:
        """A copy whose relative endpoints resolve against `url` (e.g. a sandbox on another port)."""
        # Re-validate rather than model_copy(update=…), which would skip the URL check.
        return type(self).model_validate({**self.model_dump(), "base_url": url})

    def endpoint_for(self, member: Member | str, role: ConnectorRole = "search") -> str:
        """The endpoint of the member's search (or holds) connector as an absolute URL.

        urljoin semantics: a path endpoint replaces the base URL's own path.
        """
        m = self.member(member) if isinstance(member, str) else member
        c = _connector_of(m, role)
        if not c.is_relative:
            return c.endpoint
        if self.base_url is None:
            raise ValueError(f"member {m.id!r} has relative endpoint {c.endpoint!r} and no base_url is set")
        return urljoin(self.base_url, c.endpoint)

    def holds_settings(self, member_id: str) -> TargetSettings | None:
        """Settings of the member's separate holds connector, or None when it has none
        (then its search connector is the only one, whatever it can do)."""
        m = self.member(member_id)
        return None if m.holds is None else self.target_settings(member_id, role="holds")

    def target_settings(self, member_id: str, role: ConnectorRole = "search") -> TargetSettings:
        """What the connector for one member needs (connectors never see the consortium).

        role="holds" is the `[members.holds]` connector; KeyError when the member has none.
        Both roles share the branch codes: one ILS names its branches the same way on every face.
        """
        m = self.member(member_id)
        c = _connector_of(m, role)
        return TargetSettings(
            member=m.id,
            kind=c.kind,
            endpoint=self.endpoint_for(m, role),
            timeout_s=c.timeout_s,
            max_records=c.max_records,
            branch_codes=m.branch_labels(),
            member_codes={b.id: b.codes[0] for b in m.branches if b.codes},
            status_words=dict(c.status_words),
            options=c.options,
        )

    @staticmethod
    def default_path() -> Path:
        """The shipped demo consortium (Okayama mutual-use network + prefectural library)."""
        return DEFAULT_CONSORTIUM_FILE


ConnectorRole = Literal["search", "holds"]


def _connector_of(member: Member, role: ConnectorRole) -> ConnectorSettings:
    if role == "search":
        return member.connector
    if role == "holds":
        if member.holds is None:
            raise KeyError(f"member {member.id!r} has no [members.holds] connector")
        return member.holds
    raise ValueError(f"unknown connector role {role!r} (search, holds)")


# --- loading --------------------------------------------------------------------------------------


def load_consortium(path: Path | str | None = None) -> Consortium:
    """Read and validate a consortium TOML file (default: the shipped Okayama one).

    Raises `ConsortiumFileError` naming the file, the field path and the reason for every problem.
    """
    path = Path(path) if path is not None else DEFAULT_CONSORTIUM_FILE
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConsortiumFileError(path, ["file not found"]) from None
    except OSError as exc:
        raise ConsortiumFileError(path, [f"cannot read file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConsortiumFileError(path, [f"not UTF-8 text (byte offset {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries "(at line L, column C)"; keep it verbatim.
        raise ConsortiumFileError(path, [f"TOML syntax error: {exc}"]) from None
    try:
        return Consortium.model_validate(data)
    except ValidationError as exc:
        raise ConsortiumFileError(path, _describe(exc, data)) from None


def _describe(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc, owner = _as_written(tuple(err["loc"]))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _Problems):
            lines.extend(_line(loc + sub, msg, data) for sub, msg in cause.problems)
            continue
        if isinstance(cause, _PolicyProblem):
            lines.append(_line(loc + cause.field, cause.message, data))
            continue
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # Pydantic reports a bad tag at the table; the person editing the file must fix the tag field.
            loc += (str(err["ctx"]["discriminator"]).strip("'"),)
        lines.append(_line(loc, _reason(err, owner), data))
    return lines


def _as_written(loc: _Loc) -> tuple[_Loc, type[BaseModel] | None]:
    """The path as the file spells it, and the model that owns its last key.

    Pydantic puts the chosen tag of a discriminated union into the path
    (`connector.sru.options`); the file has no such key, so it is dropped. The owning
    model lets an unknown-field error list the names that are allowed there.
    """
    written: list[str | int] = []
    node: Any = Consortium
    owner: type[BaseModel] | None = None
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key, not the value, is wrong"
            continue
        node = _without_optional(node)
        if get_origin(node) in (Union, UnionType) and isinstance(part, str):
            tagged = [m for m in get_args(node) if _has_tag(m, part)]
            if tagged:
                node = tagged[0]
                continue
        if isinstance(node, type) and issubclass(node, BaseModel):
            owner = node
            field = node.model_fields.get(part) if isinstance(part, str) else None
            node = field.annotation if field is not None else None
        elif get_origin(node) in (list, dict):
            node = get_args(node)[-1]
        else:
            node = None
        written.append(part)
    return tuple(written), owner


def _without_optional(node: Any) -> Any:
    while get_origin(node) is Annotated:
        node = get_args(node)[0]
    if get_origin(node) in (Union, UnionType):
        present = [a for a in get_args(node) if a is not type(None)]
        if len(present) == 1:
            return _without_optional(present[0])
    return node


def _has_tag(model: Any, tag: str) -> bool:
    """Is `model` the member of a discriminated union that `tag` selects (a field typed Literal[tag])?"""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    return any(get_origin(f.annotation) is Literal and get_args(f.annotation) == (tag,) for f in model.model_fields.values())


def _reason(err: Any, owner: type[BaseModel] | None = None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field (misspelt? allowed here: {allowed_names(owner)})" if owner else "unknown field (misspelt? not allowed here)"
    if kind == "union_tag_invalid":
        allowed = ", ".join(sorted(tag.strip(" '") for tag in str(err["ctx"]["expected_tags"]).split(",")))
        return f"unknown value {err['ctx']['tag']!r} (allowed: {allowed})"
    if kind in ("missing", "union_tag_not_found"):
        return "required field is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind != "value_error" and "input" in err and not isinstance(err["input"], (dict, list)):
        shown = repr(err["input"])
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return msg


def _line(loc: _Loc, msg: str, data: dict[str, Any]) -> str:
    where = _format_loc(loc) or "(top level)"
    context = _owner_id(loc, data)
    return f"{where}{f' ({context})' if context else ''}: {msg}"


def _format_loc(loc: _Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += ("." if out else "") + json.dumps(part, ensure_ascii=False)  # a quoted TOML key
    return out


def _owner_id(loc: _Loc, data: dict[str, Any]) -> str | None:
    """The id of the innermost member/branch on the path, read from the raw file data."""
    found: str | None = None
    node: Any = data
    for i, part in enumerate(loc):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(part, int) and i > 0 and loc[i - 1] in ("members", "branches"):
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                found = f"{'branch' if loc[i - 1] == 'branches' else 'member'} {node['id']}"
    return found
