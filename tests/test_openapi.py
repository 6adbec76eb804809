"""The OpenAPI 3.1 document, the docs page, and the live answers held to them.

The broker runs over a real socket with the sandbox members behind it and the hold ledger mounted
(tests/live_broker.py). Every live answer is validated against the model its operation declares
(`extra="forbid"`), so a field a handler adds, drops or retypes without the document fails here;
schemathesis then fuzzes every operation against the same document.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from openapi_spec_validator import validate
from pydantic import TypeAdapter

from broker.api import build_app
from broker.consortium import load_consortium
from broker.openapi import NDJSON, OPERATIONS, PROBLEM, described_routes, openapi_document
from tests.live_broker import LiveBroker, ThreadedBroker, live_broker
from tests.test_ils_rest import holdable
from yokodan import wire

ROOT = Path(__file__).resolve().parent.parent
KOKORO = "9784101010137"
EVERY_ENDPOINT = {
    ("get", "/api/v1/search"), ("get", "/api/v1/search/stream"), ("get", "/api/v1/members"), ("get", "/healthz"),
    ("post", "/api/v1/holds/plan"), ("post", "/api/v1/auth/login"), ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/cards"), ("post", "/api/v1/holds"), ("post", "/api/v1/holds/series"), ("get", "/api/v1/holds"),
    ("get", "/api/v1/holds/{hold_id}"), ("delete", "/api/v1/holds/{hold_id}"), ("patch", "/api/v1/holds/{hold_id}"),
    ("get", "/api/v1/openapi.json"), ("get", "/api/v1/docs"), ("get", "/sru"), ("post", "/sru"), ("get", "/api/v1/check"),
    ("post", "/api/v1/searches"), ("get", "/api/v1/searches/{search_id}"), ("delete", "/api/v1/searches/{search_id}"),
    ("get", "/api/v1/searches/{search_id}/events"),
}  # fmt: skip
BY_ID = {op.operation_id: op for op in OPERATIONS}


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[LiveBroker]:
    async with live_broker(tmp_path) as live:
        yield live


def conforms(operation_id: str, status: int, content_type: str, body: Any) -> Any:
    """Validate one live answer against what its operation documents for that status; return it parsed."""
    op = BY_ID[operation_id]
    if status in op.replies:
        reply = op.replies[status]
        assert content_type == (reply.media_type or content_type), (operation_id, status, content_type)
        return TypeAdapter(reply.model).validate_python(body) if reply.model is not None else body
    assert status in op.problems or status == 500, f"{operation_id} answered an undocumented {status}: {body}"
    assert content_type == PROBLEM, (operation_id, status, content_type)
    problem = wire.Problem.model_validate(body)
    assert problem.status == status
    return problem


async def call(session: aiohttp.ClientSession, operation_id: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    op = BY_ID[operation_id]
    async with session.request(op.method, url, **kwargs) as response:
        raw = await response.read()
        if op.replies.get(response.status) and op.replies[response.status].media_type == NDJSON:
            lines = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
            return response.status, [conforms(operation_id, response.status, NDJSON, line) for line in lines]
        body = orjson.loads(raw) if raw else None
        return response.status, conforms(operation_id, response.status, response.content_type, body)


async def test_served_document_is_valid_openapi_3_1_and_describes_every_endpoint(broker: LiveBroker) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{broker.url}/api/v1/openapi.json") as response:
        assert response.status == 200 and response.content_type == "application/json"
        document = await response.json()
    validate(document)  # raises OpenAPIValidationError naming the path of what is wrong
    assert document["openapi"] == "3.1.0"
    described = {(method, path) for path, methods in document["paths"].items() for method in methods}
    assert described == EVERY_ENDPOINT
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            assert "500" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    media = response["content"][PROBLEM]
                    assert media["schema"] == {"$ref": "#/components/schemas/Problem"} and media["example"]["status"] == int(status)
    search = {p["name"]: p for p in document["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert list(search) == ["q", "title", "author", "isbn", "year", "members", "near", "prefecture", "region", "near_prefecture", "start", "page_size"]
    assert search["members"]["style"] == "form" and search["members"]["explode"] is False
    assert search["page_size"]["schema"] == {"default": 20, "maximum": 100, "minimum": 1, "type": "integer"}
    assert all("example" in p for p in search.values()) and search["members"]["example"] == ["okayama-city", "tsuyama-city"]
    for target in ("showHold", "cancelHold", "changePickup"):  # links: where the next call finds the hold id
        assert document["paths"]["/api/v1/holds"]["post"]["responses"]["201"]["links"][target]["parameters"] == {"hold_id": "$response.body#/id"}
    place = document["paths"]["/api/v1/holds"]["post"]
    assert set(place["responses"]) == {"200", "201", "202", "400", "401", "414", "422", "431", "500", "503"}
    assert place["security"] == [{"bearer": []}]
    assert [p["name"] for p in place["parameters"]] == ["lang", "Idempotency-Key"]
    # search surfaces: anonymous where the consortium allows it, else a portal key in either header
    for path in ("/api/v1/search", "/api/v1/search/stream", "/api/v1/check"):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{}, {"portalKey": []}, {"portalBearer": []}]
        assert {"401", "403", "429"} <= set(operation["responses"])
    assert document["components"]["securitySchemes"]["portalKey"] == {
        "type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "a portal's API key (`yk_<id>_<secret>`, from `yokodan keys create`)"}  # fmt: skip
    check = document["paths"]["/api/v1/check"]["get"]["responses"]["200"]["content"]
    assert list(check) == ["application/json", "application/javascript", "application/xml"]


def test_an_app_without_the_ledger_describes_no_hold_endpoints() -> None:
    app = build_app(load_consortium())
    assert described_routes(app)[1] == []  # a route added to build_app needs its entry in broker.openapi.OPERATIONS
    document = openapi_document(app)
    validate(document)
    assert set(document["paths"]) == {"/api/v1/search", "/api/v1/search/stream", "/api/v1/members", "/healthz",
                                      "/api/v1/holds/plan", "/api/v1/openapi.json", "/api/v1/docs", "/sru", "/api/v1/check",
                                      "/api/v1/searches", "/api/v1/searches/{search_id}", "/api/v1/searches/{search_id}/events"}  # fmt: skip
    assert set(document["components"]["securitySchemes"]) == {"portalKey", "portalBearer"}  # no patron bearer without the ledger


async def test_a_route_nobody_described_is_named() -> None:
    app = build_app(load_consortium())

    async def handler(request: Any) -> Any:
        raise AssertionError

    app.router.add_get("/api/v1/undocumented", handler)
    assert described_routes(app)[1] == [("get", "/api/v1/undocumented")]


def test_every_example_is_valid_for_its_model() -> None:
    for op in OPERATIONS:
        if op.query is not None:
            assert set(op.query_examples) == set(op.query.model_fields), op.operation_id
            op.query.model_validate(op.query_examples)
        if op.body is not None:
            op.body.model_validate(op.body_example)
        for status, reply in op.replies.items():
            if reply.model is None:
                continue
            examples = reply.example if reply.media_type == NDJSON else [reply.example]
            for example in examples:
                TypeAdapter(reply.model).validate_python(example)


async def test_live_answers_match_the_document(broker: LiveBroker) -> None:
    url = broker.url
    async with aiohttp.ClientSession() as session:
        status, found = await call(session, "search", f"{url}/api/v1/search", params={"isbn": KOKORO})
        assert status == 200 and found.works[0].isbns == [KOKORO]
        assert {t.state.value for t in found.targets} == {"ok"} and len(found.targets) == 13
        for _ in range(40):  # until the union index has committed what the first search wrote behind
            status, lines = await call(session, "searchStream", f"{url}/api/v1/search/stream", params={"isbn": KOKORO})
            if lines[0].type == "cached" and lines[0].works:
                break
            await asyncio.sleep(0.1)
        assert [line.type for line in lines] == ["cached"] + ["member"] * 13 + ["final"]
        assert KOKORO in lines[0].works[0].isbns  # the index wrote the first search behind: its blob is described too
        status, problem = await call(session, "search", f"{url}/api/v1/search", params={"q": "x", "page_size": "0"})
        assert status == 400 and [e.parameter for e in problem.errors] == ["page_size"]
        status, problem = await call(session, "search", f"{url}/api/v1/search", params={"q": "x", "members": "nowhere"})
        assert status == 400 and problem.title == "Unknown member"
        status, check = await call(session, "calilCheck", f"{url}/api/v1/check",
                                   params={"isbn": KOKORO, "systemid": "Okayama_Okayama", "callback": "no"})  # fmt: skip
        assert status == 200 and list(check.books[KOKORO]) == ["Okayama_Okayama"]
        status, problem = await call(session, "calilCheck", f"{url}/api/v1/check", params={"session": "x", "callback": "no"})
        assert (status, problem.reason) == (404, "unknown_session")
        status, problem = await call(session, "search", f"{url}/api/v1/search", params={"q": "x"}, headers={"X-Api-Key": "yk_nope"})
        assert (status, problem.reason) == (401, "invalid_api_key")
        status, members = await call(session, "members", f"{url}/api/v1/members")
        assert len(members.members) == 13 and members.consortium.id == "okayama"
        assert (await call(session, "health", f"{url}/healthz"))[1].status == "ok"

        plan_body = {"isbn": KOKORO, "today": "2026-12-01",
                     "patron": {"cards": [{"member": "okayama-pref", "card_number": "10000001", "pin": "1234"}]}}  # fmt: skip
        status, plan = await call(session, "planHold", f"{url}/api/v1/holds/plan", json=plan_body)
        assert status == 200 and plan.plan.choice is not None and plan.plan.choice.member == "okayama-pref"
        status, _ = await call(session, "planHold", f"{url}/api/v1/holds/plan", json={**plan_body, "isbn": "9784099999995"})
        assert status == 404
        status, problem = await call(session, "planHold", f"{url}/api/v1/holds/plan", data=b"{not json")
        assert status == 400

        assert (await call(session, "listHolds", f"{url}/api/v1/holds"))[0] == 401
        status, problem = await call(session, "login", f"{url}/api/v1/auth/login",
                                     json={"member": "alpha", "card_number": "10000001", "pin": "0000"})  # fmt: skip
        assert status == 401 and problem.reason == "authentication_failed"
        status, token = await call(session, "login", f"{url}/api/v1/auth/login",
                                   json={"member": "alpha", "card_number": "10000001", "pin": "1234"})  # fmt: skip
        assert status == 200
        auth = {"Authorization": f"Bearer {token.token}"}
        status, cards = await call(session, "cards", f"{url}/api/v1/auth/cards", headers=auth)
        assert [c.card_number for c in cards.cards] == ["…001"]
        body = {"member": "alpha", "record_id": holdable(broker.holds_member, 0), "pickup_branch_id": "alpha/kita"}
        headers = auth | {"Idempotency-Key": "openapi-test-0001"}
        status, placed = await call(session, "placeHold", f"{url}/api/v1/holds", json=body, headers=headers)
        assert status == 201 and placed.outcome == "placed"
        status, replay = await call(session, "placeHold", f"{url}/api/v1/holds", json=body, headers=headers)
        assert status == 200 and replay.id == placed.id
        status, _ = await call(session, "placeHold", f"{url}/api/v1/holds", json={"member": "alpha"}, headers=auth)
        assert status == 400
        status, listed = await call(session, "listHolds", f"{url}/api/v1/holds", headers=auth)
        assert [h.id for h in listed.holds] == [placed.id]
        hold_url = f"{url}/api/v1/holds/{placed.id}"
        status, shown = await call(session, "showHold", hold_url, headers=auth)
        assert [t.to.value for t in shown.transitions] == ["waiting"]
        status, moved = await call(session, "changePickup", hold_url, json={"pickup_branch_id": "alpha/chuo"}, headers=auth)
        # The REST member moves it (Koha's PUT pickup_location) and the answer says where it now is.
        assert status == 200 and (moved.pickup_branch_id, moved.state.value) == ("alpha/chuo", "waiting")
        # A series for a card no member of this broker's catalogue takes: refused by name, nothing placed.
        status, refused = await call(session, "placeSeries", f"{url}/api/v1/holds/series", json={"isbn": "9784101010137"}, headers=auth)
        assert status == 422 and refused.reason == "no_card"
        status, cancelled = await call(session, "cancelHold", hold_url, headers=auth)
        assert status == 200 and cancelled.state.value == "cancelled"
        assert (await call(session, "showHold", f"{url}/api/v1/holds/{'0' * 32}", headers=auth))[0] == 404
        assert (await call(session, "logout", f"{url}/api/v1/auth/logout", headers=auth))[0] == 204
        assert (await call(session, "cards", f"{url}/api/v1/auth/cards", headers=auth))[0] == 401


async def test_docs_page_lists_every_operation_and_schema_and_loads_nothing(broker: LiveBroker) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{broker.url}/api/v1/docs") as response:
            assert response.status == 200 and response.content_type == "text/html"
            page = await response.text()
        document = await (await session.get(f"{broker.url}/api/v1/openapi.json")).json()
    for path, methods in document["paths"].items():
        for op in methods.values():
            assert f'id="{op["operationId"]}"' in page and f"<code>{path}</code>" in page
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "<script" not in page and "src=" not in page and 'href="http' not in page
    assert "page_size" in page and "maximum: 100" in page  # parameters with their limits


@pytest.mark.skipif(importlib.util.find_spec("schemathesis") is None and not os.environ.get("CI"), reason="schemathesis is not installed (test extras)")
def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    import httpx

    with ThreadedBroker(tmp_path) as broker:
        login = httpx.post(f"{broker.url}/api/v1/auth/login", json={"member": "alpha", "card_number": "10000001", "pin": "1234"})
        token = login.json()["token"]
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{broker.url}/api/v1/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples", "8", "--seed", "1", "--phases", "examples,coverage,fuzzing,stateful", "--no-shrink",
            "--request-timeout", "10", "-H", f"Authorization: Bearer {token}",
            # Logging out would revoke the token the other operations run with (test_live_answers covers it).
            "--exclude-operation-id", "logout",
        ]  # fmt: skip
        env = os.environ | {"SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
        result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # It really ran every operation but logout, with a token that stayed valid: only a log-in with
    # a made-up card answers nothing but 401; and the stream's lines were read.
    assert "Tested: 21" in result.stdout, result.stdout[:5000]
    unauthorized = result.stdout.partition("401 Unauthorized")[2].partition("💡")[0]
    assert [line.strip() for line in unauthorized.splitlines() if line.strip().startswith("-")] in ([], ["- POST /api/v1/auth/login"])
    assert "cannot validate application/x-ndjson" not in result.stdout
