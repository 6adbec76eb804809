"""The demo wiring: a consortium's members simulated by the sandbox on localhost.

Only the CLI, the tests and the benchmarks use this; production code paths
never import `sandbox`. Each member gets its own flavour (852 vs 952 holdings,
status vocabulary, ISBN style, latency) so the demo looks like a real network
of differently-run municipal systems.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from broker.consortium import CONSORTIA_DIR, Branch, Consortium, ConsortiumFileError, Member
from connectors.options import OPTIONS_BY_KIND, PickupCodeOptions
from sandbox.host import SandboxHost
from sandbox.patrons import cards_for
from sandbox.spec import FaultConfig, PatronCard, SandboxBranch, SandboxMember

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


# Where the sandbox serves each hold-capable face (sandbox/ncip_server.py, sandbox/ils_rest_server.py).
_HOLD_PATHS = {"ncip": "/{id}/ncip", "ils_rest": "/{id}/api/v1"}


def _hold_protocol(member: Member) -> str | None:
    """The sandbox face for the member's `[members.holds]` connector; a setting it cannot serve is an error."""
    holds = member.holds
    if holds is None:
        return None
    path = _HOLD_PATHS.get(holds.kind)
    if path is None:
        raise ValueError(
            f"member {member.id}: the sandbox serves holds over {', '.join(sorted(_HOLD_PATHS))}, not {holds.kind!r}"
        )
    expected = path.format(id=member.id)
    if holds.is_relative and holds.endpoint.rstrip("/") != expected:
        raise ValueError(f"member {member.id}: the sandbox serves its {holds.kind} holds at {expected}, not {holds.endpoint}")
    return holds.kind


def _sandbox_code(branch: Branch) -> str:
    return branch.codes[0] if branch.codes else branch.id.rsplit("/", 1)[-1].upper()


def sandbox_pickup_codes(member: Member) -> dict[str, str]:
    """Branch id -> the code the sandbox ILS takes for a pickup, for a member with pickup-only points.

    Pickup-only points (Aomori's 貸出協力館, Kumamoto's 受取館) have no catalogue code, and the real
    ILSs' pickup codes are not in our sources; in the sandbox each gets one made from its branch id.
    Empty when every pickup point has its own code (the connectors then use the branch codes).
    """
    pickups = [b for b in member.branches if b.pickup_point]
    if all(b.codes for b in pickups):
        return {}
    return {b.id: _sandbox_code(b) for b in pickups}


def sandbox_pickups_elsewhere(consortium: Consortium, member: Member) -> dict[str, str]:
    """Branch id -> pickup code, for a member whose holds may be collected at other members' libraries.

    Okayama's prefectural library lends to 受渡館, municipal libraries of the consortium (seed 001);
    its real system knows them by codes our sources do not print, so without codes its connector
    can address only its own counter and refuses every other pickup the planner offers. In the
    sandbox each pickup point its policy allows gets a code (its own branches keep theirs; another
    member's branch is known by its branch id), which the sandbox ILS takes and the connector sends.
    Empty for members whose pickups are all their own branches.
    """
    from broker.holds.planner import RuleBook  # the planner's own reading of the pickup rule

    face = member.holds or member.connector
    if not issubclass(OPTIONS_BY_KIND[face.kind], PickupCodeOptions):  # a family that sends no pickup code
        return {}
    pickups = RuleBook.of(consortium).members[member.id].pickups
    own = {b.id for b in member.branches}
    if all(b.id in own for b in pickups):
        return {}
    return {b.id: _sandbox_code(b) if b.id in own else b.id for b in pickups}


def sandbox_member(
    member: Member, *, latency_ms: float | None = None, patrons: list[PatronCard] | None = None,
    pickups_elsewhere: dict[str, str] | None = None,
) -> SandboxMember:
    branches = [
        SandboxBranch(id=b.id, name=b.name, code=_sandbox_code(b))
        for b in member.branches
        if b.holds_stock  # pickup-only points (Kumamoto's 受取館) hold none of the member's stock
    ]
    # Bigger systems (more branches) hold more of the shared catalogue.
    share = min(0.9, 0.25 + 0.07 * len(branches))
    protocol, options, forced_style = _protocol(member)
    if member.holds is not None and (pickups := sandbox_pickup_codes(member)):
        options = {**options, "pickup_codes": ",".join(pickups.values())}
    if pickups_elsewhere:
        options = {**options, "pickup_codes": ",".join(pickups_elsewhere.values())}
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
        hold_protocol=_hold_protocol(member),  # type: ignore[arg-type]  # checked against _HOLD_PATHS
        protocol_options=options,
        patrons=patrons or [],
    )


def sandbox_members(consortium: Consortium, *, latency_ms: float | None = None) -> list[SandboxMember]:
    """Every member of the consortium as a sandbox member, with the consortium's test patrons (sandbox.patrons)."""
    return [
        sandbox_member(
            m, latency_ms=latency_ms, patrons=cards_for(consortium.id, m.id),
            pickups_elsewhere=sandbox_pickups_elsewhere(consortium, m),
        )
        for m in consortium.members
    ]  # fmt: skip


def shipped_consortia() -> list[str]:
    """Names of the consortium files shipped in consortia/ ('okayama', 'aomori' …)."""
    return sorted(p.stem for p in CONSORTIA_DIR.glob("*.toml"))


def consortium_file(name_or_path: str) -> Path:
    """`--consortium aomori` names a shipped file; anything with a '/' or '.toml' is a path."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        return Path(name_or_path)
    if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", name_or_path) or name_or_path not in shipped_consortia():
        raise ConsortiumFileError(
            CONSORTIA_DIR / f"{name_or_path}.toml",
            [f"no shipped consortium {name_or_path!r} (shipped: {', '.join(shipped_consortia())}; or give a .toml path)"],
        )
    return CONSORTIA_DIR / f"{name_or_path}.toml"


async def start_sandbox(
    consortium: Consortium, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float | None = None
) -> tuple[SandboxHost, Consortium]:
    """Start the sandbox for every member; return it and the consortium pointed at it."""
    sandbox = SandboxHost(sandbox_members(consortium, latency_ms=latency_ms))
    base_url = await sandbox.start(host=host, port=port)
    return sandbox, on_sandbox(consortium, base_url)


def on_sandbox(consortium: Consortium, base_url: str) -> Consortium:
    """The consortium pointed at a sandbox; pickup-only points get the code the sandbox ILS knows them by.

    As a branch code it works both ways, as a real member's code would: the holds connector sends it
    for the pickup and maps it back in the member's answers.
    """
    data = consortium.with_base_url(base_url).model_dump()
    for member, raw in zip(consortium.members, data["members"], strict=True):
        if elsewhere := sandbox_pickups_elsewhere(consortium, member):
            face = raw["holds"] if raw.get("holds") else raw["connector"]
            face["options"] = {**(face.get("options") or {}), "pickup_codes": elsewhere}
        if member.holds is not None:
            codes = sandbox_pickup_codes(member)
            for branch in raw["branches"]:
                if branch["id"] in codes and not branch["codes"]:
                    branch["codes"] = [codes[branch["id"]]]
        elif all(not b.codes for b in member.branches):
            # A file whose sources name no catalogue codes at all (the generated national file):
            # the sandbox's 952 holdings carry its made-up code, so the branch must know it.
            for branch, model in zip(raw["branches"], member.branches, strict=True):
                branch["codes"] = [_sandbox_code(model)]
    return Consortium.model_validate(data)
