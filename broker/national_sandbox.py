"""The national fan-out on the sandbox: members, a sandbox process, and what a run measures.

Demo/bench/test wiring only, like broker/demo.py: production code never imports it.
`bench/national.py` prints the figures; `tests/test_national_scale.py` asserts a 500-member run.

The shipped national file has 262 real members (4 prefectures). The 1,700 members of a national
portal are reached by *synthetic* copies of them — ids `syn<k>-<real id>`, names marked
（合成k） — made here, in memory, never written to a shipped file, and counted apart in the output.
Each member's sandbox latency is a hash of its id, spread over [latency_min_ms, latency_max_ms].
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from broker.consortium import CONSORTIA_DIR, Consortium, load_consortium
from broker.demo import on_sandbox, sandbox_member
from broker.fd_limit import open_descriptors
from sandbox.spec import SandboxMember

__all__ = [
    "NATIONAL_FILE",
    "DescriptorSampler",
    "SandboxProcess",
    "latency_of",
    "national_members",
    "rss_bytes",
]

NATIONAL_FILE = CONSORTIA_DIR / "national.toml"
REPO = Path(__file__).resolve().parents[1]


def latency_of(member_id: str, low_ms: float, high_ms: float) -> float:
    """A member's sandbox latency: stable per id, spread evenly over [low, high]."""
    return low_ms + (zlib.crc32(member_id.encode()) % 1000) / 999 * (high_ms - low_ms)


def national_members(count: int, *, timeout_s: float = 10.0, path: Path = NATIONAL_FILE) -> tuple[Consortium, int]:
    """`count` members: the national file's real ones first, then synthetic copies; (consortium, real count).

    Fewer than the file's members takes the first `count` of them (file order: by prefecture).
    """
    national = load_consortium(path)
    real = national.model_dump(mode="json", exclude_none=True)["members"]
    members = []
    for n in range(count):
        raw = json.loads(json.dumps(real[n % len(real)]))  # a deep copy
        copy = n // len(real)
        if copy:
            old = raw["id"]
            raw["id"] = new = f"syn{copy}-{old}"
            raw["name"] = f"{raw['name']}（合成{copy}）"
            raw["connector"]["endpoint"] = f"/{new}/sru"
            for branch in raw["branches"]:
                branch["id"] = new + branch["id"][len(old) :]
                branch["name"] = f"{branch['name']}（合成{copy}）"
        raw["connector"]["timeout_s"] = timeout_s
        members.append(raw)
    data = national.model_dump(mode="json", exclude_none=True)
    data["members"] = members
    data["id"] = "national-bench" if count > len(real) else "national"
    return Consortium.model_validate(data), min(count, len(real))


def sandbox_specs(consortium: Consortium, low_ms: float, high_ms: float) -> list[SandboxMember]:
    return [sandbox_member(m, latency_ms=latency_of(m.id, low_ms, high_ms)) for m in consortium.members]


class SandboxProcess:
    """`python -m sandbox` serving every member on one port (path routing), in its own process."""

    def __init__(self, members: list[SandboxMember], *, catalogue_size: int = 300, ready_timeout_s: float = 300) -> None:
        self.members = members
        self.catalogue_size = catalogue_size
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.startup_s = 0.0

    def __enter__(self) -> SandboxProcess:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
            json.dump([m.model_dump(mode="json") for m in self.members], spec)
        started = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--spec", spec.name, "--port", "0", "--catalogue-size", str(self.catalogue_size)],
                cwd=REPO, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")},
            )  # fmt: skip
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().strip()  # blocks until READY (or the child exits)
            if not line.startswith("READY "):
                raise RuntimeError(f"sandbox did not start: {line!r}")
        except BaseException:
            self.__exit__()
            raise
        finally:
            os.unlink(spec.name)
        self.startup_s = time.perf_counter() - started
        self.base_url = line.split(" ", 1)[1]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def cpu_s(self) -> float:
        """CPU seconds the sandbox process has used (Linux /proc; 0 where unavailable)."""
        try:
            assert self.proc is not None
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AssertionError, IndexError, ValueError):
            return 0.0

    def consortium(self, consortium: Consortium) -> Consortium:
        return on_sandbox(consortium, self.base_url)


def rss_bytes() -> int:
    """This process's resident set now (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class DescriptorSampler:
    """Samples this process's open descriptors every `interval_s` while running (peak kept)."""

    interval_s: float = 0.002
    peak: int = 0
    samples: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def __aenter__(self) -> DescriptorSampler:
        self.peak = max(self.peak, open_descriptors())
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, open_descriptors())
            self.samples += 1
            await asyncio.sleep(self.interval_s)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, open_descriptors())
