"""`yokodan holds plan …`: the same dry run as POST /api/v1/holds/plan, printed readably in Japanese.

  yokodan holds plan --isbn 9784101010137 --card okayama-pref:10000001 --home 津山市 [--pickup BRANCH …]
                     [--today 2026-12-01] [--consortium FILE | --base-url URL] [--json]

The PIN, when the member wants one, is read from the environment (YOKODAN_PIN), never from the command
line, where every user of the machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from broker.consortium import Consortium, load_consortium
from broker.holds.gather import HoldsGatherer, find_work
from broker.holds.patron import Card, Patron
from broker.holds.planner import Plan, plan_hold
from broker.holds.views import advice_ja, date_ja, plan_view, refusal_ja
from broker.ledger.cli import add_ledger_commands, run_ledger_command
from broker.members import MemberRegistry
from broker.search import SearchService
from connectors import HttpClient
from yokodan import SearchQuery

__all__ = ["add_holds_parser", "format_plan", "run_holds"]

_ROUTE_JA = {"at_owner": "所蔵館で受取", "to_pickup": "受渡館へ配送"}
_LOST_JA = {"later_ready": "受取可能日が遅い", "ready_unknown": "受取可能日が不明", "less_preferred": "希望順位が低い",
            "farther": "自宅から遠い", "tie": "同条件（順序で決定）"}


def add_holds_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    holds = commands.add_parser("holds", help="plan, place and follow holds")
    actions = holds.add_subparsers(dest="holds_command", required=True)
    plan = actions.add_parser("plan", help="which library, which pickup branch, ready when, and why")
    plan.add_argument("--isbn")
    plan.add_argument("--title")
    plan.add_argument("--author")
    plan.add_argument("--card", action="append", default=[], metavar="MEMBER:NUMBER", help="a card (repeatable)")
    plan.add_argument("--home", help="home municipality (岡山市 …)")
    plan.add_argument("--near", help="home location 'lat,lon'")
    plan.add_argument("--pickup", action="append", default=[], metavar="BRANCH", help="preferred pickup branch, best first")
    plan.add_argument("--pickup-only", action="store_true", help="only the preferred pickup branches")
    plan.add_argument("--today", type=date.fromisoformat, help="plan as of this day (YYYY-MM-DD)")
    plan.add_argument("--consortium", help="consortium TOML (default: the shipped Okayama network, on the sandbox)")
    plan.add_argument("--base-url", help="members are at this URL (no embedded sandbox)")
    plan.add_argument("--json", action="store_true", help="print the API's JSON instead")
    add_ledger_commands(actions)  # login, place, list, show, cancel against a running broker


def _patron(args: argparse.Namespace) -> Patron:
    pin = os.environ.get("YOKODAN_PIN")
    cards = []
    for spec in args.card:
        member, sep, number = spec.partition(":")
        if not sep or not member or not number:
            raise ValueError(f"--card wants MEMBER:NUMBER, got {spec!r}")
        cards.append(Card(member=member, card_number=number, pin=pin))
    location = None
    if args.near:
        lat, _, lon = args.near.partition(",")
        location = (float(lat), float(lon))
    return Patron(cards=cards, home_municipality=args.home, location=location, preferred_pickups=args.pickup)


def format_plan(plan: Plan, title: str) -> str:
    lines = [f"『{title}』の予約プラン（{date_ja(plan.today)}時点）"]
    choice = plan.choice
    if choice is None:
        lines.append("  予約できる候補がありません。")
    else:
        e = choice.estimate
        lines.append(f"  おすすめ: {choice.member_name}の資料を{choice.pickup_name}で受取（{_ROUTE_JA[choice.route]}）")
        lines.append(f"    受取可能: {date_ja(e.ready)}　取置期限: {date_ja(e.deadline)}")
        if e.assumptions:
            lines.append(f"    前提: {', '.join(e.assumptions)}")
    if plan.advice:
        lines.append("  ご案内:")
        lines += [f"    ・{advice_ja(a)}" + (f"　{a.how_to_get}" if a.how_to_get else "") for a in plan.advice]
    if plan.alternatives:
        lines.append(f"  ほかの候補（{len(plan.alternatives)}件、上位10件）:")
        for alt in plan.alternatives[:10]:
            o = alt.option
            later = f"、{alt.days_later}日遅い" if alt.days_later else ""
            lines.append(f"    ・{o.member_name} → {o.pickup_name}: {date_ja(o.ready)}（{_LOST_JA[alt.lost_because]}{later}）")
    if plan.refusals:
        lines.append("  予約できない理由:")
        lines += [f"    ・[{r.reason.value}] {refusal_ja(r)}" for r in plan.refusals]
    return "\n".join(lines)


async def _plan(args: argparse.Namespace) -> int:
    consortium: Consortium = load_consortium(Path(args.consortium) if args.consortium else None)
    sandbox = None
    if args.base_url:
        consortium = consortium.with_base_url(args.base_url)
    else:
        from broker.demo import start_sandbox  # the sandbox is demo-only; import it only then

        sandbox, consortium = await start_sandbox(consortium, latency_ms=5)
    try:
        patron = _patron(args)
        today = args.today or datetime.now(ZoneInfo(consortium.timezone)).date()
        async with HttpClient() as http:
            work, _ = await find_work(SearchService(MemberRegistry(consortium, http)), SearchQuery(isbn=args.isbn, title=args.title, author=args.author))
            if work is None:
                print("yokodan holds plan: no member's catalogue has this work", file=sys.stderr)
                return 1
            gathered = await HoldsGatherer(MemberRegistry(consortium, http)).gather(patron, work.records)
        plan = plan_hold(consortium, patron, gathered.records, gathered.statuses, today, pickup_only=args.pickup_only)
        if args.json:
            print(orjson.dumps(plan_view(plan), option=orjson.OPT_INDENT_2).decode())
        else:
            print(format_plan(plan, work.title + (f" {work.volume}" if work.volume else "")))
        return 0
    finally:
        if sandbox is not None:
            await sandbox.stop()


def run_holds(args: argparse.Namespace) -> int:
    if args.holds_command != "plan":
        return run_ledger_command(args)
    if not (args.isbn or args.title):
        print("yokodan holds plan: give --isbn or --title", file=sys.stderr)
        return 2
    return asyncio.run(_plan(args))
