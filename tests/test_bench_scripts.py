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


def test_every_benchmark_script_imports_and_parses_its_arguments() -> None:
    assert len(SCRIPTS) >= 10, [p.name for p in SCRIPTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [(name, code, err) for name, code, err in pool.map(_help, SCRIPTS) if code != 0]
    assert failed == []
