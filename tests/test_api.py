"""The broker's HTTP API over a real socket, with the sandbox Okayama members behind it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from broker.api import build_app
from sandbox.spec import FaultConfig
from tests.conftest import SandboxedConsortium
from tests.serving import served


@pytest.fixture
async def broker_url(okayama_sandbox: SandboxedConsortium) -> AsyncIterator[str]:
    async with served(build_app(okayama_sandbox.consortium)) as url:
        yield url


async def get(url: str, **params: str) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        return response.status, response.content_type, orjson.loads(await response.read())


async def test_search_returns_merged_works_with_branch_availability(broker_url: str) -> None:
    status, content_type, body = await get(f"{broker_url}/api/v1/search", q="夏目漱石")
    assert (status, content_type) == (200, "application/json")
    assert body["work_count"] == len(body["works"]) > 0
    top = body["works"][0]
    assert top["member_count"] >= 3
    member = top["holdings"][0]
    assert member["member_name"].endswith("図書館") or member["member_name"]
    copy = member["branches"][0]["copies"][0]
    assert copy["availability"] in {"available", "on_loan", "library_use_only", "reserved", "in_transit", "on_order", "not_for_loan", "closed", "unknown"}
    assert copy["status_text"]
    assert member["branches"][0]["branch_name"]
    assert len(body["targets"]) == 13
    assert {t["state"] for t in body["targets"]} == {"ok"}
    assert all("member_name" in t and "elapsed_ms" in t for t in body["targets"])


async def test_failing_member_is_reported_not_fatal(broker_url: str, okayama_sandbox: SandboxedConsortium) -> None:
    okayama_sandbox.host.set_faults("bizen-city", FaultConfig(http_status=500))
    status, _, body = await get(f"{broker_url}/api/v1/search", author="夏目漱石")
    assert status == 200
    targets = {t["member"]: t for t in body["targets"]}
    assert (targets["bizen-city"]["state"], targets["bizen-city"]["reason"]) == ("error", "http_500")
    assert body["works"]


@pytest.mark.parametrize(
    ("params", "bad_parameter"),
    [
        ({}, "q"),
        ({"isbn": "9784101010015"}, "isbn"),
        ({"q": "猫", "page_size": "500"}, "page_size"),
        ({"q": "猫", "start": "zero"}, "start"),
        ({"q": "猫", "colour": "red"}, "colour"),
        ({"q": "猫", "members": "okayama-city,atlantis"}, "members"),
    ],
    ids=["empty", "bad-isbn-check-digit", "page-size-too-big", "start-not-a-number", "unknown-parameter", "unknown-member"],
)
async def test_invalid_requests_get_problem_json(broker_url: str, params: dict[str, str], bad_parameter: str) -> None:
    status, content_type, body = await get(f"{broker_url}/api/v1/search", **params)
    assert (status, content_type) == (400, "application/problem+json")
    assert body["status"] == 400 and body["title"] and body["detail"]
    assert bad_parameter in {e["parameter"] for e in body["errors"]}


async def test_repeated_parameter_is_refused(broker_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{broker_url}/api/v1/search?q=a&q=b") as response:
            assert response.status == 400
            assert response.content_type == "application/problem+json"


async def test_unknown_path_is_problem_json(broker_url: str) -> None:
    status, content_type, body = await get(f"{broker_url}/api/v1/nothing-here")
    assert (status, content_type, body["status"]) == (404, "application/problem+json", 404)


async def test_members_and_health(broker_url: str) -> None:
    status, _, body = await get(f"{broker_url}/api/v1/members")
    assert status == 200 and len(body["members"]) == 13
    city = next(m for m in body["members"] if m["id"] == "okayama-city")
    assert city["connector"] == "sru" and len(city["branches"]) == 10
    chuo = next(b for b in city["branches"] if b["id"] == "okayama-city/chuo")
    assert chuo["phone"] == "086-223-3373" and chuo["lat"] > 34
    status, _, body = await get(f"{broker_url}/healthz")
    assert (status, body["status"]) == (200, "ok")


async def test_stream_is_ndjson_one_line_per_member(broker_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{broker_url}/api/v1/search/stream", params={"author": "夏目漱石"}) as response:
            assert response.status == 200 and response.content_type == "application/x-ndjson"
            lines = [orjson.loads(line) async for line in response.content if line.strip()]
    assert [line["type"] for line in lines] == ["member"] * 13 + ["final"]
    assert len(lines[-1]["targets"]) == 13
    assert lines[-1]["works"]


async def test_near_ranks_copies_nearby_and_rejects_bad_locations(broker_url: str) -> None:
    status, _, body = await get(f"{broker_url}/api/v1/search", author="夏目漱石", near="tsuyama-city/main")
    assert status == 200 and body["works"]
    status, _, _ = await get(f"{broker_url}/api/v1/search", author="夏目漱石", near="35.06,134.00")
    assert status == 200
    for bad in ("atlantis/main", "95,200", "north", "maniwa-city/ochiai"):  # 落合: no known coordinates
        status, content_type, body = await get(f"{broker_url}/api/v1/search", author="夏目漱石", near=bad)
        assert (status, content_type) == (400, "application/problem+json"), bad
        assert body["errors"][0]["parameter"] == "near"


async def _stream_lines(url: str, params: dict[str, str], *, stall_s: float = 0.0) -> list[dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/search/stream", params=params) as response:
            assert response.status == 200
            if stall_s:
                # Blocks this process's loop (broker and sandbox share it): the members' answers are all
                # ready when it resumes and are read in the same turns.
                time.sleep(stall_s)
            return [orjson.loads(line) async for line in response.content if line.strip()]


def _members_of(work: dict) -> list[str]:
    return sorted(h["member"] for h in work["holdings"])


async def test_stream_members_answering_together_send_each_changed_work_once(
    broker_url: str, okayama_sandbox: SandboxedConsortium
) -> None:
    for member in okayama_sandbox.consortium.members:
        okayama_sandbox.host.set_faults(member.id, FaultConfig(delay_ms=150))
    params = {"author": "夏目漱石", "page_size": "100"}
    lines = await _stream_lines(broker_url, params, stall_s=0.5)
    members, final = lines[:-1], lines[-1]
    assert [line["type"] for line in lines] == ["member"] * 13 + ["final"]
    # Upserting the member lines' works, as a page does, gives every work of the final page as it is.
    seen: dict[str, dict] = {}
    for line in members:
        seen.update((work["work_id"], work) for work in line["works"])
    assert {w["work_id"]: _members_of(w) for w in final["works"]} == {
        w["work_id"]: _members_of(seen[w["work_id"]]) for w in final["works"]
    }
    # Sent per turn, not per member: fewer work entries than the members' contributions to them.
    contributions = sum(len(w["holdings"]) for w in final["works"])
    sent = sum(len(line["works"]) for line in members)
    assert sent < contributions, (sent, contributions)
    assert [line["works"] for line in members if line["works"] == []], "answers of one turn share the last line"
