"""Volume designations: 上/中/下, 前編/後編, 第3巻, (3), 〔3〕, vol. 3, Ⅲ, 巻之三, 1-3 …

`parse_volume` turns a designation (or a whole title ending in one) into a `Volume`,
a small comparable value; `split_volume` also returns the title without it, so that
'ノルウェイの森 上' and 'ノルウェイの森' + volume '上' get the same title key.

Levels: Edo-period sets nest designations — '二編上' is the upper fascicle of part 2,
'3篇1巻之13' has three levels. `Volume.outer` holds the enclosing levels. A number
written just before a designation is an enclosing level too, so '15歳でも俺の嫁! 2 (上)',
'… 2. 上' and '… 2 上' all give title '15歳でも俺の嫁!' and volume 2/上.

Units: the same number can count different things, and catalogues say which.
- plain: '第3巻', '巻3', '巻之三', 'vol. 3', '(3)', '3', '3号' — the third volume;
- part: '第2集', '2編', '初篇', '第4輯', '部' — a part or series, which has its own volumes;
- count: a bare '3巻' / '3冊' — in old-book records this is an extent ('百人一首一夕話 9巻' =
  the set in 9 volumes, listed beside its volumes 巻之一 … 巻之九), so it equals only another '3巻'.
After an ISBD colon ('一休ばなし : 4巻') a designation is an extent, not a volume; a further
level after it is the volume ('一休ばなし : 4巻 [1]').

Extraction from a title is conservative: the designation must end the title and be
separated from it (space, ISBD '. ', or brackets), so 'Ruby on Rails 5アプリ…' or
'ブックビジネス2.0' never yield a volume. Bare roman numerals need two upper-case
letters ('Rocky II'), so 'Who am I', 'Malcolm X' or 'Do re mi' stay titles; the Unicode
forms (Ⅰ…Ⅻ) count. A bare range of large numbers ('2009-2016') is a span of years, not a set.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from index.numerals import KANJI_NUMERAL_CHARS, to_int

SEQ = "seq"  # a numbered volume: ("seq", 3)
PART = "part"  # a named part: ("part", "upper")
SET = "set"  # several volumes in one record: ("set", 1, 3)

PLAIN = ""  # units, see the module doc
PART_UNIT = "part"
COUNT = "count"

# Named parts -> (name, ordinal it is equivalent to, or None when ambiguous).
# 下/後/坤 are the *last* of two or three, so they never equal a number: a 下 written
# as '2' (of 上下) or '3' (of 上中下) cannot be told apart, and a cross-volume merge is
# worse than a missed one.
# 前/乾 are not equated with 1 either: old sets number some volumes and name others
# (絵本忠臣蔵 1 … 10, 前, 後), so '前' and '1' can be different books of one set.
_PART_NAMES: dict[str, tuple[str, int | None]] = {
    "上": ("upper", 1),
    "中": ("middle", 2),
    "下": ("lower", None),
    "前": ("first", None),
    "後": ("latter", None),
    "乾": ("heaven", None),  # 乾/坤: the two-volume pair of old books
    "坤": ("earth", None),
}
_PART_ORDINAL: dict[str, int | None] = {name: ordinal for name, ordinal in _PART_NAMES.values()}
_PART_LABEL: dict[str, str] = {name: ch for ch, (name, _) in _PART_NAMES.items()}
_UNIT_LABEL = {PLAIN: "", PART_UNIT: "編", COUNT: "巻"}

MAX_SET_NUMBER = 999  # '1-3' is a set of volumes, '2009-2016' a span of years


class Level(NamedTuple):
    kind: str
    value: int | str
    unit: str = PLAIN


class Volume(NamedTuple):
    """A normalised volume designation; equal designations compare equal.

    kind is SEQ (value: int), PART (value: 'upper' | 'middle' | 'lower' | 'first' |
    'latter' | 'heaven' | 'earth') or SET (value .. end: ints, or part names for 上下).
    `outer` holds enclosing levels (二編上 -> outer (Level('seq', 2, 'part'),)); `unit`
    says what the innermost number counts (see the module doc).
    """

    kind: str
    value: int | str
    end: int | str | None = None
    outer: tuple[Level, ...] = ()
    unit: str = PLAIN

    @property
    def label(self) -> str:
        """Display form: '3', '上', '1-3', '2編上', '3巻'."""
        outer = "".join(_level_label(level.kind, level.value, None, level.unit) for level in self.outer)
        return outer + _level_label(self.kind, self.value, self.end, self.unit)


def _level_label(kind: str, value: int | str, end: int | str | None, unit: str) -> str:
    def one(v: int | str | None) -> str:
        return _PART_LABEL.get(v, v) if isinstance(v, str) else str(v)

    if kind == SET:
        return f"{one(value)}-{one(end)}"
    return one(value) + (_UNIT_LABEL[unit] if kind == SEQ else "")


# --- regex pieces -------------------------------------------------------------------
_NUM = rf"(?:\d{{1,4}}|[{KANJI_NUMERAL_CHARS}]{{1,5}}|廿|卅)"
# A bare roman numeral needs 2+ upper-case letters (II, XIV): 'Who am I', 'Do re mi' stay titles.
_ROMAN_MULTI = r"(?-i:[IVX]{2,6})"
_ROMAN_ANY = r"(?:[ivxlcdm]{1,7})"
_PART_CH = "上中下前後乾坤"
_PLAIN_SUFFIX = r"(?:之巻|の巻|巻|号|回)"
_PART_SUFFIX = r"(?:編|篇|集|輯|部)"
_COUNT_SUFFIX = r"(?:巻|冊|分冊)"
_ANY_SUFFIX = r"(?:分冊|之巻|の巻|巻|冊|号|回|編|篇|集|輯|部)"
_RANGE_SEP = r"\s*[-‐–—~～〜・,、]\s*"
_OPEN = r"[(\[（〔［【〈<]"
_CLOSE = r"[)\]）〕］】〉>]"

# One level of a designation. Alternatives are ordered most specific first.
_LEVEL = (
    r"(?:"
    rf"(?:vol\.?|v\.|no\.?|nr\.?|bd\.?|tome|t\.|book|part|pt\.?)\s*(?P<latin>\d{{1,4}}|{_ROMAN_ANY})(?![a-z])"
    rf"|(?P<rd>第)?(?P<r1>{_NUM}){_RANGE_SEP}(?:第)?(?P<r2>{_NUM})(?P<rs>{_ANY_SUFFIX})?"  # 1-3, 第1～3集
    rf"|(?P<ps1>[上前乾])(?:・)?(?P<ps2>[中]?)(?:・)?(?P<ps3>[下後坤])(?:巻)?(?=$|\s|{_CLOSE})"  # 上下, 上・下
    rf"|巻\s*(?:之|の)?\s*(?:第)?(?P<kn>{_NUM})"  # 巻之三, 巻の3, 巻之第1, 巻3
    rf"|巻\s*(?:之|の)?\s*(?P<kp>[{_PART_CH}])"  # 巻之上, 巻上
    rf"|第\s*(?P<dn>{_NUM})(?:\s*(?P<ds>{_ANY_SUFFIX}))?"  # 第3巻, 第2集, 第3
    rf"|(?P<sn>{_NUM})\s*(?P<ss>{_ANY_SUFFIX})"  # 3巻, 二編, 3号
    rf"|(?P<ip>初){_PART_SUFFIX}"  # 初編 = part 1
    rf"|(?P<pp>[{_PART_CH}])(?:\s*{_ANY_SUFFIX})?"  # 上, 上巻, 前編, 後篇, 乾
    rf"|(?P<bn>\d{{1,4}}|{_ROMAN_MULTI})(?=$|\W|の|之|[{_PART_CH}])"  # bare 3, III, '5の上', '14下'
    rf"|(?P<bk>[{KANJI_NUMERAL_CHARS}]{{1,5}})(?=$|\s|の|之|{_CLOSE})"  # bare 三 (only inside a designation)
    r")"
)
_LEVEL_RE = re.compile(_LEVEL, re.IGNORECASE)
# The same pattern without group names, so it can repeat inside one regex.
_ANY_LEVEL = re.sub(r"\(\?P<\w+>", "(?:", _LEVEL)
_BRACKETED = rf"{_OPEN}\s*{_ANY_LEVEL}(?:\s*(?:の|之)?\s*{_ANY_LEVEL})*\s*{_CLOSE}"
_PLAIN = rf"{_ANY_LEVEL}(?:\s*(?:の|之)?\s*{_ANY_LEVEL})*"
_ALT = rf"{_OPEN}[^()\[\]（）〔〕［］【】]{{1,12}}{_CLOSE}"
# A designation at the end of a title, separated from it, optionally followed by one
# bracketed group: an alternative ('上巻(乾)', '1(1-2巻)') or, after a space, the next level.
_DESIGNATION = re.compile(
    rf"(?:(?P<sep>\s+|\.\s+)(?P<plain>{_PLAIN})|(?P<bracketed>{_BRACKETED}))(?P<alt>\s*{_ALT})?\s*$",
    re.IGNORECASE,
)
_WHOLE = re.compile(rf"\s*(?:{_PLAIN}|{_BRACKETED})\s*(?:{_ALT})?\s*", re.IGNORECASE)
_STRIP_ALT = re.compile(rf"\s*{_ALT}\s*$")
# Ⅰ…Ⅻ / ⅰ…ⅻ become digits before NFKC (which would turn Ⅰ into an ambiguous 'I').
ROMAN_NUMERAL_DIGITS = {0x2160 + i: str(i + 1) for i in range(12)} | {0x2170 + i: str(i + 1) for i in range(12)}
_SINGLE_ROMAN = re.compile(r"[ivx]", re.IGNORECASE)
_EXTENT_AFTER_COLON = re.compile(r":\s*$")  # after NFKC, so '：' too
_TRAILING_PUNCT = re.compile(r"[\s.,;:/=]+$")
_PUNCT_END = frozenset(" \t\n.,;:/=")
# Designations are short: only the end of a title is searched (a search over the whole title
# tries the big alternation at every position).
_SEARCH_WINDOW = 40
_BRACKET_CHARS = "()[]（）〔〕［］【】〈〉<> "
# Cheap pre-check: a designation can only end in one of these (most titles end otherwise).
_CAN_END = frozenset(
    "0123456789IVXivxlcdm" + KANJI_NUMERAL_CHARS + "廿卅" + _PART_CH + "巻冊号回編篇集輯部" + ")]）〕］】〉>"
)
MAX_LEVELS_LEFT = 3  # how far '… 2 上' is followed to the left


def _unit(suffix: str | None) -> str:
    if not suffix:
        return PLAIN
    if re.fullmatch(_PART_SUFFIX, suffix):
        return PART_UNIT
    if suffix in ("巻", "冊", "分冊"):
        return COUNT
    return PLAIN


def _level_value(match: re.Match[str]) -> tuple[Level, int | str | None] | None:
    """(level, set end) of one matched level, or None when it does not make sense."""
    groups = match.groupdict()
    if groups["latin"] is not None:
        value = to_int(groups["latin"])
        return (Level(SEQ, value), None) if value is not None else None
    if groups["r1"] is not None:
        first, last = to_int(groups["r1"]), to_int(groups["r2"])
        marked = groups["rd"] is not None or groups["rs"] is not None
        if first is None or last is None or not first < last or (not marked and last > MAX_SET_NUMBER):
            return None
        return Level(SET, first, PART_UNIT if _unit(groups["rs"]) == PART_UNIT else PLAIN), last
    if groups["ps1"] is not None:
        return Level(SET, _PART_NAMES[groups["ps1"]][0]), _PART_NAMES[groups["ps3"]][0]
    if groups["kn"] is not None:
        value = to_int(groups["kn"])
        return (Level(SEQ, value), None) if value is not None else None
    if groups["dn"] is not None:  # 第3巻 names one volume: never a count
        value = to_int(groups["dn"])
        unit = PART_UNIT if _unit(groups["ds"]) == PART_UNIT else PLAIN
        return (Level(SEQ, value, unit), None) if value is not None else None
    if groups["sn"] is not None:
        value = to_int(groups["sn"])
        return (Level(SEQ, value, _unit(groups["ss"])), None) if value is not None else None
    for name in ("bn", "bk"):
        if groups[name] is not None:
            value = to_int(groups[name])
            return (Level(SEQ, value), None) if value is not None else None
    if groups["ip"] is not None:
        return Level(SEQ, 1, PART_UNIT), None
    for name in ("kp", "pp"):
        if groups[name] is not None:
            return Level(PART, _PART_NAMES[groups[name]][0]), None
    return None


def _parse_levels(text: str) -> list[tuple[Level, int | str | None]] | None:
    levels = [level for level, _ in _level_spans(text.strip(_BRACKET_CHARS)) or []]
    return levels or None


def _level_spans(text: str) -> list[tuple[tuple[Level, int | str | None], int]] | None:
    """Each level of a designation with the offset where it ends; None if one is nonsense."""
    out = []
    for match in _LEVEL_RE.finditer(text):
        level = _level_value(match)
        if level is None:
            return None
        out.append((level, match.end()))
    return out


def _to_volume(levels: list[tuple[Level, int | str | None]]) -> Volume | None:
    *outer, (inner, end) = levels
    if any(level.kind == SET for level, _ in outer):
        return None
    return Volume(inner.kind, inner.value, end, tuple(level for level, _ in outer), inner.unit)


_HAS_UNICODE_ROMAN = re.compile("[\u2160-\u217f]")


def normalise(text: str) -> str:
    """NFKC, with Ⅰ…Ⅻ turned into digits first (translate is only paid when one is present)."""
    if _HAS_UNICODE_ROMAN.search(text) is not None:
        text = text.translate(ROMAN_NUMERAL_DIGITS)
    return unicodedata.normalize("NFKC", text)


def _strip_trailing_punct(text: str) -> str:
    return _TRAILING_PUNCT.sub("", text) if text and text[-1] in _PUNCT_END else text


def _split_once(text: str, first: bool) -> tuple[str, list[tuple[Level, int | str | None]], str] | None:
    """Find the designation ending `text`: (head, its levels, designation as written)."""
    if not text or text[-1] not in _CAN_END:
        return None
    match = _DESIGNATION.search(text, max(0, len(text) - _SEARCH_WINDOW))
    if match is None:
        return None
    head = text[: match.start()]
    if not head.strip():
        return None  # the whole string is a number: a title such as '1984', not a volume
    plain = match.group("plain")
    designation = plain if plain is not None else match.group("bracketed")
    spans = _level_spans(designation.strip(_BRACKET_CHARS) if plain is None else designation)
    if not spans:
        return None
    if plain is not None:
        # A range is never an enclosing level: in 'May 15-16, 1996' only '1996' designates.
        last_set = max((i for i, ((level, _), _) in enumerate(spans[:-1]) if level.kind == SET), default=-1)
        if last_set >= 0:
            cut = spans[last_set][1]
            head, designation, spans = (
                head + match.group("sep") + designation[:cut],
                designation[cut:],
                spans[last_set + 1 :],
            )
            spans = [(level, end - cut) for level, end in spans]
            match_sep = " "
        else:
            match_sep = match.group("sep")
    levels = [level for level, _ in spans]
    if plain is not None and _EXTENT_AFTER_COLON.search(head + " "):
        # ' : 3巻', ' : 7編35巻' is an extent (counts of parts and volumes); only a plain
        # number or a bracket after it is the volume ('一休ばなし : 4巻 [1]', '… : 4巻 1').
        if not first:
            return None
        n_extent = next((i for i, (level, _) in enumerate(levels) if level.unit == PLAIN), len(levels))
        extent_end = spans[n_extent - 1][1] if n_extent else 0
        if match.group("alt"):
            alt_levels = _parse_levels(match.group("alt"))
            if alt_levels is None or n_extent < len(levels):
                return None
            return head + match_sep + designation, alt_levels, match.group("alt").strip()
        if n_extent == 0 or n_extent == len(levels):
            return None
        return head + match_sep + designation[:extent_end], levels[n_extent:], designation[extent_end:].strip()
    alt = match.group("alt")
    if alt and alt[0].isspace():
        # '2 (上)': a bracket after a space is the next level; glued on ('上巻(乾)', '1(1-2巻)')
        # it is an alternative spelling or a contents note, and ignored.
        alt_levels = _parse_levels(alt)
        if alt_levels is not None:
            return head, levels + alt_levels, f"{designation.strip()} {alt.strip()}"
    return head, levels, designation.strip()


@lru_cache(maxsize=1 << 13)
def split_volume(title: str) -> tuple[str, Volume | None, str | None]:
    """Cut a trailing volume designation off a title.

    Returns (title without it, the Volume or None, the designation as written).
    'ノルウェイの森 上' -> ('ノルウェイの森', Volume('part', 'upper'), '上').
    """
    text = _strip_trailing_punct(normalise(title))
    found = _split_once(text, first=True)
    if found is None:
        return title, None, None
    head, levels, written = found
    # A number just before the designation is an enclosing level: '… 2 (上)', '… 2. 上'.
    for _ in range(MAX_LEVELS_LEFT):
        more = _split_once(_strip_trailing_punct(head), first=False)
        if more is None or any(level.kind == SET for level, _ in more[1]):
            break
        head, outer, outer_written = more
        levels = outer + levels
        written = f"{outer_written} {written}"
    volume = _to_volume(levels)
    if volume is None:
        return title, None, None
    return _strip_trailing_punct(head), volume, written


@lru_cache(maxsize=1 << 13)
def parse_volume(text: str | None) -> Volume | None:
    """A Volume from a volume field ('上', '(3)', 'v.3', '第3巻', 'Vol.III', '1～3', '巻之三')
    or from the end of a whole title ('竜馬がゆく 第1巻', 'Harry Potter vol. 2'); None if none.

    A string that is nothing but a designation is read as a volume field, leniently:
    '1', 'I' and '上' on their own are volumes.
    """
    if not text:
        return None
    normalised = _strip_trailing_punct(normalise(text)).strip()
    if not normalised:
        return None
    if _SINGLE_ROMAN.fullmatch(normalised):
        return Volume(SEQ, to_int(normalised) or 0)
    if _WHOLE.fullmatch(normalised):
        levels = _parse_levels(_STRIP_ALT.sub("", normalised) or normalised)
        if levels is not None:
            return _to_volume(levels)
    return split_volume(text)[1]


def volumes_compatible(a: Volume | None, b: Volume | None) -> bool:
    """Can two designations describe the same physical volume?

    Equal designations can; so can 上 and 1, 中 and 2 (上 is always the first volume,
    中 the second of 上中下). No volume vs a volume cannot: one record is
    the whole set (or a one-volume book), the other a single volume.
    """
    if a == b:
        return True
    if a is None or b is None or len(a.outer) != len(b.outer):
        return False
    if a.kind == SET or b.kind == SET:
        return False  # sets are equal or different, nothing in between
    if a.outer != b.outer and not all(_level_compatible(x, y) for x, y in zip(a.outer, b.outer, strict=True)):
        return False
    return _level_compatible(Level(a.kind, a.value, a.unit), Level(b.kind, b.value, b.unit))


def _level_compatible(a: Level, b: Level) -> bool:
    if a == b:
        return True
    if {a.kind, b.kind} == {SEQ, PART}:
        seq, part = (a, b) if a.kind == SEQ else (b, a)
        return seq.unit == PLAIN and _PART_ORDINAL.get(str(part.value)) == seq.value
    return False


def combine_volumes(in_title: Volume | None, in_field: Volume | None) -> Volume | None:
    """The volume of a record whose title and volume field both carry one.

    Equal or compatible designations are one volume (the deeper one is kept). Otherwise
    the title's designation encloses the field's: title '15歳でも俺の嫁! 2' + field '上' is
    volume 2/上, the same as a title '15歳でも俺の嫁! 2 上'.
    """
    if in_title is None or in_field is None:
        return in_title or in_field
    if volumes_compatible(in_title, in_field):
        return in_title if len(in_title.outer) >= len(in_field.outer) else in_field
    if in_title.kind == SET:
        return in_field
    outer = (*in_title.outer, Level(in_title.kind, in_title.value, in_title.unit), *in_field.outer)
    return in_field._replace(outer=outer)
