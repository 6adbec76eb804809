"""The demo wiring: a consortium's members simulated by the sandbox on localhost.

Only the CLI, the tests and the benchmarks use this; production code paths
never import `sandbox`. Each member gets its own flavour (852 vs 952 holdings,
status vocabulary, ISBN style, latency) so the demo looks like a real network
of differently-run municipal systems.
"""

from __future__ import annotations

import zlib

from broker.consortium import Consortium, Member
from sandbox.host import SandboxHost
from sandbox.spec import FaultConfig, SandboxBranch, SandboxMember

# Vocabularies the sandbox knows; members cycle through them so the demo sees them all.
_STATUS_STYLES = ("standard", "tos", "plain", "standard", "legacy")
_ISBN_STYLES = ("13", "hyphenated13", "10", "mixed")


def _stable(member_id: str, salt: str) -> int:
    return zlib.crc32(f"{salt}:{member_id}".encode())


def _protocol(member: Member) -> tuple[str, dict[str, str], str | None]:
    """The sandbox protocol, its options and a forced status style, from the member's connector."""
    connector = member.connector
    kind = connector.kind
    if kind == "html_opac":
        style = connector.options.profile or "tos"  # a site-local profile_file is shown in the tos style
        overrides = connector.options.profile_overrides
        empty = overrides.get("status", {}).get("empty_status_means") == "available"
        return kind, {"style": style, **({"empty_available": "1"} if empty else {})}, "tos" if style == "tos" else None
    if kind == "calil":
        return kind, {"systemid": connector.options.systemid}, None
    return kind, {}, None


def sandbox_member(member: Member, *, latency_ms: float | None = None) -> SandboxMember:
    branches = [
        SandboxBranch(id=b.id, name=b.name, code=b.codes[0] if b.codes else b.id.rsplit("/", 1)[-1].upper())
        for b in member.branches
        if b.holds_stock  # pickup-only points (Kumamoto's 受取館) hold none of the member's stock
    ]
    # Bigger systems (more branches) hold more of the shared catalogue.
    share = min(0.9, 0.25 + 0.07 * len(branches))
    protocol, options, forced_style = _protocol(member)
    return SandboxMember(
        id=member.id,
        name=member.name,
        branches=branches,
        holdings_field="952" if _stable(member.id, "field") % 3 == 0 else "852",
        status_style=forced_style or _STATUS_STYLES[_stable(member.id, "status") % len(_STATUS_STYLES)],
        isbn_style=_ISBN_STYLES[_stable(member.id, "isbn") % len(_ISBN_STYLES)],
        latency_ms=latency_ms if latency_ms is not None else 15 + _stable(member.id, "latency") % 120,
        faults=FaultConfig(),
        catalogue_share=share,
        protocol=protocol,
        protocol_options=options,
    )


def sandbox_members(consortium: Consortium, *, latency_ms: float | None = None) -> list[SandboxMember]:
    return [sandbox_member(m, latency_ms=latency_ms) for m in consortium.members]


async def start_sandbox(
    consortium: Consortium, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float | None = None
) -> tuple[SandboxHost, Consortium]:
    """Start the sandbox for every member; return it and the consortium pointed at it."""
    sandbox = SandboxHost(sandbox_members(consortium, latency_ms=latency_ms))
    base_url = await sandbox.start(host=host, port=port)
    return sandbox, consortium.with_base_url(base_url)
