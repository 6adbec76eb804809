"""An OPAC answer as a parsed page, and values read off it with a profile's XPaths.

Decoding is strict: the profile's charset, else the HTTP header's, else the
page's <meta>, else UTF-8 — and bytes that are not valid in that charset are an
`UndecodableResponse`, never replacement characters. One mislabelling decodes
"successfully" into mojibake (UTF-8 bytes read as Shift_JIS or EUC-JP: both
accept most byte pairs), so a legacy-charset page whose bytes are valid
multi-byte UTF-8 is refused too; Japanese text in Shift_JIS is practically never
valid UTF-8. Parsing uses lxml.html on the decoded text with network access,
comments and processing instructions off; size caps are the HTTP client's.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

import lxml.html
from lxml import etree

from connectors.errors import MalformedResponse, UndecodableResponse
from connectors.html_profile import FieldSpec, charset_codec
from connectors.http import HttpResponse

_PARSER = lxml.html.HTMLParser(
    remove_comments=True, remove_pis=True, no_network=True, huge_tree=False, collect_ids=False, default_doctype=False
)
_SNIFF_BYTES = 4096
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# lxml refuses str input that still declares an encoding (JSF pages are XHTML with <?xml … ?>).
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_END_SCAN_CHARS = 1024
_INPUT_VALUE = etree.XPath("//input[@name=$name]/@value")
_DATE = re.compile(r"(\d{4})\D{1,3}(\d{1,2})\D{1,3}(\d{1,2})")
_NUMBER = re.compile(r"\d[\d,]*")


@dataclass(slots=True)
class Page:
    url: str  # after redirects: relative links resolve against it
    text: str  # the decoded source, for marker texts
    root: lxml.html.HtmlElement


def decode_page(body: bytes, *, profile_codec: str | None, header_charset: str | None, member: str) -> str:
    if profile_codec is not None:
        label = codec = profile_codec
    else:
        sniffed = _META_CHARSET.search(body[:_SNIFF_BYTES])
        label = header_charset or (sniffed[1].decode("ascii") if sniffed else "utf-8")
        found = charset_codec(label)
        if found is None:
            raise UndecodableResponse(
                f"page declares charset {label!r}, which is not guessed with; set the profile's charset", member=member
            )
        codec = found
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise UndecodableResponse(
            f"page is not valid {label} (bad bytes at offset {exc.start}); the page or its profile names the wrong charset",
            member=member,
        ) from None
    if codec != "utf-8" and not body.isascii() and _is_utf8(body):
        raise UndecodableResponse(f"page is declared {label} but its bytes are UTF-8 (mislabelled page)", member=member)
    return text


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_page(response: HttpResponse, *, profile_codec: str | None, end_marker: str, member: str) -> Page:
    text = decode_page(response.body, profile_codec=profile_codec, header_charset=response.charset, member=member)
    # HTML parsers recover from a cut-off page silently (a list with its last rows
    # missing); the closing tag the product always writes tells a complete page.
    if end_marker and end_marker.lower() not in text[-_END_SCAN_CHARS:].lower():
        raise MalformedResponse(f"page is truncated: it does not end with {end_marker!r}", member=member)
    try:
        root = lxml.html.document_fromstring(_XML_DECLARATION.sub("", text, count=1), parser=_PARSER)
    except (etree.ParserError, ValueError) as exc:
        raise MalformedResponse(f"unparsable HTML: {exc}", member=member) from None
    return Page(response.url, text, root)


def clean(text: str) -> str:
    """Whitespace runs (incl. full-width spaces and &nbsp;) collapsed, ends trimmed."""
    return " ".join(text.split())


def _text_of(item: object) -> str:
    if isinstance(item, etree._Element):
        return item.text_content()
    if isinstance(item, float) and item.is_integer():  # count() and other number() results
        return str(int(item))
    return str(item)  # strings, attribute values, text nodes


class Extractor:
    """A compiled `FieldSpec`.

    `first` evaluates `string(xpath)`: the string value of the first selected node
    (an element's text, an attribute's value) computed inside libxml2, without an
    element proxy per field: half the cost, and this runs for every field of every row.
    """

    __slots__ = ("_first", "_regex", "_split", "_xpath")

    def __init__(self, spec: FieldSpec) -> None:
        self._xpath = etree.XPath(spec.xpath)
        self._first = etree.XPath(f"string({spec.xpath})")
        self._regex = re.compile(spec.regex) if spec.regex else None
        self._split = re.compile(spec.split) if spec.split else None

    def _narrow(self, text: str) -> str:
        text = clean(text)
        if self._regex is None or not text:
            return text
        match = self._regex.search(text)
        if match is None:
            return ""
        return clean(match.group(1) if self._regex.groups else match.group(0))

    def first(self, node: etree._Element) -> str:
        """The first value, "" when absent or empty (an empty cell is a value for status words)."""
        return self._narrow(self._first(node))

    def all(self, node: etree._Element) -> list[str]:
        result = self._xpath(node)
        values: list[str] = []
        for item in result if isinstance(result, list) else [result]:
            text = _text_of(item)
            for part in self._split.split(text) if self._split else (text,):
                value = self._narrow(part)
                if value:
                    values.append(value)
        return values


def compile_optional(spec: FieldSpec | None) -> Extractor | None:
    return Extractor(spec) if spec is not None else None


def input_value(root: etree._Element, name: str) -> str | None:
    found = _INPUT_VALUE(root, name=name)
    return str(found[0]) if found else None


def parse_date(text: str) -> date | None:
    """'2024/05/01', '2024-5-1', '2024年5月1日' (full-width digits too) -> date."""
    match = _DATE.search(unicodedata.normalize("NFKC", text))
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_count(text: str) -> int | None:
    """'1,234 件', '１２件', '2位' -> the number."""
    match = _NUMBER.search(unicodedata.normalize("NFKC", text))
    return int(match[0].replace(",", "")) if match else None
