"""The serving process's collector settings (broker.collector), in a process of their own: they are process-wide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_serving_freezes_what_start_up_built_and_collects_the_young_less_often() -> None:
    script = (
        "import gc; from broker.collector import YOUNG_THRESHOLD, tune_for_serving\n"
        "before = gc.get_threshold(); built = [[i] for i in range(1000)]\n"
        "tune_for_serving()\n"
        "after = gc.get_threshold()\n"
        "assert after == (YOUNG_THRESHOLD, *before[1:]), (before, after)\n"
        "assert YOUNG_THRESHOLD > before[0]\n"
        "assert gc.get_freeze_count() >= len(built), gc.get_freeze_count()\n"
        "assert gc.get_count()[0] < 100  # the full collection ran\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
