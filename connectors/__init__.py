"""Connectors: one adapter per member-system protocol behind one contract (`base.Connector`)."""

from __future__ import annotations

from connectors.settings import TargetSettings
from connectors.base import Capability, Connector, ReadAnswer, SearchResult
from connectors.calil import CalilConnector
from connectors.html_opac import HtmlOpacConnector
from connectors.http import HttpClient
from connectors.ingest_pool import IngestPool, IngestSettings
from connectors.ils_rest import ILSRestConnector
from connectors.ncip import NCIPConnector
from connectors.opensearch import OpenSearchConnector
from connectors.sru import SRUConnector
from connectors.unknown_words import UnknownWords, counting_into

# kind in the consortium file -> adapter class. New families register here.
CONNECTOR_KINDS: dict[str, type[Connector]] = {
    SRUConnector.kind: SRUConnector,
    ILSRestConnector.kind: ILSRestConnector,
    NCIPConnector.kind: NCIPConnector,
    HtmlOpacConnector.kind: HtmlOpacConnector,
    OpenSearchConnector.kind: OpenSearchConnector,
    CalilConnector.kind: CalilConnector,
}


def connector_for(
    settings: TargetSettings,
    http: HttpClient,
    *,
    unknown_words: UnknownWords | None = None,
    ingest: IngestPool | None = None,
) -> Connector:
    """The adapter for one member, chosen by the `kind` its settings name; its unknown status words count into
    `unknown_words`; families that can parse in worker processes use `ingest` (the app's pool and record cache)."""
    try:
        cls = CONNECTOR_KINDS[settings.kind]
    except KeyError:
        known = ", ".join(sorted(CONNECTOR_KINDS))
        raise ValueError(f"member {settings.member}: unknown connector kind {settings.kind!r} (known: {known})") from None
    with counting_into(UnknownWords() if unknown_words is None else unknown_words):
        if ingest is not None and cls.uses_ingest_pool:
            return cls(settings, http, ingest=ingest)  # type: ignore[call-arg]
        return cls(settings, http)


__all__ = [
    "CONNECTOR_KINDS", "Capability", "Connector", "HttpClient", "IngestPool", "IngestSettings", "ReadAnswer", "SearchResult",
    "UnknownWords", "connector_for",
]
