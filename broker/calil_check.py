"""`GET /api/v1/check`: Calil's check API (カーリル 図書館API), answered by this consortium.

Sites written for Calil point at a consortium's Yokodan by changing one URL:

  GET /api/v1/check?appkey=…&isbn=4334926940,9784101010137&systemid=Okayama_Okayama,tsuyama-city&format=json
  -> {"session": "…", "continue": 1, "books": {"4334926940": {"Okayama_Okayama": {"status": "Running", "reserveurl": ""}, …}}}
  GET /api/v1/check?appkey=…&session=…&format=json          (every 1–2 s while continue is 1)
  -> {"session": "…", "continue": 0, "books": {… {"status": "OK", "reserveurl": "…/work?isbn=…",
                                                   "libkey": {"中央図書館": "貸出可", "幸町図書館": "貸出中"}} …}}

- `systemid`: a member id (`tsuyama-city`), or the Calil system id a member file declares
  (`calil_systemid = "Okayama_Okayama"`); the answer is keyed by the id as sent. Any other id is a
  400 problem naming it (Calil would answer for any library in Japan; a consortium knows its own).
- `isbn`: ISBN-10 or -13, comma-separated, echoed as sent; at most 100 ISBN × system pairs.
- `libkey` keys are the branch's Calil libkey where the file declares one (`calil_libkey`), else
  its name; words are Calil's (broker/calil_sessions.py maps our availability onto them).
- `reserveurl`: this broker's work page for the ISBN (where a patron sees every copy and can plan
  a hold), when the system holds it; "" otherwise.
- `format=json` (default) or `xml`; `callback`: for JSON, JSONP with that function name, which must
  be a JavaScript identifier (dots allowed: `app.cb`), else 400; `callback=no` (or empty) is plain
  JSON. Calil wraps in `callback(…)` when no callback is given, and so does this endpoint.
- `appkey`: a Yokodan portal key (`yk_…`: checked like `X-Api-Key`, wrong is 401) or anything else
  (a site's Calil key: ignored; the caller is then anonymous, which `[access] anonymous_search = false`
  refuses with 401). Starting a check takes a token from the caller's bucket; polls do not.
- Unknown or expired `session`: 404 problem (`reason: unknown_session`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import web
from lxml import etree
from pydantic import BaseModel, Field

from broker.api import CONSORTIUM_KEY, GATE_KEY, SEARCH_KEY, InvalidRequest
from broker.calil_sessions import CheckSession, CheckSessions, CheckSettings
from broker.portals.access import CHECK_PATH, PortalRefusal, members_for
from yokodan.isbn import to_isbn13

MAX_PAIRS = 100  # Calil's limit per session
JSONP_CALLBACK = re.compile(r"[A-Za-z_$][\w$]{0,63}(?:\.[A-Za-z_$][\w$]{0,63}){0,4}")
SESSIONS_KEY = web.AppKey("calil_check_sessions", CheckSessions)
CHECK_SETTINGS_KEY = web.AppKey("calil_check_settings", CheckSettings)
JAVASCRIPT = "application/javascript"


class CheckParams(BaseModel):
    """Query parameters of /api/v1/check (Calil's names); unknown ones are ignored, as Calil does."""

    appkey: str | None = Field(default=None, max_length=200, description="a Yokodan portal key (yk_…); another value is ignored")
    isbn: str | None = Field(default=None, max_length=2000, description="ISBN-10 or -13, comma-separated (a new check)")
    systemid: str | None = Field(default=None, max_length=2000, description="member ids or declared Calil system ids, comma-separated")
    session: str | None = Field(default=None, max_length=64, description="poll a running check (from a previous answer)")
    format: str | None = Field(default=None, description="json (default) or xml")
    callback: str | None = Field(default=None, max_length=320, description="JSONP function name; `no` for plain JSON")


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise InvalidRequest("a parameter was given more than once", [{"parameter": name, "detail": "repeated"}])
    return values[0].strip() if values else None


def _list(text: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def _systems(request: web.Request, text: str | None) -> dict[str, str]:
    consortium = request.app[CONSORTIUM_KEY]
    by_id = {m.id: m.id for m in consortium.members} | {m.calil_systemid: m.id for m in consortium.members if m.calil_systemid}
    wanted = _list(text or "")
    if not wanted:
        raise InvalidRequest("give systemid (member ids or Calil system ids)", [{"parameter": "systemid", "detail": "missing"}])
    unknown = [s for s in wanted if s not in by_id]
    if unknown:
        raise InvalidRequest("unknown systemid", [{"parameter": "systemid", "detail": s} for s in unknown])
    systems = {s: by_id[s] for s in wanted}
    members_for(request, list(dict.fromkeys(systems.values())), list(by_id.values()))  # a key's member subset: 403
    return systems


def _isbns(text: str | None) -> dict[str, str]:
    wanted = _list(text or "")
    if not wanted:
        raise InvalidRequest("give isbn (or session to poll a check)", [{"parameter": "isbn", "detail": "missing"}])
    converted = {isbn: to_isbn13(isbn) for isbn in wanted}
    bad = [isbn for isbn, isbn13 in converted.items() if isbn13 is None]
    if bad:
        raise InvalidRequest("not an ISBN", [{"parameter": "isbn", "detail": isbn[:40]} for isbn in bad])
    return {isbn: isbn13 for isbn, isbn13 in converted.items() if isbn13 is not None}


def _format(request: web.Request) -> tuple[str, str | None]:
    """('json' | 'xml', JSONP callback or None)."""
    fmt = (_single(request, "format") or "json").lower()
    if fmt not in ("json", "xml"):
        raise InvalidRequest("format is json or xml", [{"parameter": "format", "detail": fmt[:20]}])
    callback = _single(request, "callback")
    if fmt == "xml" or callback in ("no", ""):
        return fmt, None
    callback = callback or "callback"  # Calil's default
    if not JSONP_CALLBACK.fullmatch(callback):
        # Only an identifier: anything else would let a page inject script through our answer.
        raise InvalidRequest("callback must be a JavaScript identifier (letters, digits, _ and $, dots between)",
                             [{"parameter": "callback", "detail": "not an identifier"}])  # fmt: skip
    return fmt, callback


async def check_handler(request: web.Request) -> web.Response:
    fmt, callback = _format(request)
    sessions = request.app[SESSIONS_KEY]
    session_id = _single(request, "session")
    if session_id:
        session = sessions.get(session_id)
        if session is None:
            raise PortalRefusal(404, "Not Found", "no such check session (it ended, or was idle too long); start a new check", "unknown_session")
    else:
        isbns = _isbns(_single(request, "isbn"))
        systems = _systems(request, _single(request, "systemid"))
        if len(isbns) * len(systems) > MAX_PAIRS:
            raise InvalidRequest(f"at most {MAX_PAIRS} ISBN x system pairs per check",
                                 [{"parameter": "isbn", "detail": f"{len(isbns)} x {len(systems)}"}])  # fmt: skip
        session = sessions.start(isbns, systems)
        # Members that answer within a moment are in the first answer: fewer polls for everyone.
        try:
            await asyncio.wait_for(asyncio.shield(session.done.wait()), request.app[CHECK_SETTINGS_KEY].first_answer_wait_s)
        except TimeoutError:
            pass
    body = answer(session, base_url=str(request.url.origin()))
    if fmt == "xml":
        return web.Response(body=xml_answer(body), content_type="application/xml", charset="utf-8")
    data = orjson.dumps(body)
    if callback is None:
        return web.Response(body=data, content_type="application/json")
    # '/**/' first: an answer can never begin with bytes a plug-in would read as its own format.
    return web.Response(body=b"/**/" + callback.encode() + b"(" + data + b");", content_type=JAVASCRIPT, charset="utf-8")


def answer(session: CheckSession, *, base_url: str) -> dict[str, Any]:
    """The session in Calil's JSON shape."""
    books: dict[str, dict[str, Any]] = {}
    for sent, isbn13 in session.isbns.items():
        systems: dict[str, Any] = {}
        for system in session.systems:
            entry = session.entries[(sent, system)]
            shown: dict[str, Any] = {"status": entry.status, "reserveurl": f"{base_url}/work?isbn={isbn13}" if entry.held else ""}
            if entry.status == "OK":
                shown["libkey"] = dict(entry.libkey)
            systems[system] = shown
        books[sent] = systems
    return {"session": session.id, "continue": 0 if session.finished else 1, "books": books}


def xml_answer(body: dict[str, Any]) -> bytes:
    """Calil's XML shape: result/session, continue, books/book[@isbn]/system[@systemid]/status, reserveurl, libkeys/libkey[@name]."""
    root = etree.Element("result")
    etree.SubElement(root, "session").text = body["session"]
    etree.SubElement(root, "continue").text = str(body["continue"])
    books = etree.SubElement(root, "books")
    for isbn, systems in body["books"].items():
        book = etree.SubElement(books, "book", isbn=isbn, calilurl="")
        for systemid, entry in systems.items():
            system = etree.SubElement(book, "system", systemid=systemid)
            etree.SubElement(system, "status").text = entry["status"]
            etree.SubElement(system, "reserveurl").text = entry["reserveurl"]
            libkeys = etree.SubElement(system, "libkeys")
            for name, word in entry.get("libkey", {}).items():
                etree.SubElement(libkeys, "libkey", name=name).text = word
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def add_check_routes(app: web.Application, settings: CheckSettings | None = None) -> None:
    app[CHECK_SETTINGS_KEY] = settings or CheckSettings()
    app.router.add_get(CHECK_PATH, check_handler, allow_head=False)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSIONS_KEY] = CheckSessions(app[CONSORTIUM_KEY], app[SEARCH_KEY], app[GATE_KEY], app[CHECK_SETTINGS_KEY])
        yield
        await app[SESSIONS_KEY].close()  # no check keeps asking members after the app stops

    app.cleanup_ctx.append(lifecycle)
