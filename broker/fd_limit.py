"""Open descriptors: raise the process's soft RLIMIT_NOFILE to its hard limit, and size sockets below it.

A national fan-out keeps hundreds of member sockets open; a soft limit of 1,024 (a common default)
would turn the 1,025th into "Too many open files", reported as a member failure. The soft limit may
be raised up to the hard one without privileges, so `serve`, `demo` and the benchmarks do that at
start; the HTTP client's connection cap is then kept below what is left after the broker's own
descriptors (listening socket, index and ledger files, the event loop's own).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

__all__ = ["DescriptorLimit", "connection_cap", "open_descriptors", "raise_nofile_limit"]

# Descriptors the broker needs besides member sockets: clients' connections, the union index's
# segment files, the ledger, the loop's selector and self-pipe, logs.
RESERVED_DESCRIPTORS = 256


@dataclass(frozen=True, slots=True)
class DescriptorLimit:
    soft: int
    hard: int  # resource.RLIM_INFINITY is reported as -1
    raised_from: int | None  # the soft limit before, when this process raised it


def raise_nofile_limit() -> DescriptorLimit:
    """Soft limit -> hard limit where allowed; never lowers it. Returns the limit in force after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit cannot be the soft one on Linux (nr_open caps it): keep a finite target.
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return DescriptorLimit(target, hard, soft)
        except (ValueError, OSError):  # a container may refuse even that: work within the soft limit
            pass
    return DescriptorLimit(soft, hard, None)


def connection_cap(wanted: int, limit: DescriptorLimit | None = None, reserved: int = RESERVED_DESCRIPTORS) -> int:
    """`wanted` member sockets, or fewer when the descriptor limit leaves less (at least 8)."""
    soft = (limit or DescriptorLimit(*resource.getrlimit(resource.RLIMIT_NOFILE), None)).soft
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - reserved))


def open_descriptors() -> int:
    """Descriptors this process has open now (Linux /proc; -1 where that is not available)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError:
        return -1
