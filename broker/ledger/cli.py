"""`yokodan holds login|place|list|show|pickup|cancel`: the hold endpoints of a running broker, from a terminal.

They speak to the broker over HTTP (`--broker`, default the demo's http://127.0.0.1:8400) with the
token `yokodan holds login` prints (`YOKODAN_TOKEN`), so the ledger stays the broker's alone.
The PIN comes from `YOKODAN_PIN`, never from the command line (it would sit in shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import aiohttp
import orjson

DEFAULT_BROKER = "http://127.0.0.1:8400"
# Labels of the lines `holds list` prints; the state itself comes in words from the broker (`state_label`).
_LABELS = {
    "ja": {"owner": "所蔵", "pickup": "受取館", "queue": "順番", "until": "取置期限", "ready": "受取予定", "refused": "受付不可",
           "untitled": "（書名の記録なし）", "none": "(予約はありません)"},
    "en": {"owner": "owner", "pickup": "pickup", "queue": "position", "until": "collect by", "ready": "expected",
           "refused": "refused", "untitled": "(no title recorded)", "none": "(no holds)"},
}  # fmt: skip


def add_ledger_commands(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help)
        parser.add_argument("--broker", default=os.environ.get("YOKODAN_BROKER", DEFAULT_BROKER))
        parser.add_argument("--lang", choices=("ja", "en"), default="ja", help="language of the hold states (default ja)")
        return parser

    login = command("login", "verify a library card with its library; prints a token for YOKODAN_TOKEN")
    login.add_argument("--card", required=True, metavar="MEMBER:NUMBER")
    place = command("place", "place a hold (a plan's choice: member, record, pickup branch)")
    place.add_argument("--member", required=True)
    place.add_argument("--record", required=True, help="the member's record id")
    place.add_argument("--pickup", required=True, help="pickup branch id")
    place.add_argument("--key", help="Idempotency-Key (default: derived from the request)")
    place.add_argument("--title", help="the work's title, shown by `holds list` (kept sealed, purged with the hold)")
    place.add_argument("--author")
    place.add_argument("--volume")
    command("list", "your holds")
    show = command("show", "one hold with its history")
    show.add_argument("hold_id")
    pickup = command("pickup", "collect a hold at another library (online only while waiting, where the library takes it)")
    pickup.add_argument("hold_id")
    pickup.add_argument("branch", help="the new pickup branch id")
    cancel = command("cancel", "cancel a hold (online only while waiting)")
    cancel.add_argument("hold_id")


def run_ledger_command(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    headers = {}
    if args.holds_command != "login":
        token = os.environ.get("YOKODAN_TOKEN")
        if not token:
            print("yokodan: set YOKODAN_TOKEN (from `yokodan holds login`)", file=sys.stderr)
            return 2
        headers["Authorization"] = f"Bearer {token}"
    base = args.broker.rstrip("/")
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:
        try:
            status, body = await _call(session, base, args)
        except aiohttp.ClientError as exc:
            print(f"yokodan: the broker at {base} did not answer ({type(exc).__name__})", file=sys.stderr)
            return 1
    if status >= 400:
        print(f"yokodan: {body.get('title', status)}: {body.get('detail', '')}" + _phone(body), file=sys.stderr)
        return 2
    print(_render(args.holds_command, body, args.lang))
    return 0


async def _call(session: aiohttp.ClientSession, base: str, args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    command = args.holds_command
    lang = {"lang": args.lang}
    if command == "login":
        member, _, number = args.card.partition(":")
        payload = {"member": member, "card_number": number, "pin": os.environ.get("YOKODAN_PIN")}
        request = session.post(f"{base}/api/v1/auth/login", json=payload)
    elif command == "place":
        payload = {"member": args.member, "record_id": args.record, "pickup_branch_id": args.pickup}
        payload |= {k: v for k, v in (("title", args.title), ("author", args.author), ("volume", args.volume)) if v}
        request = session.post(f"{base}/api/v1/holds", json=payload, params=lang, headers={"Idempotency-Key": args.key} if args.key else {})
    elif command == "list":
        request = session.get(f"{base}/api/v1/holds", params=lang)
    elif command == "show":
        request = session.get(f"{base}/api/v1/holds/{args.hold_id}", params=lang)
    elif command == "pickup":
        request = session.patch(f"{base}/api/v1/holds/{args.hold_id}", json={"pickup_branch_id": args.branch}, params=lang)
    else:
        request = session.delete(f"{base}/api/v1/holds/{args.hold_id}", params=lang)
    async with request as response:
        raw = await response.read()
        return response.status, orjson.loads(raw) if raw else {}


def _phone(problem: dict[str, Any]) -> str:
    return f"（{problem['library']} {problem['phone']}）" if problem.get("phone") else ""


def _line(hold: dict[str, Any], language: str) -> str:
    """Two lines a patron can read: what, then where and when (ids stay on the first, for `show`/`cancel`)."""
    words = _LABELS[language]
    title = hold.get("title")
    what = (title + (f" {hold['volume']}" if hold.get("volume") else "") + (f" / {hold['author']}" if hold.get("author") else "")) if title else f"{words['untitled']} {hold['record_id']}"
    where = [f"{words['owner']} {hold.get('member_name') or hold['member']}", f"{words['pickup']} {hold.get('pickup_branch_name') or hold['pickup_branch_id']}"]
    when = [hold.get("state_label") or hold.get("state") or hold.get("outcome", "")]
    if hold.get("queue_position"):
        when.append(f"{words['queue']} {hold['queue_position']}")
    if hold.get("ready_until"):
        when.append(f"{words['until']} {hold['ready_until']}")
    elif hold.get("promised_ready") and hold.get("state") not in ("collected", "expired", "cancelled"):
        when.append(f"{words['ready']} {hold['promised_ready']}")
    if hold.get("refusal"):
        when.append(f"{words['refused']}: {hold['refusal']['reason']}")
    return f"{hold['id']}  {what}\n    {' · '.join(where)}  {' · '.join(when)}"


def _render(command: str, body: dict[str, Any], language: str) -> str:
    if command == "login":
        return body["token"]
    if command == "list":
        return "\n".join(_line(h, language) for h in body["holds"]) or _LABELS[language]["none"]
    lines = [_line(body, language)]
    for step in body.get("transitions", []):
        lines.append(f"    {step['at']}  {step['from'] or '—'} → {step['to']}  {step['member_word'] or ''}")
    return "\n".join(lines)
