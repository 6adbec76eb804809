"""The serving process's collector settings (broker.collector): start-up's heap frozen, the young collected less often.

Each check runs in a process of its own: the settings are process-wide and must not reach the test process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str) -> None:
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_serving_freezes_what_start_up_built_and_collects_the_young_less_often() -> None:
    _run(
        "import gc; from broker.collector import YOUNG_THRESHOLD, tune_for_serving\n"
        "before = gc.get_threshold(); built = [[i] for i in range(1000)]\n"
        "frozen = tune_for_serving()\n"
        "after = gc.get_threshold()\n"
        "assert after == (YOUNG_THRESHOLD, *before[1:]), (before, after)\n"
        "assert YOUNG_THRESHOLD > before[0]\n"
        "assert frozen == gc.get_freeze_count() >= len(built), frozen\n"
        "assert gc.get_count()[0] < 100  # the full collection ran\n"
    )


def test_garbage_is_collected_not_frozen_and_only_what_came_later_is_walked() -> None:
    _run(
        "import gc, weakref; from broker.collector import tune_for_serving\n"
        "class Node:\n"
        "    peer = None\n"
        "kept = [[n] for n in range(1000)]\n"
        "garbage = Node(); garbage.peer = Node(); garbage.peer.peer = garbage  # a cycle only a collection frees\n"
        "gone = weakref.ref(garbage); del garbage\n"
        "tune_for_serving()\n"
        "assert gone() is None, 'the cycle was collected, not frozen'\n"
        "later = [[n] for n in range(3)]\n"
        "walked = {id(o) for o in gc.get_objects()}\n"
        "assert [id(k) in walked for k in kept] == [False] * len(kept)\n"
        "assert [id(o) in walked for o in later] == [True] * len(later)\n"
    )
