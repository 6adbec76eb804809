"""`yokodan keys create | list | revoke --file PATH`: the portal keys file (broker/portals/keys.py).

`create` prints the full key once, on standard output alone (so `KEY=$(yokodan keys create …)` works);
what was created goes to standard error. The file keeps only the key's id and digest: a lost key
is revoked and a new one created. A running broker picks up changes within a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.portals.keys import DEFAULT_BURST, DEFAULT_RATE_PER_S, add_key, new_key, read_keys, revoke_key

DEFAULT_KEYS_FILE = Path("var") / "portal-keys.toml"


def add_keys_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="API keys for portals: create, list, revoke")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    def with_file(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--file", default=str(DEFAULT_KEYS_FILE), help=f"the keys file (default: {DEFAULT_KEYS_FILE})")
        return parser

    create = with_file(actions.add_parser("create", help="create a key and print it once"))
    create.add_argument("--name", required=True, help="the portal's name")
    create.add_argument("--contact", default="", help="who runs it (an e-mail address, a phone number)")
    create.add_argument("--origin", action="append", default=[], help="a web origin its pages call from (repeatable)")
    create.add_argument("--burst", type=int, default=DEFAULT_BURST, help=f"searches at once (bucket size; default {DEFAULT_BURST})")
    create.add_argument("--rate", type=float, default=DEFAULT_RATE_PER_S, help=f"searches per second, sustained (default {DEFAULT_RATE_PER_S:g})")
    create.add_argument("--members", help="comma-separated member ids it may search (default: all)")
    create.add_argument("--consortium", help="the consortium id it is valid for (default: any broker reading the file)")
    with_file(actions.add_parser("list", help="list keys (never their secrets)"))
    revoke = with_file(actions.add_parser("revoke", help="revoke a key by its id"))
    revoke.add_argument("key_id")


def run_keys(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if args.keys_command == "create":
        members = [m.strip() for m in args.members.split(",") if m.strip()] if args.members else None
        record, full = add_key(
            path,
            lambda taken: new_key(
                args.name, contact=args.contact, origins=args.origin, burst=args.burst, rate_per_s=args.rate,
                members=members, consortium=args.consortium, taken=taken,
            ),
        )  # fmt: skip
        print(f"created key {record.id} for {record.name} in {path}; it is shown once:", file=sys.stderr)
        print(full)
        return 0
    if args.keys_command == "list":
        for record in read_keys(path):
            print(record.summary())
        return 0
    record = revoke_key(path, args.key_id)
    print(f"revoked {record.id} ({record.name}) at {record.revoked_at}")
    return 0
