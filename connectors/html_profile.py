"""HTML OPAC product profiles: how one OPAC product's pages look, as data (TOML).

Most Japanese municipal OPACs are a handful of vendor products, each installed
many times with its own status words and quirks (OPAC_BEHAVIOUR_NOTES.md §1).
A profile (`connectors/opac_profiles/<name>.toml`) describes one product: URLs
and form fields, the page charset, XPaths for every value, the status and hold
vocabularies and the login/hold/cancel forms. A member picks one with
`options.profile` and may override any value with `options.profile_overrides`
(a nested table merged over the file), so adding a library is a settings entry.

Everything is checked when the profile loads (XPaths compile, regexes compile,
URL templates use only the placeholders their action provides, refusal reasons
are named ones), and every problem is reported with the file and the field path.
"""

from __future__ import annotations

import codecs
import re
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from lxml import etree
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from yokodan import Availability, HoldState
from yokodan.errors import ConfigError
from connectors.errors import HOLD_REFUSAL_REASONS

PROFILE_DIR = Path(__file__).with_name("opac_profiles")
_PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")

# Labels Japanese OPACs put in headers and <meta>, mapped to the codec that decodes
# what they really send: pages labelled Shift_JIS routinely carry Windows-31J
# extensions (①, ㈱, NEC/IBM kanji), which Python's strict shift_jis codec rejects.
# Anything else is refused: a single-byte label (ISO-8859-1 on an Apache default)
# would decode any bytes at all, i.e. silent mojibake.
CHARSET_CODECS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "utf-8",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "cp932": "cp932",
    "euc-jp": "euc_jp",
    "x-euc-jp": "euc_jp",
    "euc_jp": "euc_jp",
}


def charset_codec(label: str) -> str | None:
    """The Python codec for a charset label, or None for a label we refuse to guess with."""
    return CHARSET_CODECS.get(label.strip().strip("\"'").lower())


def _check_charset(label: str) -> str:
    codec = charset_codec(label)
    if codec is None:
        raise ValueError(f"unsupported charset {label!r}; use one of utf-8, shift_jis, euc-jp")
    codecs.lookup(codec)
    return codec


def _check_xpath(expr: str) -> str:
    try:
        etree.XPath(expr)
        etree.XPath(f"string({expr})")  # how single values are read (connectors.html_page.Extractor)
    except etree.XPathSyntaxError as exc:
        raise ValueError(f"not a valid XPath ({exc}): {expr!r}") from None
    return expr


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {pattern!r}") from None
    return pattern


def _check_placeholders(where: str, template: str, allowed: frozenset[str]) -> None:
    """`template` may use only `allowed` {placeholders} (no attribute or index access either)."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{where}: bad template {template!r} ({exc})") from None
    if names - allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"{where}: unknown placeholder(s) {sorted(names - allowed)} (allowed here: {shown})")


def _plain_url(url: str) -> str:
    _check_placeholders("url", url, frozenset())
    return url


PlainUrl = Annotated[str, Field(min_length=1), AfterValidator(_plain_url)]


Charset = Annotated[str, AfterValidator(_check_charset)]
XPathText = Annotated[str, Field(min_length=1), AfterValidator(_check_xpath)]
RegexText = Annotated[str, Field(min_length=1), AfterValidator(_check_regex)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldSpec(_Model):
    """Where one value is: an XPath (relative to its row), optionally narrowed by a regex.

    The XPath may select elements (their text), attributes or text nodes, or be a
    string() expression. `regex` keeps its first group (or the whole match);
    `split` cuts a multi-valued cell (authors) into values.
    """

    xpath: XPathText
    regex: RegexText | None = None
    split: RegexText | None = None


def _field_shorthand(value: object) -> object:
    return {"xpath": value} if isinstance(value, str) else value


Spec = Annotated[FieldSpec, BeforeValidator(_field_shorthand)]


class FormAction(_Model):
    """One request the connector sends: URL template, method, fields; optionally a form page first.

    `form_url` is fetched (GET) before the request, to copy `state_fields` (hidden
    inputs such as JSF's javax.faces.ViewState, which must be echoed) and, for
    holds, to read the pickup options. Templates use `{placeholder}`s; a field
    whose template renders empty (no item id, say) is left out.
    """

    placeholders: ClassVar[frozenset[str]] = frozenset()

    url: NonEmpty
    method: Literal["GET", "POST"] = "GET"
    fields: dict[str, str] = Field(default_factory=dict)
    form_url: str | None = None
    state_fields: list[NonEmpty] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_templates(self) -> FormAction:
        templates = {"url": self.url, "form_url": self.form_url or ""}
        templates.update({f"fields.{name}": value for name, value in self.fields.items()})
        for where, template in templates.items():
            _check_placeholders(where, template, self.placeholders)
        if self.state_fields and self.form_url is None:
            raise ValueError("state_fields need a form_url to read them from")
        return self


class Paging(_Model):
    kind: Literal["page", "offset"] = "page"  # page number, or index of the first row
    param: NonEmpty
    first: int = Field(default=1, ge=0)  # the value that asks for the first page / row


QueryField = Literal["text", "title", "author", "isbn", "year"]


class RecordFields(_Model):
    title: Spec
    local_id: Spec
    reading: Spec | None = None
    author: Spec | None = None
    publisher: Spec | None = None
    year: Spec | None = None
    isbn: Spec | None = None
    detail_link: Spec | None = None  # else the detail page comes from holdings.url


class SearchSpec(FormAction):
    """The result list. `fields` are fixed parameters; `query_fields` map SearchQuery fields."""

    query_fields: dict[QueryField, NonEmpty] = Field(min_length=1)
    page_size: int = Field(ge=1, le=200)  # rows the OPAC shows per page
    paging: Paging | None = None  # None: only the first page can be read
    rows: XPathText
    record: RecordFields
    hits: Spec | None = None  # evaluated on the whole page
    no_hits_marker: str | None = None  # text of the page that says "nothing found"
    max_detail_pages: int = Field(default=10, ge=0, le=100)  # detail pages fetched per search, for holdings
    detail_concurrency: int = Field(default=4, ge=1, le=16)
    # Reuse of the form page's `state_fields` across searches (connectors.html_form_state): for up
    # to this many seconds, refreshed from every result page that carries them; 0 reads the form
    # page before every search. Reuse needs `state_expired_marker`, the text of the page the OPAC
    # answers a stale state with (JSF: ViewExpiredException): such an answer is read again once
    # with a fresh form page. Without a marker a stale state could not be told from an empty list.
    state_max_age_s: float = Field(default=0.0, ge=0, le=3600)
    state_expired_marker: str | None = None

    @model_validator(mode="after")
    def _check_state_reuse(self) -> SearchSpec:
        if self.state_max_age_s > 0 and not (self.state_fields and self.state_expired_marker):
            raise ValueError("state_max_age_s needs state_fields and a state_expired_marker (how a stale state is told)")
        return self


class HoldingsSpec(_Model):
    url: NonEmpty  # detail page, placeholder {record_id}
    rows: XPathText
    branch: Spec
    status: Spec
    call_number: Spec | None = None
    item_id: Spec | None = None
    due_date: Spec | None = None
    collection: Spec | None = None

    @model_validator(mode="after")
    def _check_url(self) -> HoldingsSpec:
        _check_placeholders("url", self.url, frozenset({"record_id"}))
        return self


class StatusSpec(_Model):
    # The product's own words, layered over the shared vocabulary (member settings win over both).
    words: dict[str, Availability] = Field(default_factory=dict)
    # tos OPACs of some libraries show an available copy as an empty cell (<td><br></td>).
    empty_status_means: Availability = Availability.UNKNOWN


class LoginSpec(FormAction):
    placeholders = frozenset({"card_number", "pin"})

    session_cookie: NonEmpty  # must be set by the login answer
    success_marker: str | None = None  # text on the page after a good login
    session_ttl_s: float = Field(default=600, gt=0, le=86400)  # reuse a login at most this long
    # How the OPAC says a session ended: a redirect to a URL matching this, and/or a text.
    expired_url: RegexText | None = None
    expired_marker: str | None = None

    @model_validator(mode="after")
    def _check_expiry(self) -> LoginSpec:
        if self.expired_url is None and not self.expired_marker:
            raise ValueError("give expired_url or expired_marker: how the OPAC shows an expired session")
        return self


class BlockRule(_Model):
    pattern: RegexText
    reason: Literal["overdue", "card_expired", "fines", "inactive"]


class PatronSpec(_Model):
    url: PlainUrl
    holds_count: Spec | None = None
    loans_count: Spec | None = None
    overdue_count: Spec | None = None
    loan_rows: XPathText | None = None
    loan_record_id: Spec | None = None
    blocks: list[BlockRule] = Field(default_factory=list)  # matched against the page's messages


class HoldSpec(FormAction):
    placeholders = frozenset({"record_id", "pickup_code", "item_id"})

    form_url: NonEmpty  # type: ignore[assignment]  # required here: pickup options come from it
    pickup_options: XPathText  # <option> elements: value = the OPAC's code, text = the branch name
    success_marker: NonEmpty
    hold_id: Spec | None = None  # on the confirmation page


class HoldListSpec(_Model):
    url: PlainUrl
    rows: XPathText
    hold_id: Spec
    record_id: Spec
    status: Spec
    pickup: Spec | None = None
    queue_position: Spec | None = None
    ready_until: Spec | None = None
    states: dict[str, HoldState] = Field(min_length=1)  # the OPAC's hold words -> lifecycle state


class CancelSpec(FormAction):
    placeholders = frozenset({"hold_id"})

    success_marker: NonEmpty


class RefusalRule(_Model):
    pattern: RegexText  # matched against the page's messages (message_xpath)
    reason: NonEmpty

    @model_validator(mode="after")
    def _check_reason(self) -> RefusalRule:
        if self.reason not in HOLD_REFUSAL_REASONS:
            raise ValueError(f"reason {self.reason!r} is not one of {sorted(HOLD_REFUSAL_REASONS)}")
        return self


class OpacProfile(_Model):
    name: NonEmpty
    description: str = ""
    charset: Charset | None = None  # None: the HTTP header, then <meta>, then UTF-8
    form_charset: Charset | None = None  # how form values are percent-encoded; default: charset
    # A page not containing this is treated as truncated ("" turns the check off).
    page_end_marker: str = "</html>"
    message_xpath: XPathText | None = None  # where the OPAC writes errors and notices
    search: SearchSpec
    holdings: HoldingsSpec | None = None
    status: StatusSpec = Field(default_factory=StatusSpec)
    login: LoginSpec | None = None
    patron: PatronSpec | None = None
    hold: HoldSpec | None = None
    hold_list: HoldListSpec | None = None
    cancel: CancelSpec | None = None
    refusals: list[RefusalRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_sections(self) -> OpacProfile:
        needs_login = [name for name in ("patron", "hold", "hold_list", "cancel") if getattr(self, name) is not None]
        if needs_login and self.login is None:
            raise ValueError(f"{', '.join(needs_login)} need a [login] section")
        if (self.hold is not None or self.cancel is not None) and self.hold_list is None:
            raise ValueError("hold and cancel need a [hold_list] section (holds are looked up there)")
        if self.search.record.detail_link is not None and self.holdings is None:
            raise ValueError("search.record.detail_link needs a [holdings] section to read the detail page")
        return self

    @property
    def form_codec(self) -> str:
        return self.form_charset or self.charset or "utf-8"


# --- loading ---------------------------------------------------------------------------------------


class OpacProfileError(ConfigError):
    """A profile that cannot be used; one line per problem, each naming the file and the field."""

    def __init__(self, path: Path | str, problems: list[str], context: str = "") -> None:
        self.path = Path(path)
        self.problems = problems
        where = f"{self.path}{f' ({context})' if context else ''}"
        super().__init__("\n".join(f"{where}: {problem}" for problem in problems))


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` laid over `base`: tables merge key by key, any other value replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _field_path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        # pydantic puts validator names (function-after[...]) in the path for annotated types.
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
    return path or "(top level)"


def load_profile_file(
    path: Path | str, overrides: Mapping[str, Any] | None = None, *, context: str = ""
) -> OpacProfile:
    """Read and validate one profile file, with `overrides` merged over it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise OpacProfileError(path, ["profile file not found"], context) from None
    except OSError as exc:
        raise OpacProfileError(path, [f"cannot read file: {exc.strerror or exc}"], context) from None
    except UnicodeDecodeError as exc:
        raise OpacProfileError(path, [f"not UTF-8 text (byte offset {exc.start})"], context) from None
    except tomllib.TOMLDecodeError as exc:
        raise OpacProfileError(path, [f"TOML syntax error: {exc}"], context) from None
    try:
        return OpacProfile.model_validate(merge(data, overrides or {}))
    except ValidationError as exc:
        problems = [f"{_field_path(error['loc'])}: {error['msg']}" for error in exc.errors()]
        raise OpacProfileError(path, problems, context) from None


def load_profile(name: str, overrides: Mapping[str, Any] | None = None, *, context: str = "") -> OpacProfile:
    """A shipped profile by name (`tos`, `wopc` …), with `overrides` merged over it."""
    if not _PROFILE_NAME.fullmatch(name):
        raise OpacProfileError(PROFILE_DIR / f"{name}.toml", [f"profile name {name!r} must be a plain file stem"], context)
    path = PROFILE_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise OpacProfileError(path, [f"no profile named {name!r} (shipped: {known})"], context)
    return load_profile_file(path, overrides, context=context)
