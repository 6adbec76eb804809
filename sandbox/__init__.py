"""Simulated member library systems speaking the wire protocols real ones speak (SRU 1.2 today).

Used by the demo, the tests and the benchmarks, never by production code paths.
The broker decides which members exist (`SandboxMember`); the sandbox only serves them.
"""

from sandbox.catalogue import CORE_WORKS, Catalogue, generate_catalogue
from sandbox.holdings import STATUS_VOCABULARIES, Copy, HeldWork, holdings_for
from sandbox.host import SandboxHost
from sandbox.spec import FaultConfig, SandboxBranch, SandboxMember
from sandbox.sru_server import build_app

__all__ = [
    "CORE_WORKS",
    "STATUS_VOCABULARIES",
    "Catalogue",
    "Copy",
    "FaultConfig",
    "HeldWork",
    "SandboxBranch",
    "SandboxHost",
    "SandboxMember",
    "build_app",
    "generate_catalogue",
    "holdings_for",
]
