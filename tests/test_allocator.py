"""The serving process runs on jemalloc (broker/allocator.py), and why: memory goes back after a burst.

Each test runs real processes: `yokodan serve` as a user starts it, or a child Python that
allocates and frees as a burst does. jemalloc is Debian's libjemalloc2, which scripts/test.sh
installs; without it these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from broker.allocator import JEMALLOC_CONF, REEXEC_MARK, find_jemalloc, reexec_environment
from broker.cli import EXIT_USER_ERROR, build_parser, main
from tests.conftest import _ci

ROOT = Path(__file__).resolve().parent.parent
CONSORTIUM = ROOT / "consortia" / "okayama.toml"


@pytest.fixture
def jemalloc() -> str:
    library = find_jemalloc()
    if library is None:
        reason = "no libjemalloc on this machine (Debian: apt-get install libjemalloc2; scripts/test.sh installs it)"
        if _ci():
            pytest.fail(f"{reason} (CI=true: must not skip)", pytrace=False)
        pytest.skip(reason)
    return library


def _environ_on_pymalloc() -> dict[str, str]:
    """This test process's environment for a child, without any allocator setting it may carry."""
    allocator = {"LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF", REEXEC_MARK}
    return {k: v for k, v in os.environ.items() if k not in allocator} | {"PYTHONPATH": str(ROOT)}


@contextmanager
def serving(*extra: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`python -m broker.cli serve` on an ephemeral port, search only; yields (process, URL, start-up lines)."""
    argv = [
        sys.executable, "-m", "broker.cli", "serve", "--consortium", str(CONSORTIUM), "--base-url", "http://127.0.0.1:9",
        "--port", "0", "--no-index", "--no-ledger", "--ready-line", *extra,
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=ROOT, env=_environ_on_pymalloc() | (env or {}), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(4)]
        assert lines[0].startswith("READY "), lines
        yield process, lines[0].split(" ", 1)[1], lines
    finally:
        process.terminate()
        process.wait(15)


def health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
        return orjson.loads(response.read())


def mapped_libraries(pid: int) -> set[str]:
    return {Path(line.split()[-1]).name for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if ".so" in line}


def test_serve_runs_on_jemalloc_by_default(jemalloc: str) -> None:
    with serving() as (process, url, lines):
        libraries = mapped_libraries(process.pid)  # the same pid: the re-execution replaced the process
        answer = health(url)
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    assert jemalloc in libraries
    assert answer["memory"]["allocator"].startswith("jemalloc ")
    assert answer["memory"]["rss_mib"] > 10
    assert b"PYTHONMALLOC=malloc" in environ and f"MALLOC_CONF={JEMALLOC_CONF}".encode() in environ
    assert any(line.startswith("memory allocator: jemalloc ") for line in lines), lines


def test_allocator_system_keeps_cpythons_own(jemalloc: str) -> None:
    with serving("--allocator", "system") as (process, url, lines):
        libraries = mapped_libraries(process.pid)
        answer = health(url)
    assert jemalloc not in libraries
    assert answer["memory"]["allocator"] == "pymalloc"
    assert "memory allocator: pymalloc" in lines


def test_a_preload_that_did_not_load_is_not_tried_again() -> None:
    """The mark of an earlier re-execution stops a loop (a loader that ignores LD_PRELOAD, say)."""
    with serving(env={REEXEC_MARK: "1"}) as (process, url, lines):
        answer = health(url)
    assert answer["memory"]["allocator"] == "pymalloc"
    assert "memory allocator: pymalloc (jemalloc was preloaded but did not load)" in lines


def test_the_allocator_option_defaults_to_jemalloc_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    serve = ["serve", "--consortium", str(CONSORTIUM)]
    assert build_parser().parse_args(serve).allocator == "jemalloc"
    monkeypatch.setenv("YOKODAN_ALLOCATOR", "system")
    assert build_parser().parse_args(serve).allocator == "system"
    assert build_parser().parse_args([*serve, "--allocator", "jemalloc"]).allocator == "jemalloc"  # the option wins
    monkeypatch.setenv("YOKODAN_ALLOCATOR", "tcmalloc")
    assert main(serve) == EXIT_USER_ERROR


def test_the_environment_for_jemalloc(jemalloc: str) -> None:
    env = reexec_environment("jemalloc", {"LD_PRELOAD": "libfoo.so", "PATH": "/bin"})
    assert env is not None
    assert env["LD_PRELOAD"] == f"{jemalloc} libfoo.so"  # prepended, the caller's kept
    assert (env["PYTHONMALLOC"], env["MALLOC_CONF"], env[REEXEC_MARK], env["PATH"]) == ("malloc", JEMALLOC_CONF, "1", "/bin")
    # An operator's own settings win.
    env = reexec_environment("jemalloc", {"PYTHONMALLOC": "malloc_debug", "MALLOC_CONF": "narenas:2"})
    assert env is not None and (env["PYTHONMALLOC"], env["MALLOC_CONF"]) == ("malloc_debug", "narenas:2")
    assert reexec_environment("system", {}) is None
    with pytest.raises(ValueError, match="allocator must be one of"):
        reexec_environment("tcmalloc", {})


# A burst in miniature: many small objects, a few of which outlive it (one in 512, spread over the
# heap as cache entries and connection state are), then the idle trim the broker runs.
_BURST = textwrap.dedent(
    """
    import gc, time
    from broker.memory import resident_mib, trim_native_heap
    before = resident_mib()
    burst = [(i, str(i)) for i in range(600_000)]
    peak = resident_mib()
    survivors = burst[::512]
    del burst
    gc.collect()
    trim_native_heap()
    # A purge that meets jemalloc's own background purge in progress leaves the pages to it (it
    # returns them within its 1 s decay); the broker's idle trim is no more prompt than that either.
    after = resident_mib()
    for _ in range(30):
        time.sleep(0.1)
        after = min(after, resident_mib())
    print((after - before) / (peak - before), len(survivors))
    """
)


def retained_share(env: dict[str, str]) -> float:
    """The share of a burst's memory growth still resident after it was freed and trimmed."""
    out = subprocess.run(
        [sys.executable, "-c", _BURST], cwd=ROOT, env=_environ_on_pymalloc() | env,
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return float(out.stdout.split()[0])


def test_jemalloc_gives_back_what_pymalloc_keeps(jemalloc: str) -> None:
    """Why the broker re-executes itself: with pymalloc a survivor keeps its whole 1 MiB arena."""
    env = reexec_environment("jemalloc", {})
    assert env is not None
    pymalloc = retained_share({})
    on_jemalloc = retained_share({k: env[k] for k in ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF")})
    assert pymalloc > 0.8, pymalloc
    assert on_jemalloc < 0.35, on_jemalloc
