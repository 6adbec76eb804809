"""`before_commit` hooks that work in either writer mode (a thread here, or the writer process).

A hook for the writer process must be picklable and cannot share a threading.Event with
the test, so the gate talks through files in a directory of the test's own.
"""

from __future__ import annotations

import time
from pathlib import Path


class CommitGate:
    """Once armed, each commit announces itself (`in-commit`) and waits for `release`."""

    def __init__(self, directory: Path, *, armed: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if armed:
            self.arm()

    def arm(self) -> None:
        (self.directory / "armed").touch()

    def disarm(self) -> None:
        (self.directory / "armed").unlink(missing_ok=True)

    def reset(self) -> None:
        """Forget that a commit announced itself (to wait for the next one)."""
        (self.directory / "in-commit").unlink(missing_ok=True)

    def release(self) -> None:
        (self.directory / "release").touch()

    def wait_in_commit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not (self.directory / "in-commit").exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def __call__(self) -> None:  # runs in the writer, with the write lock held
        if not (self.directory / "armed").exists():
            return
        (self.directory / "in-commit").touch()
        deadline = time.monotonic() + 10
        while not (self.directory / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)


class SlowCommit:
    """Every commit announces itself (`committing`) and then holds the write lock for `delay_s`."""

    def __init__(self, directory: Path, delay_s: float) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.delay_s = delay_s

    def wait_committing(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not (self.directory / "committing").exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def __call__(self) -> None:
        (self.directory / "committing").touch()
        time.sleep(self.delay_s)
