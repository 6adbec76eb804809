"""The serving process's memory allocator: jemalloc where the system has it (issue 12).

Why: after a burst, what keeps a CPython process's memory is fragmentation, not live objects.
pymalloc hands memory back to the system only as whole 1 MiB arenas, and a burst of 200
concurrent searches leaves a few long-lived objects (a cache entry, a member's latency figure,
a connection's state) in nearly every arena it added. bench/soak.py, Dec 2026: RSS +30 % of warm
after 60 s idle, with live data back to warm +1-4 MB; clearing every cache moved no arena. jemalloc
packs objects of one size in slabs of one to a few pages and gives freed pages back on a timer, so
a survivor keeps its page, not its megabyte.

An allocator cannot change in a running process, so `yokodan serve` (and `demo`) re-executes
itself once at start-up with jemalloc preloaded (LD_PRELOAD) and Python's object allocator routed
to it (PYTHONMALLOC=malloc). The processes it spawns (ingest workers, the union-index writer)
inherit both. `--allocator system` (or YOKODAN_ALLOCATOR=system) keeps CPython's own; without
libjemalloc (Debian: libjemalloc2) the broker runs on pymalloc and says so on start-up and in
/healthz. Only the command-line entry point re-executes: a test or an embedding program that calls
`broker.cli.main(argv)` keeps its own process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

# Set in the re-executed process: if jemalloc still is not loaded there, do not try again.
REEXEC_MARK = "YOKODAN_ALLOCATOR_REEXEC"
CHOICE_ENV = "YOKODAN_ALLOCATOR"
CHOICES = ("jemalloc", "system")

# jemalloc's settings for a mostly single-threaded server that must give memory back when idle
# (bench/soak.py, RSS after 60 s idle against warm, before broker.memo_caches released anything:
# jemalloc's defaults +21.5 and +21.7 %, these +19.2 %; CPython's pymalloc +30.0 %):
# - background_thread: purging runs on jemalloc's own thread; without it, freed pages are returned
#   only when something allocates again, which an idle broker does not;
# - dirty_decay_ms:1000, muzzy_decay_ms:0: freed pages go back after about a second, not ten;
# - narenas:1: the event loop does nearly all allocation; more arenas would each keep partly
#   used slabs of their own for the few other threads (index searches, the idle trim);
# - tcache:false: no per-thread caches; objects then fill the arena's slabs in order, and fewer
#   slabs are left with a survivor (+12.1-14.1 % against +13.9-16.3 % with the caches, in
#   alternating runs; flushing the loop thread's cache at idle did not close that gap). The price:
#   about 10 % more of the broker's CPU per search (burst 8.8-9.3 ms against 7.8-8.7 ms).
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:1,tcache:false"

# MALLCTL_ARENAS_ALL: "every arena" in jemalloc's arena.<i>.* controls.
_ALL_ARENAS = 4096


@cache
def _mallctl() -> Any | None:
    """jemalloc's control function if this process runs on it (the running process's symbols,
    preloaded libraries first), else None."""
    return getattr(ctypes.CDLL(None), "mallctl", None)


def jemalloc_version() -> str | None:
    """jemalloc's version if this process allocates with it, else None."""
    mallctl = _mallctl()
    if mallctl is None:
        return None
    version = ctypes.c_char_p()
    size = ctypes.c_size_t(ctypes.sizeof(version))
    if mallctl(b"version", ctypes.byref(version), ctypes.byref(size), None, ctypes.c_size_t(0)) != 0 or not version.value:
        return "unknown"
    return version.value.decode("ascii", "replace").split("-")[0]


@cache  # the allocator cannot change in a running process
def describe() -> str:
    """The allocator objects get, as an operator reads it: 'jemalloc 5.3.0', 'pymalloc' or 'malloc'."""
    version = jemalloc_version()
    on_malloc = os.environ.get("PYTHONMALLOC", "").startswith("malloc")
    if version is not None:
        return f"jemalloc {version}" if on_malloc else f"pymalloc (jemalloc {version} below it)"
    return "malloc" if on_malloc else "pymalloc"


def purge_jemalloc() -> bool:
    """Hand every arena's freed pages back now (the decay timer would, a second later); False
    where this process does not run on jemalloc."""
    mallctl = _mallctl()
    if mallctl is None:
        return False
    return mallctl(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, ctypes.c_size_t(0)) == 0


def find_jemalloc() -> str | None:
    """The jemalloc library's name as the dynamic loader finds it (libjemalloc.so.2), or None."""
    if not sys.platform.startswith("linux"):
        return None  # LD_PRELOAD is the Linux loader's; macOS would need DYLD_INSERT_LIBRARIES
    return ctypes.util.find_library("jemalloc")


def reexec_environment(choice: str, environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to run this program again with on jemalloc, or None to carry on as is:
    `choice` is system, jemalloc runs already, an earlier re-execution did not load it, or the
    system has no jemalloc."""
    if choice not in CHOICES:
        raise ValueError(f"allocator must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "system":
        return None
    if jemalloc_version() is not None or environ.get(REEXEC_MARK):
        return None
    library = find_jemalloc()
    if library is None:
        return None
    preload = environ.get("LD_PRELOAD", "")
    env = dict(environ)
    env["LD_PRELOAD"] = f"{library} {preload}".strip()
    env.setdefault("PYTHONMALLOC", "malloc")  # an explicit choice (a debug allocator) is kept
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    env[REEXEC_MARK] = "1"
    return env


def reexec_with_jemalloc(choice: str, argv: Sequence[str] | None = None) -> None:
    """Replace this process by the same command on jemalloc, when `reexec_environment` says so.

    Call before anything starts a thread or opens a socket: os.execve keeps the pid and the
    open descriptors that are not close-on-exec, and nothing else.
    """
    env = reexec_environment(choice, os.environ)
    if env is None:
        return
    args = list(argv if argv is not None else sys.orig_argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *args[1:]], env)


def allocator_note(choice: str) -> str:
    """One start-up line: the allocator in use, and why jemalloc is not when it was wanted."""
    current = describe()
    if choice == "jemalloc" and jemalloc_version() is None:
        if os.environ.get(REEXEC_MARK):
            return f"memory allocator: {current} (jemalloc was preloaded but did not load)"
        if find_jemalloc() is None:
            return f"memory allocator: {current} (no libjemalloc on this system: apt-get install libjemalloc2)"
    return f"memory allocator: {current}"
