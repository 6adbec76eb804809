"""Choosing members by place on /api/v1/search, its stream and the CLI, over real sockets."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import tomli_w
from aiohttp import web

from broker.api import build_app
from broker.consortium import Consortium, load_consortium
from broker.demo import start_sandbox
from broker.selection import MemberSelector, NoMembersSelected, PlaceQuery, UnknownPlace

ROOT = Path(__file__).resolve().parents[1]
NATIONAL = ROOT / "consortia" / "national.toml"


def _national_sample() -> Consortium:
    """Six members of each prefecture of the shipped national file (a real file, a quick sandbox)."""
    national = load_consortium(NATIONAL)
    data = national.model_dump()
    kept, seen = [], {}
    for raw, member in zip(data["members"], national.members, strict=True):
        code = member.prefecture.code if member.prefecture else None
        if seen.get(code, 0) < 6:
            seen[code] = seen.get(code, 0) + 1
            kept.append(raw)
    data["members"] = kept
    for member in data["members"]:
        member["connector"]["timeout_s"] = 10.0
    return Consortium.model_validate(data)


SAMPLE = _national_sample()


def _ids(*codes: str) -> list[str]:
    return [m.id for m in SAMPLE.members if m.prefecture is not None and m.prefecture.code in codes]


@pytest.fixture
async def broker_url() -> AsyncIterator[str]:
    sandbox, served = await start_sandbox(SAMPLE, latency_ms=1)
    runner = web.AppRunner(build_app(served), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
        await sandbox.stop()


async def _get(url: str, **params: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        return response.status, response.content_type, await response.read()


def test_the_sample_has_the_four_prefectures() -> None:
    assert [len(_ids(c)) for c in ("02", "28", "33", "43")] == [6, 6, 6, 6]


@pytest.mark.parametrize(
    ("params", "codes"),
    [
        ({"prefecture": "33"}, ("33",)),
        ({"prefecture": "岡山県"}, ("33",)),
        ({"prefecture": "岡山,熊本県"}, ("33", "43")),
        ({"region": "中国"}, ("33",)),
        ({"region": "近畿,九州"}, ("28", "43")),
        # Okayama and its neighbours: 兵庫県, 鳥取県, 広島県 (only Hyogo has members here).
        ({"near_prefecture": "33"}, ("28", "33")),
        ({"near_prefecture": "33", "region": "中国"}, ("33",)),  # parameters narrow each other
    ],
)
async def test_search_asks_exactly_the_members_of_the_places(broker_url: str, params: dict[str, str], codes: tuple[str, ...]) -> None:
    status, _, body = await _get(f"{broker_url}/api/v1/search", q="の", **params)
    assert status == 200, body
    assert [t["member"] for t in orjson.loads(body)["targets"]] == _ids(*codes)


async def test_places_and_members_intersect(broker_url: str) -> None:
    okayama, hyogo = _ids("33"), _ids("28")
    members = ",".join([okayama[0], okayama[2], hyogo[0]])
    status, _, body = await _get(f"{broker_url}/api/v1/search", q="の", members=members, prefecture="33")
    assert status == 200
    assert [t["member"] for t in orjson.loads(body)["targets"]] == [okayama[0], okayama[2]]


async def test_a_search_session_asks_the_same_members(broker_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{broker_url}/api/v1/searches", json={"q": "の", "region": "九州"}) as started:
            assert started.status == 201
            location = (await started.json())["links"]["self"]
        async with session.post(f"{broker_url}/api/v1/searches", json={"q": "の", "prefecture": "99"}) as refused:
            assert refused.status == 400 and (await refused.json())["errors"][0]["parameter"] == "prefecture"
        async with session.get(f"{broker_url}{location}", params={"version": 0, "timeout": 10}) as polled:
            diff = await polled.json()
    asked = sorted([*diff["running"], *(f["member"] for f in diff["finished"])])
    assert asked == sorted(_ids("43"))


async def test_the_stream_asks_the_same_members(broker_url: str) -> None:
    status, content_type, body = await _get(f"{broker_url}/api/v1/search/stream", q="の", near_prefecture="岡山県")
    assert status == 200 and content_type == "application/x-ndjson"
    lines = [orjson.loads(line) for line in body.splitlines()]
    final = lines[-1]
    assert final["type"] == "final"
    assert [t["member"] for t in final["targets"]] == _ids("28", "33")
    assert sorted(line["target"]["member"] for line in lines if line["type"] == "member") == sorted(_ids("28", "33"))


@pytest.mark.parametrize(
    ("params", "parameter", "detail"),
    [
        ({"prefecture": "48"}, "prefecture", "prefecture: unknown prefecture '48'"),
        ({"prefecture": "岡山市"}, "prefecture", "prefecture: unknown prefecture '岡山市'"),
        ({"region": "関西"}, "region", "region: unknown region '関西'"),
        ({"near_prefecture": "Okayama"}, "near_prefecture", "near_prefecture: unknown prefecture 'Okayama'"),
        ({"prefecture": ""}, "prefecture", "prefecture: unknown prefecture ''"),
    ],
)
async def test_unknown_places_are_a_problem_naming_the_parameter(
    broker_url: str, params: dict[str, str], parameter: str, detail: str
) -> None:
    for path in ("/api/v1/search", "/api/v1/search/stream"):
        status, content_type, body = await _get(f"{broker_url}{path}", q="の", **params)
        problem = orjson.loads(body)
        assert (status, content_type) == (400, "application/problem+json"), body
        assert [e["parameter"] for e in problem["errors"]] == [parameter]
        assert problem["errors"][0]["detail"].startswith(detail)


async def test_places_that_leave_nobody_are_a_problem_not_a_search_of_everyone(broker_url: str) -> None:
    # 鳥取県 is a real prefecture with no member in this consortium; an empty choice must never mean "all".
    status, _, body = await _get(f"{broker_url}/api/v1/search", q="の", prefecture="31")
    problem = orjson.loads(body)
    assert status == 400 and [e["parameter"] for e in problem["errors"]] == ["prefecture"]
    status, _, body = await _get(f"{broker_url}/api/v1/search", q="の", prefecture="33", members=_ids("28")[0])
    assert status == 400 and [e["parameter"] for e in orjson.loads(body)["errors"]] == ["prefecture", "members"]


def test_the_selector_alone() -> None:
    selector = MemberSelector(SAMPLE)
    assert selector.select(None, PlaceQuery()) is None
    assert selector.select([], PlaceQuery(region="東北")) == _ids("02")
    assert selector.select(None, PlaceQuery(prefecture="３３")) == _ids("33")  # full-width digits from a form
    with pytest.raises(UnknownPlace) as unknown:
        selector.select(None, PlaceQuery(prefecture="33,99"))
    assert unknown.value.parameter == "prefecture" and unknown.value.value == "99"
    with pytest.raises(NoMembersSelected):
        selector.select(None, PlaceQuery(region="関東"))


@pytest.mark.parametrize(
    ("file", "code", "region"),
    [("okayama", "33", "中国"), ("kumamoto", "43", "九州"), ("aomori", "02", "東北"), ("takarazuka", "28", "近畿")],
)
def test_the_shipped_consortia_say_where_their_members_are(file: str, code: str, region: str) -> None:
    """A national portal federating these files asks by place: every member carries its prefecture."""
    consortium = load_consortium(ROOT / "consortia" / f"{file}.toml")
    selector = MemberSelector(consortium)
    every = [m.id for m in consortium.members]
    assert [(m.prefecture.code if m.prefecture else None, m.region_name) for m in consortium.members] == [(code, region)] * len(every)
    assert selector.select(None, PlaceQuery(prefecture=code)) == every
    assert selector.select(None, PlaceQuery(near_prefecture=code)) == every  # a prefecture is near itself
    with pytest.raises(NoMembersSelected):
        selector.select(None, PlaceQuery(region="北海道"))


async def _cli(*args: str) -> tuple[int, str, str]:
    # Asynchronously: the sandbox serves from this test's own event loop.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _names(*codes: str) -> set[str]:
    return {m.name for m in SAMPLE.members if m.prefecture is not None and m.prefecture.code in codes}


async def test_the_cli_searches_by_place(tmp_path: Path) -> None:
    sandbox, served = await start_sandbox(SAMPLE, latency_ms=1)
    try:
        path = tmp_path / "sample.toml"
        path.write_text(tomli_w.dumps(served.model_dump(mode="json", exclude_none=True)), encoding="utf-8")
        code, out, err = await _cli("search", "の", "--consortium", str(path), "--no-sandbox", "--near-prefecture", "33", "--limit", "1")
        bad = await _cli("search", "の", "--consortium", str(path), "--no-sandbox", "--region", "関西")
    finally:
        await sandbox.stop()
    assert code == 0, err
    assert {n for n in _names("02", "28", "33", "43") if n in out} == _names("28", "33"), out
    assert bad[0] == 2 and bad[2].startswith("yokodan: region: unknown region '関西'"), bad
