"""Calil's check API at `/calil/check`, answering for every member with protocol "calil".

As the real service (shared/data/opac_fixtures/calil_api_fixtures): the first answer
has `continue: 1` and each system `Running`; polls with `session=` finish later with
`OK` and a `libkey` map of branch -> Calil word, then `continue: 0`. JSONP unless
`callback=no`. Per member, `protocol_options`:
  systemid          Calil's id for the system (default: the member id)
  calil_behaviour   "ok" (default) | "cache" (first answer final, status Cache) |
                    "running_then_error" | "running_forever"
  calil_running_s   seconds a check stays Running after the first answer (default 0:
                    the first poll finishes)
Branch keys are the branch names; a branch holds a work when a copy's home is there.
Faults of the members asked about: latency, hang, forced status, random 500s, and
`malformed_xml` as a truncated JSON body (the XML body faults have no JSON analogue).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from yokodan.isbn import to_isbn13
from connectors.calil import CALIL_WORDS
from sandbox.faults import error_page
from sandbox.holdings import HeldWork
from sandbox.member import MemberSystem
from sandbox.sru_server import MEMBERS

BEHAVIOURS = frozenset({"ok", "cache", "running_then_error", "running_forever"})
# A branch with several copies shows its most useful word; a closed branch is closed whatever its copies do.
_WORD_ORDER = {word: rank for rank, word in enumerate(("休館中", "貸出可", "館内のみ", "予約中", "貸出中", "準備中", "蔵書あり"))}
_MAX_SESSIONS = 1024
_CALLBACK_NAME = re.compile(r"[A-Za-z_$][\w$.]*")


@dataclass
class _CalilSystem:
    system: MemberSystem
    behaviour: str
    running_s: float
    by_isbn: dict[str, HeldWork]  # works the member catalogued with an ISBN: what Calil can find


@dataclass
class _Session:
    isbns: tuple[str, ...]  # as the client sent them: Calil echoes them in that form
    systemids: tuple[str, ...]
    started: float = field(default_factory=time.monotonic)
    polls: int = 0


@dataclass
class CalilState:
    systems: dict[str, _CalilSystem]
    sessions: OrderedDict[str, _Session] = field(default_factory=OrderedDict)

    def start(self, isbns: tuple[str, ...], systemids: tuple[str, ...]) -> tuple[str, _Session]:
        session_id = uuid.uuid4().hex
        session = self.sessions[session_id] = _Session(isbns, systemids)
        if len(self.sessions) > _MAX_SESSIONS:  # abandoned checks must not grow memory
            self.sessions.popitem(last=False)
        return session_id, session


CALIL = web.AppKey("calil", CalilState)


def add_routes(app: web.Application) -> None:
    systems: dict[str, _CalilSystem] = {}
    for system in app[MEMBERS].values():
        if system.spec.protocol != "calil":
            continue
        options = system.spec.protocol_options
        behaviour = options.get("calil_behaviour", "ok")
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"sandbox member {system.id}: calil_behaviour must be one of {sorted(BEHAVIOURS)}")
        by_isbn = {h.work.isbn13: h for h in system.held if h.isbn_text and h.work.isbn13}
        systemid = options.get("systemid", system.id)
        systems[systemid] = _CalilSystem(system, behaviour, float(options.get("calil_running_s", "0")), by_isbn)
    app[CALIL] = CalilState(systems)
    app.router.add_get("/calil/check", _check)


def libkey(held: HeldWork) -> dict[str, str]:
    """Branch name -> the Calil word for that branch's copies of one work."""
    words: dict[str, str] = {}
    for copy in held.copies:
        word = CALIL_WORDS[copy.availability]
        current = words.get(copy.branch.name)
        if current is None or _WORD_ORDER[word] < _WORD_ORDER[current]:
            words[copy.branch.name] = word
    return words


def _status(calil: _CalilSystem | None, session: _Session) -> str:
    if calil is None:
        return "Error"  # a system id Calil does not know
    if calil.behaviour == "cache":
        return "Cache"
    if session.polls == 0 or calil.behaviour == "running_forever":
        return "Running"
    if time.monotonic() - session.started < calil.running_s:
        return "Running"
    return "Error" if calil.behaviour == "running_then_error" else "OK"


def _entry(calil: _CalilSystem | None, session: _Session, isbn: str, host: str) -> dict[str, object]:
    status = _status(calil, session)
    if calil is None or status not in ("OK", "Cache"):
        return {"status": status, "reserveurl": ""}
    held = calil.by_isbn.get(to_isbn13(isbn) or "")
    if held is None:
        return {"status": status, "reserveurl": "", "libkey": {}}
    url = f"http://{host}/{calil.system.id}/opac/detail?id={held.local_id}"
    return {"status": status, "reserveurl": url, "libkey": libkey(held)}


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


async def _check(request: web.Request) -> web.StreamResponse:
    state = request.app[CALIL]
    params = request.query
    callback = params.get("callback", "callback")  # Calil answers JSONP unless told callback=no
    if not params.get("appkey") or params.get("format", "json") != "json":
        return error_page(400)
    if callback != "no" and not _CALLBACK_NAME.fullmatch(callback):
        return error_page(400)  # echoing arbitrary text into a script would be an injection
    if "session" in params:
        session_id = params["session"]
        session = state.sessions.get(session_id)
        if session is None:
            return error_page(404)
        session.polls += 1
    else:
        isbns, systemids = _split(params.get("isbn")), _split(params.get("systemid"))
        if not isbns or not systemids:
            return error_page(400)
        session_id, session = state.start(isbns, systemids)
    asked = [state.systems[s] for s in session.systemids if s in state.systems]
    faults = [c.system.faults for c in asked]
    delay = max((c.system.delay_s() for c in asked), default=0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    if any(f.hang for f in faults):
        await asyncio.Event().wait()  # never set: only the client giving up (or shutdown) ends this
    if status := next((f.http_status for f in faults if f.http_status is not None), None):
        return error_page(status)
    if any(c.system.roll_error() for c in asked):
        return error_page(500)
    books = {
        isbn: {s: _entry(state.systems.get(s), session, isbn, request.host) for s in session.systemids}
        for isbn in session.isbns
    }
    running = any(entry["status"] == "Running" for systems in books.values() for entry in systems.values())
    body = orjson.dumps({"session": session_id, "books": books, "continue": int(running)})
    if any(f.malformed_xml for f in faults):
        body = body[: len(body) * 3 // 5]
    if callback == "no":
        return web.Response(body=body, content_type="application/json", charset="utf-8")
    return web.Response(body=callback.encode() + b"(" + body + b");", content_type="text/javascript", charset="utf-8")
