"""`python -m sandbox --spec members.json --port 8700`: serve members in their own process.

The spec file is a JSON list of `SandboxMember`s. Prints `READY http://127.0.0.1:PORT`
on stdout once listening (a parent process waits for that line), then serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from sandbox.catalogue import DEFAULT_SIZE
from sandbox.host import AdminRoutesExposed, SandboxHost
from sandbox.spec import SandboxMember


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="JSON list of SandboxMember")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalogue-size", type=int, default=DEFAULT_SIZE)
    parser.add_argument(
        "--admin", action="store_true", help="serve the /_admin/... fault-injection routes (loopback --host only)"
    )
    return parser.parse_args(argv)


def _load_members(path: Path) -> list[SandboxMember]:
    try:
        return TypeAdapter(list[SandboxMember]).validate_json(path.read_bytes())
    except OSError as error:
        sys.exit(f"{path}: {error.strerror}")
    except ValidationError as error:
        sys.exit(f"{path}: not a list of sandbox members:\n{error}")


def _raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE -> hard: one sandbox process may serve 1,700 members' open connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # not allowed here: serve within the soft limit


async def _serve(args: argparse.Namespace) -> None:
    _raise_open_files_limit()
    host = SandboxHost(_load_members(args.spec), seed=args.seed, catalogue_size=args.catalogue_size, admin=args.admin)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        url = await host.start(args.host, args.port)
    except AdminRoutesExposed as error:
        sys.exit(f"python -m sandbox: {error}")
    print(f"READY {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await host.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_arguments(argv)))


if __name__ == "__main__":
    main()
