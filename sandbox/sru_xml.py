"""SRU 1.2 response documents: searchRetrieve, diagnostics and explain.

Built as bytes around cached record bytes; the element order follows the
SRW 1.2 schema (version, numberOfRecords, records, nextRecordPosition,
echoedSearchRetrieveRequest, diagnostics), as Zebra sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

SRW_NS = "http://www.loc.gov/zing/srw/"
DIAG_NS = "http://www.loc.gov/zing/srw/diagnostic/"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

SCHEMA_URIS = {"marcxml": "info:srw/schema/1/marcxml-v1.1", "dc": "info:srw/schema/1/dc-v1.1"}

# Standard SRU diagnostic messages (info:srw/diagnostic/1/N).
DIAGNOSTIC_MESSAGES = {
    4: "Unsupported operation",
    5: "Unsupported version",
    6: "Unsupported parameter value",
    7: "Mandatory parameter not supplied",
    8: "Unsupported parameter",
    10: "Query syntax error",
    16: "Unsupported index",
    19: "Unsupported relation",
    20: "Unsupported relation modifier",
    27: "Empty term unsupported",
    28: "Masking character not supported",
    36: "Term in invalid format for index or relation",
    37: "Unsupported boolean operator",
    61: "First record position out of range",
    66: "Unknown schema for retrieval",
    71: "Unsupported record packing",
}

_ECHOED = ("version", "query", "startRecord", "maximumRecords", "recordPacking", "recordSchema")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: int
    details: str | None = None
    message: str | None = None  # defaults to the standard message for the code

    def xml(self) -> str:
        message = self.message or DIAGNOSTIC_MESSAGES.get(self.code, "")
        details = f"<diag:details>{escape(self.details)}</diag:details>" if self.details else ""
        return (
            f"<diag:diagnostic><diag:uri>info:srw/diagnostic/1/{self.code}</diag:uri>"
            f"<diag:message>{escape(message)}</diag:message>{details}</diag:diagnostic>"
        )


def _echo(params: Mapping[str, str]) -> str:
    inner = "".join(f"<zs:{name}>{escape(params[name])}</zs:{name}>" for name in _ECHOED if name in params)
    return f"<zs:echoedSearchRetrieveRequest>{inner}</zs:echoedSearchRetrieveRequest>"


def search_response(
    *,
    params: Mapping[str, str],
    hits: int | None,
    records: Iterable[tuple[int, bytes]] = (),
    schema: str = "marcxml",
    next_position: int | None = None,
    diagnostic: Diagnostic | None = None,
) -> bytes:
    """A searchRetrieveResponse; `records` are (position, record bytes). `hits` None omits the count."""
    parts = [XML_DECLARATION, f'<zs:searchRetrieveResponse xmlns:zs="{SRW_NS}"><zs:version>1.2</zs:version>'.encode()]
    if hits is not None:
        parts.append(f"<zs:numberOfRecords>{hits}</zs:numberOfRecords>".encode())
    record_head = (
        f"<zs:record><zs:recordSchema>{SCHEMA_URIS[schema]}</zs:recordSchema>"
        "<zs:recordPacking>xml</zs:recordPacking><zs:recordData>"
    ).encode()
    body = [
        record_head + data + f"</zs:recordData><zs:recordPosition>{position}</zs:recordPosition></zs:record>".encode()
        for position, data in records
    ]
    if body:
        parts += [b"<zs:records>", *body, b"</zs:records>"]
    if next_position is not None:
        parts.append(f"<zs:nextRecordPosition>{next_position}</zs:nextRecordPosition>".encode())
    parts.append(_echo(params).encode())
    if diagnostic is not None:
        parts.append(f'<zs:diagnostics xmlns:diag="{DIAG_NS}">{diagnostic.xml()}</zs:diagnostics>'.encode())
    parts.append(b"</zs:searchRetrieveResponse>")
    return b"".join(parts)


# (index name in the dc/bath/cql context set, title) — what `sandbox.cql` accepts.
_EXPLAIN_INDEXES = (
    ("dc", "title", "Title (245, 880)"),
    ("dc", "creator", "Author (100, 700, 880)"),
    ("bath", "isbn", "ISBN (020), 10 or 13 digits"),
    ("dc", "date", "Year of publication (008/07-10)"),
    ("cql", "serverChoice", "Any field"),
)


def explain_response(*, host: str, database: str, title: str, default_records: int, maximum_records: int) -> bytes:
    """A ZeeRex record describing the member's endpoint, as Zebra's explain does."""
    indexes = "".join(
        f'<index search="true" scan="false" sort="false"><title>{escape(label)}</title>'
        f'<map><name set="{context}">{name}</name></map></index>'
        for context, name, label in _EXPLAIN_INDEXES
    )
    schemas = "".join(
        f'<schema identifier="{uri}" name="{name}"><title>{name}</title></schema>' for name, uri in SCHEMA_URIS.items()
    )
    explain = (
        '<explain xmlns="http://explain.z3950.org/dtd/2.0/">'
        f'<serverInfo protocol="SRU" version="1.2"><host>{escape(host)}</host>'
        f"<database>{escape(database)}</database></serverInfo>"
        f'<databaseInfo><title lang="ja" primary="true">{escape(title)}</title></databaseInfo>'
        '<indexInfo><set identifier="info:srw/cql-context-set/1/dc-v1.1" name="dc"/>'
        '<set identifier="info:srw/cql-context-set/1/cql-v1.2" name="cql"/>'
        f'<set identifier="http://zing.z3950.org/cql/bath/2.0/" name="bath"/>{indexes}</indexInfo>'
        f"<schemaInfo>{schemas}</schemaInfo>"
        f'<configInfo><default type="numberOfRecords">{default_records}</default>'
        f'<setting type="maximumRecords">{maximum_records}</setting></configInfo>'
        "</explain>"
    )
    return (
        XML_DECLARATION
        + (
            f'<zs:explainResponse xmlns:zs="{SRW_NS}"><zs:version>1.2</zs:version>'
            "<zs:record><zs:recordSchema>http://explain.z3950.org/dtd/2.0/</zs:recordSchema>"
            f"<zs:recordPacking>xml</zs:recordPacking><zs:recordData>{explain}</zs:recordData></zs:record>"
            "</zs:explainResponse>"
        ).encode()
    )


def diagnostic_only(code: int, details: str | None = None, *, params: Mapping[str, str] | None = None) -> bytes:
    """A searchRetrieveResponse carrying one fatal diagnostic and no count (Zebra's shape)."""
    return search_response(params=params or {}, hits=None, diagnostic=Diagnostic(code, details))
