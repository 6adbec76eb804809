"""The rooms' import rule (README, "Architecture"): a lower layer never imports a higher one.

Walks every module's imports with `ast`, so a forbidden import anywhere (also inside a function
or under `if TYPE_CHECKING`) fails here, naming the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = frozenset({"yokodan", "connectors", "index", "sandbox", "broker", "tests", "bench"})

# package -> the project packages it may import (itself included).
ALLOWED: dict[str, frozenset[str]] = {
    "yokodan": frozenset({"yokodan"}),
    "connectors": frozenset({"yokodan", "connectors"}),
    "index": frozenset({"yokodan", "index"}),
    "sandbox": frozenset({"yokodan", "connectors", "sandbox"}),
    "broker": frozenset({"yokodan", "connectors", "index", "sandbox", "broker"}),
}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level project package) for every import in a module; relative imports stay inside."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".", 1)[0]
            if top in PROJECT_PACKAGES:
                found.append((node.lineno, top))
    return found


def layer_violations(root: Path) -> list[str]:
    violations = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, imported in imported_packages(path.read_text(encoding="utf-8")):
                if imported not in allowed:
                    violations.append(f"{path.relative_to(root)}:{line} imports {imported} ({package} may import {sorted(allowed)})")
    return violations


def test_no_lower_layer_imports_a_higher_one() -> None:
    assert layer_violations(ROOT) == []


@pytest.mark.parametrize(
    ("package", "statement"),
    [
        ("yokodan", "from connectors.settings import TargetSettings"),
        ("connectors", "from broker.consortium import Consortium"),
        ("index", "import connectors.http"),
        ("sandbox", "from index.text import fold"),
        ("connectors", "def later():\n    from index.store import UnionIndex\n"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path: Path, package: str, statement: str) -> None:
    # A copy of the rule's input with one forbidden import added: the checker must name it.
    for name in ALLOWED:
        (tmp_path / name).mkdir()
    (tmp_path / package / "offender.py").write_text(statement + "\n", encoding="utf-8")
    violations = layer_violations(tmp_path)
    assert len(violations) == 1
    assert violations[0].startswith(f"{package}/offender.py:")


# yokodan/ is the vocabulary every room (and a portal's Python) imports: pydantic only, and the
# HTTP client's httpx (and httpx-sse, its event-stream reader) only in yokodan/client.py, so that importing
# the models never pulls in httpx.
YOKODAN_THIRD_PARTY: dict[str, frozenset[str]] = {"*": frozenset({"pydantic"}), "client.py": frozenset({"pydantic", "httpx", "httpx_sse"})}


def third_party_violations(root: Path) -> list[str]:
    import sys

    violations = []
    for path in sorted((root / "yokodan").rglob("*.py")):
        allowed = YOKODAN_THIRD_PARTY.get(path.name, YOKODAN_THIRD_PARTY["*"])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".", 1)[0] for name in names}:
                if top not in sys.stdlib_module_names and top not in PROJECT_PACKAGES and top not in allowed and top != "__future__":
                    violations.append(f"{path.relative_to(root)}:{node.lineno} imports {top} (allowed there: {sorted(allowed)})")
    return violations


def test_yokodan_imports_pydantic_only_and_httpx_only_in_the_client(tmp_path: Path) -> None:
    assert third_party_violations(ROOT) == []
    (tmp_path / "yokodan").mkdir()
    (tmp_path / "yokodan" / "models.py").write_text("import httpx\n", encoding="utf-8")
    (tmp_path / "yokodan" / "client.py").write_text("import httpx\nimport orjson\n", encoding="utf-8")
    assert third_party_violations(tmp_path) == [
        "yokodan/client.py:2 imports orjson (allowed there: ['httpx', 'httpx_sse', 'pydantic'])",
        "yokodan/models.py:1 imports httpx (allowed there: ['pydantic'])",
    ]
