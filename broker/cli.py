"""Command line: `yokodan demo`, `yokodan search`, `yokodan serve`."""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import logging
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from broker.allocator import CHOICE_ENV, CHOICES, allocator_note, reexec_with_jemalloc
from broker.api import SEARCH_KEY, build_app
from broker.collector import tune_for_serving
from broker.consortium import Consortium, load_consortium
from broker.http_server import DEFAULT_KEEPALIVE_S, bound_port, start_server
from broker.fd_limit import connection_cap, raise_nofile_limit
from broker.outbound import DEFAULT_BURST, DEFAULT_MAX_IN_FLIGHT, FanoutSettings
from broker.ledger.runtime import LedgerConfig
from broker.members import MemberRegistry
from broker.holds.cli import add_holds_parser, run_holds
from broker.portals.cli import add_keys_parser, run_keys
from yokodan import Availability, SearchQuery, TargetState
from broker.search import SearchOutcome, SearchService
from broker.views import DisplayNames
from connectors import HttpClient
from index.store import UnionIndex
from index.store.postgres_backend import is_postgres_url
from index.store.postgres_schema import DEFAULT_SCHEMA
from yokodan.errors import BadRequest, YokodanError

DEFAULT_PORT = 8400
DEFAULT_SANDBOX_PORT = 8410
EXIT_USER_ERROR = 2  # argparse's own status for bad usage; a bug exits 1 with its traceback


class InvalidArguments(BadRequest):
    """Command-line arguments that parse but do not validate (an ISBN with a bad check digit …)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# SearchQuery field -> the option a person typed, so the message names what to fix.
_OPTION_OF_FIELD = {"text": "QUERY", "title": "--title", "author": "--author", "isbn": "--isbn", "page_size": "--page-size"}


def _invalid_arguments(exc: ValidationError, option_of: dict[str, str]) -> InvalidArguments:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        reason = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{option_of.get(field, field or 'arguments')}: {reason}")
    return InvalidArguments(problems)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def format_outcome(outcome: SearchOutcome, consortium: Consortium, limit: int = 20) -> str:
    """A readable plain-text answer: works with where they are, then each member's status."""
    names = DisplayNames.of(consortium)
    lines: list[str] = []
    works = outcome.works[:limit]
    lines.append(f"{len(outcome.works)} works from {sum(s.state is TargetState.OK for s in outcome.statuses)}"
                 f"/{len(outcome.statuses)} members in {outcome.elapsed_ms:.0f} ms")
    for number, work in enumerate(works, 1):
        title = work.title + (f" {work.volume}" if work.volume else "")
        by = f" / {', '.join(work.authors[:2])}" if work.authors else ""
        detail = ", ".join(str(p) for p in (work.publisher, work.year) if p)
        isbn = f"  ISBN {work.isbns[0]}" if work.isbns else ""
        lines.append(f"\n{number:>3}. {title}{by}" + (f" ({detail})" if detail else "") + isbn)
        holders = [names.members.get(m, m) for m in work.members]
        lines.append(f"     held by {len(holders)}: {', '.join(holders)}")
        available = sorted(
            {names.branches.get(h.branch_id or "", h.location or "?") for h in work.holdings if h.availability is Availability.AVAILABLE}
        )
        lines.append(f"     on the shelf at: {', '.join(available) if available else '(none now)'}")
    if len(outcome.works) > limit:
        lines.append(f"\n     … {len(outcome.works) - limit} more works")
    lines.append("\nmember status:")
    column = max((_width(names.members.get(s.member, s.member)) for s in outcome.statuses), default=10) + 2
    kinds = {m.id: m.connector.kind for m in consortium.members}
    for status in sorted(outcome.statuses, key=lambda s: s.member):
        name = names.members.get(status.member, status.member)
        hits = "-" if status.hits is None else str(status.hits)
        ms = "-" if status.elapsed_ms is None else f"{status.elapsed_ms:.0f} ms"
        note = f"  {status.reason}: {status.message}" if status.reason else ""
        kind = kinds.get(status.member, "?")
        lines.append(f"  {_pad(name, column)}{kind:<10}{status.state.value:<8} hits {hits:>5}  {ms:>8}{note}")
    return "\n".join(lines)


def _load(path: str | None, base_url: str | None) -> Consortium:
    consortium = load_consortium(Path(path) if path else None)
    if not base_url:
        return consortium
    try:
        return consortium.with_base_url(base_url)
    except ValidationError as exc:
        raise _invalid_arguments(exc, {"base_url": "--base-url"}) from None


def _query_from(args: argparse.Namespace) -> SearchQuery:
    try:
        return SearchQuery(
            text=args.query or None, title=args.title, author=args.author, isbn=args.isbn, page_size=args.page_size
        )
    except ValidationError as exc:
        raise _invalid_arguments(exc, _OPTION_OF_FIELD) from None


def _needs_sandbox(args: argparse.Namespace, consortium: Consortium) -> bool:
    """The shipped demo file points at the local sandbox; start it unless told otherwise."""
    if args.no_sandbox or args.base_url:
        return False
    return args.sandbox or args.consortium is None


async def _search(args: argparse.Namespace) -> int:
    query = _query_from(args)  # before starting anything: a bad argument costs no sandbox
    consortium = _load(args.consortium, args.base_url)
    from broker.selection import MemberSelector, PlaceQuery

    places = PlaceQuery(prefecture=args.prefecture, region=args.region, near_prefecture=args.near_prefecture)
    named = [m for m in (args.members or "").split(",") if m]
    members = MemberSelector(consortium).select(named, places) or []  # unknown names or places: exit 2
    sandbox = None
    if _needs_sandbox(args, consortium):
        from broker.demo import start_sandbox  # the sandbox is demo-only; import it only then

        sandbox, consortium = await start_sandbox(consortium)
    try:
        async with HttpClient() as http:
            service = SearchService(MemberRegistry(consortium, http))
            outcome = await service.search(query, members)
        print(format_outcome(outcome, consortium, limit=args.limit))
    finally:
        if sandbox is not None:
            await sandbox.stop()
    return 0


def _index_opener(args: argparse.Namespace, consortium: Consortium) -> Callable[[], UnionIndex] | None:
    """How the app opens its union index on startup (it opens it off the loop and closes it on cleanup)."""
    shared = getattr(args, "index", None)  # `serve` only: the demo keeps its embedded whoosh index
    if shared is not None:
        problems = []
        if not is_postgres_url(shared):
            problems.append(f"--index: expected a postgresql://… URL (a whoosh directory is --index-dir), got {shared!r}")
        if args.index_dir or args.no_index:
            problems.append("--index: give one of --index, --index-dir and --no-index")
        if problems:
            raise InvalidArguments(problems)
        # One index that several broker nodes share: the tables of a schema, created by migrations.
        return partial(UnionIndex.open, shared, schema=args.index_schema)
    if args.no_index:
        return None
    path = Path(args.index_dir) if args.index_dir else Path("var") / "index" / consortium.id
    # Opened off the loop by the app's cleanup context; it creates the directory or names why it
    # cannot (UnionIndexError, exit 2).
    return partial(UnionIndex.open, path)


async def _serve(
    consortium: Consortium,
    host: str,
    port: int,
    open_index: Callable[[], UnionIndex] | None,
    ledger: LedgerConfig | None = None,
    portal_keys: Path | None = None,
    *,
    http: HttpClient | None = None,
    fanout: FanoutSettings | None = None,
    idle_trim_s: float | None = 10.0,
    member_operations: int | None = None,
    keepalive_s: float = DEFAULT_KEEPALIVE_S,
) -> web.AppRunner:
    app = build_app(
        consortium, open_index=open_index, ledger=ledger, portal_keys=portal_keys, http=http, fanout=fanout,
        idle_trim_s=idle_trim_s, member_operations=member_operations,
    )  # fmt: skip
    return await start_server(app, host, port, keepalive_s=keepalive_s)


def _outbound(args: argparse.Namespace) -> tuple[HttpClient, FanoutSettings, str]:
    """The HTTP client and fan-out settings of `serve`/`demo`, sized below the descriptor limit (raised first)."""
    limit = raise_nofile_limit()
    connections = connection_cap(args.connections, limit)
    fanout = FanoutSettings(max_in_flight=min(args.max_in_flight, connections), burst=args.start_burst)
    per_member = {"member_concurrency": args.member_operations} if args.member_operations else {}
    http = HttpClient(total_connections=connections, connections_per_host=args.connections_per_host, **per_member)
    raised = f" (raised from {limit.raised_from})" if limit.raised_from is not None else ""
    note = (
        f"open files: soft limit {limit.soft}{raised}; member sockets ≤ {connections}"
        f"{f' (≤ {args.connections_per_host} per host)' if args.connections_per_host else ''}; "
        f"requests in flight ≤ {fanout.max_in_flight}"
    )
    return http, fanout, note


def _ledger_config(args: argparse.Namespace, consortium: Consortium) -> LedgerConfig | None:
    """The hold ledger this node uses: SQLite under var/ by default, or a PostgreSQL URL shared by nodes."""
    if args.no_ledger:
        return None
    url = args.ledger or f"sqlite:///var/ledger-{consortium.id}.db"
    config = LedgerConfig(url=url)
    if args.node_id:
        config = dataclasses.replace(config, node=args.node_id)
    if args.hold_resend_after_s is not None:
        config = dataclasses.replace(config, timings=dataclasses.replace(config.timings, resend_after_s=args.hold_resend_after_s))
    return config


def _print_test_patrons(consortium: Consortium) -> None:
    """The demo's sandbox patrons, so that a person can log in and place a hold at once."""
    from sandbox.patrons import TEST_PATRONS

    patrons = TEST_PATRONS.get(consortium.id, ())[:2]
    for patron in patrons:
        cards = ", ".join(f"{member} {card.card_number} / PIN {card.pin}" for member, card in patron.cards.items())
        print(f"  test patron {patron.id} ({patron.about}): {cards}")


async def _announce_and_wait(
    args: argparse.Namespace, runner: web.AppRunner, consortium: Consortium, ledger: LedgerConfig | None,
    outbound_note: str, with_sandbox: bool,
) -> None:
    """Once serving: settle the collector, say where the broker is and what it holds, then wait for Ctrl-C."""
    tune_for_serving()  # start-up is done: what it built lives as long as the process (broker.collector)
    index = runner.app[SEARCH_KEY].index
    url = f"http://{args.host}:{bound_port(runner)}"
    if getattr(args, "ready_line", False):
        print(f"READY {url}", flush=True)  # a parent process (tests, benchmarks) waits for this line
    print(f"Yokodan broker for {consortium.name}: {url}")
    print(outbound_note)
    print(allocator_note(args.allocator))
    if ledger is not None:
        print(f"hold ledger: {ledger.url} (node {ledger.node})")
        if with_sandbox:
            _print_test_patrons(consortium)
    if index is not None:
        print(f"union index: {index.location} ({index.stats().doc_count} works cached)")  # no password
    print(f"  try: curl '{url}/api/v1/search?q=夏目漱石'")
    print(f"       curl '{url}/api/v1/members'")
    print("  Ctrl-C stops it.", flush=True)
    await asyncio.Event().wait()


async def _run_forever(args: argparse.Namespace, with_sandbox: bool) -> int:
    consortium = _load(args.consortium, getattr(args, "base_url", None))
    sandbox = None
    if with_sandbox:
        from broker.demo import start_sandbox

        sandbox, consortium = await start_sandbox(consortium, host=args.host, port=args.sandbox_port)
        print(f"sandbox members: {len(consortium.members)} on {consortium.base_url}")
    ledger = _ledger_config(args, consortium)
    portal_keys = Path(args.portal_keys) if getattr(args, "portal_keys", None) else None
    idle_trim_s = getattr(args, "idle_trim_s", 10.0) or None  # 0 turns it off
    http, fanout, outbound_note = _outbound(args)
    try:
        runner = await _serve(
            consortium, args.host, args.port, _index_opener(args, consortium), ledger, portal_keys,
            http=http, fanout=fanout, idle_trim_s=idle_trim_s, member_operations=args.member_operations,
            keepalive_s=args.keepalive_s,
        )  # fmt: skip
        try:
            await _announce_and_wait(args, runner, consortium, ledger, outbound_note, with_sandbox)
        finally:
            await runner.cleanup()  # closes the union index
    finally:
        # Also when start-up fails (a bad index schema, a busy port): the client is the caller's, not the app's.
        await http.close()
        if sandbox is not None:
            await sandbox.stop()
    return 0


def _ledger_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", help="hold ledger: sqlite:///PATH or postgresql://… (default: sqlite:///var/ledger-<consortium>.db)")
    parser.add_argument("--no-ledger", action="store_true", help="search only: no hold endpoints")
    parser.add_argument("--node-id", help="this node's name in the ledger's leases (default: host-pid)")
    parser.add_argument("--hold-resend-after-s", type=float, help="re-send a placement the member does not have after this long")


def _outbound_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=512, help="member sockets open at once (kept below the open-files limit)")
    parser.add_argument("--connections-per-host", type=int, default=0, help="member sockets per host:port (0: no cap of its own)")
    parser.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT, help="member requests at once, all searches together")
    parser.add_argument("--start-burst", type=int, default=DEFAULT_BURST, help="member requests started per event-loop turn")
    parser.add_argument(
        "--member-operations", type=int,
        help="operations (and HTTP requests) at once per member, for every member instead of its max_operations",
    )  # fmt: skip


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _process_options(parser: argparse.ArgumentParser) -> None:
    """How the serving process holds its resources: idle client connections, the allocator."""
    parser.add_argument(
        "--keepalive-s", type=positive_float, default=DEFAULT_KEEPALIVE_S,
        help=f"seconds an idle client connection stays open (default {DEFAULT_KEEPALIVE_S:g})",
    )  # fmt: skip
    parser.add_argument(
        "--allocator", choices=CHOICES, default=os.environ.get(CHOICE_ENV, "jemalloc"),
        help="jemalloc (default where libjemalloc is installed: memory goes back to the system after a burst) "
        "or system (CPython's own); see broker/allocator.py",
    )  # fmt: skip


def _index_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-dir", help="union index directory (default: var/index/<consortium id>)")
    parser.add_argument("--no-index", action="store_true", help="answer live only, cache nothing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yokodan", description="Federated cross-catalogue search for library consortia")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="start a shipped consortium's members on the sandbox and the broker on localhost")
    demo.add_argument("--consortium", help="a shipped consortium (okayama, kumamoto, aomori, takarazuka) or a TOML path (default: okayama)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=DEFAULT_PORT)
    demo.add_argument("--sandbox-port", type=int, default=DEFAULT_SANDBOX_PORT)
    demo.add_argument("--portal-keys", help="portal API keys file (`yokodan keys create --file …`)")
    _index_options(demo)
    _ledger_options(demo)
    _outbound_options(demo)
    _process_options(demo)

    search = commands.add_parser("search", help="search every member once and print the merged works")
    search.add_argument("query", nargs="?", default="", help="free text (all words)")
    search.add_argument("--title")
    search.add_argument("--author")
    search.add_argument("--isbn")
    search.add_argument("--members", help="comma-separated member ids (default: all)")
    search.add_argument("--prefecture", help="members in these prefectures: JIS codes or names (33,岡山県)")
    search.add_argument("--region", help="members in these regions (地方): 中国,近畿")
    search.add_argument("--near-prefecture", help="members in a prefecture and its land neighbours (33)")
    search.add_argument("--consortium", help="consortium TOML (default: the shipped Okayama network, on the sandbox)")
    search.add_argument("--base-url", help="resolve relative member endpoints against this URL")
    search.add_argument("--sandbox", action="store_true", help="serve the members from an embedded sandbox")
    search.add_argument("--no-sandbox", action="store_true", help="never start the embedded sandbox")
    search.add_argument("--page-size", type=int, default=20)
    search.add_argument("--limit", type=int, default=20, help="works to print")

    serve = commands.add_parser("serve", help="run the broker for a consortium file")
    serve.add_argument("--consortium", required=True)
    serve.add_argument("--base-url", help="resolve relative member endpoints against this URL")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--ready-line", action="store_true", help="print 'READY <url>' once listening (for a parent process)")
    serve.add_argument("--portal-keys", help="portal API keys file (`yokodan keys create --file …`); without it every key is refused")
    serve.add_argument(
        "--idle-trim-s", type=float, default=10.0,
        help="seconds without a search before freed memory is handed back to the system (0: never)",
    )  # fmt: skip
    _index_options(serve)
    serve.add_argument(
        "--index",
        help="a union index several nodes share: postgresql://… (instead of the whoosh directory of --index-dir)",
    )
    serve.add_argument(
        "--index-schema", default=DEFAULT_SCHEMA, help=f"the PostgreSQL schema of --index (default: {DEFAULT_SCHEMA})"
    )
    _ledger_options(serve)
    _outbound_options(serve)
    _process_options(serve)
    add_holds_parser(commands)
    add_keys_parser(commands)

    consortium = commands.add_parser("consortium", help="consortium files: generate the national one")
    consortium_commands = consortium.add_subparsers(dest="consortium_command", required=True)
    national = consortium_commands.add_parser(
        "generate-national", help="write the national consortium from the P27 and CiNii library lists"
    )
    national.add_argument("--data", required=True, help="the folder with the P27 and CiNii CSV files (../shared/data/libraries)")
    national.add_argument("--out", help="write here (default: print to stdout)")
    return parser


def _generate_national(args: argparse.Namespace) -> int:
    from broker.national_file import generate_national

    text = generate_national(Path(args.data))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "allocator", "jemalloc") not in CHOICES:  # the option's default came from the environment
        print(f"yokodan: {CHOICE_ENV} must be one of {', '.join(CHOICES)}, not {args.allocator!r}", file=sys.stderr)
        return EXIT_USER_ERROR
    if argv is None and args.command in ("serve", "demo"):
        # Before anything starts a thread or opens a socket; a caller passing `argv` keeps its process.
        reexec_with_jemalloc(args.allocator)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "search":
            if not (args.query or args.title or args.author or args.isbn):
                print("yokodan search: give a query, --title, --author or --isbn", file=sys.stderr)
                return EXIT_USER_ERROR
            return asyncio.run(_search(args))
        if args.command == "holds":
            return run_holds(args)
        if args.command == "keys":
            return run_keys(args)
        if args.command == "consortium":
            return _generate_national(args)
        if args.command == "demo":
            if args.consortium:
                from broker.demo import consortium_file  # demo-only, like the sandbox it starts

                args.consortium = str(consortium_file(args.consortium))
            return asyncio.run(_run_forever(args, with_sandbox=True))
        return asyncio.run(_run_forever(args, with_sandbox=False))
    except YokodanError as exc:
        # A person's or an operator's mistake (a broken consortium file, an unknown member, a locked
        # index …): one line per problem, no traceback. Anything else is a bug and keeps its traceback.
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"yokodan: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # e.g. port already in use
        print(f"yokodan: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
