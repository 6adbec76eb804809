"""Every benchmark script at least starts: `--help` imports it whole and parses its arguments.

Benchmarks are not run in the suite (they print figures, they are not timed tests), so nothing
else notices a bench that no longer imports or parses: a bad merge once left a stray docstring
fragment in bench/union_index.py, and it stayed broken until someone ran it. Helper modules of a
bench (imported by it, no command line of their own) are checked by the bench that imports them.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if "__main__" in p.read_text(encoding="utf-8"))


def _help(script: Path) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return script.name, done.returncode, done.stderr[-600:]


def test_no_module_uses_an_undefined_name() -> None:
    # `--help` returns before a bench's body runs: a name lost in a merge (bench/union_index.py's
    # COMMIT_ROUNDS once) fails only minutes into a run. pyflakes reads every bench without running it.
    from pyflakes.api import check
    from pyflakes.reporter import Reporter

    class Undefined(Reporter):
        def __init__(self) -> None:
            self.found: list[str] = []

        def flake(self, message) -> None:  # type: ignore[no-untyped-def]
            if "undefined name" in str(message):
                self.found.append(str(message))

        def syntaxError(self, filename, msg, lineno, offset, text) -> None:  # type: ignore[no-untyped-def]
            self.found.append(f"{filename}:{lineno}: {msg}")

        def unexpectedError(self, filename, msg) -> None:  # type: ignore[no-untyped-def]
            self.found.append(f"{filename}: {msg}")

    reporter = Undefined()
    for path in sorted(p for room in ("bench", "broker", "connectors", "index", "yokodan", "sandbox") for p in (ROOT / room).rglob("*.py")):
        check(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), reporter)
    assert reporter.found == []


def test_every_benchmark_script_imports_and_parses_its_arguments() -> None:
    assert len(SCRIPTS) >= 10, [p.name for p in SCRIPTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [(name, code, err) for name, code, err in pool.map(_help, SCRIPTS) if code != 0]
    assert failed == []
