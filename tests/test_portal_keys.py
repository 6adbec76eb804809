"""Portal API keys over real sockets: the CLI, 401s, per-key buckets, anonymous search per consortium,
the pages' pass, member subsets, and keys that never reach a log line."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from broker.admission import AdmissionSettings
from broker.portals.first_party import PASS_COOKIE
from broker.portals.keys import KEY_SHAPE, KeyStore, PortalKeysFileError, add_key, new_key, read_keys, revoke_key
from tests.edge_helpers import get_json, running_broker, session_from, wrong_key

REPO = Path(__file__).resolve().parents[1]
SEARCH = {"q": "夏目漱石", "members": "okayama-city"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`yokodan …` from this worktree's code (never the installed console script)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def create(path: Path, name: str, **options: str) -> str:
    args = ["keys", "create", "--file", str(path), "--name", name]
    for option, value in options.items():
        for one in value.split(" ") if option == "origin" else [value]:
            args += [f"--{option}", one]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# --- the file and the CLI ---------------------------------------------------------------------------


def test_cli_prints_the_key_once_and_the_file_keeps_only_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    done = cli("keys", "create", "--file", str(path), "--name", "岡山県 横断検索", "--contact", "lib@example.jp",
               "--origin", "https://Portal.Example.jp/", "--burst", "7", "--rate", "0.5", "--members", "okayama-city,bizen-city")  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    match = KEY_SHAPE.fullmatch(key)
    assert match is not None and done.stdout.count(key) == 1 and key not in done.stderr
    secret = match[2]
    text = path.read_text()
    assert secret not in text and key not in text
    (record,) = read_keys(path)
    assert (record.id, record.name, record.contact, record.origins, record.burst, record.rate_per_s, record.members) == (
        match[1], "岡山県 横断検索", "lib@example.jp", ["https://portal.example.jp"], 7, 0.5, ["okayama-city", "bizen-city"]
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    listed = cli("keys", "list", "--file", str(path))
    assert listed.returncode == 0 and record.id in listed.stdout and "active" in listed.stdout and secret not in listed.stdout
    revoked = cli("keys", "revoke", "--file", str(path), record.id)
    assert revoked.returncode == 0 and read_keys(path)[0].revoked
    assert "revoked" in cli("keys", "list", "--file", str(path)).stdout
    unknown = cli("keys", "revoke", "--file", str(path), "000000000000")
    assert unknown.returncode == 2 and "no key with id '000000000000'" in unknown.stderr


def test_cli_refuses_bad_settings_by_name(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    done = cli("keys", "create", "--file", str(path), "--name", "x", "--origin", "https://portal.example.jp/search")
    assert done.returncode == 2 and "origins" in done.stderr and "scheme://host" in done.stderr and not path.exists()
    done = cli("keys", "create", "--file", str(path), "--name", "x", "--rate", "0")
    assert done.returncode == 2 and "rate_per_s" in done.stderr


def test_a_broken_file_names_the_key_and_field(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('[[keys]]\nid = "0123456789ab"\nname = "x"\nburst = 0\nsecret_sha256 = "00"\ncreated_at = "now"\n')
    with pytest.raises(PortalKeysFileError) as caught:
        read_keys(path)
    assert {line.split(": ", 1)[1].split(":")[0] for line in str(caught.value).splitlines()} == {
        "keys[0].burst (key 0123456789ab)", "keys[0].secret_sha256 (key 0123456789ab)"
    }
    with pytest.raises(PortalKeysFileError):  # a serve start-up with it fails, exit 2 in the CLI
        KeyStore(path, consortium_id="okayama", member_ids=["okayama-city"])


def test_store_verifies_by_id_in_constant_shape_and_rereads_a_changed_file(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "keys.toml"
    record, key = add_key(path, lambda taken: new_key("a", taken=taken))
    store = KeyStore(path, consortium_id="okayama", member_ids=["okayama-city"], clock=lambda: now[0])
    assert store.verify(key) == record
    assert store.verify(wrong_key(key)) is None  # wrong secret
    assert store.verify("yk_" + "f" * 12 + key[15:]) is None  # unknown id
    revoke_key(path, record.id)
    assert store.verify(key) == record  # not re-read within the second
    now[0] = 1.5
    assert store.verify(key) is None
    # A file broken while running: the keys read before stay in force, and it is logged.
    other, other_key = add_key(path, lambda taken: new_key("b", taken=taken))
    now[0] = 3.0
    assert store.verify(other_key) == other
    path.write_text("not toml [")
    now[0] = 4.5
    assert store.verify(other_key) == other


# --- over sockets ------------------------------------------------------------------------------------


async def test_a_key_searches_and_a_wrong_or_revoked_key_is_401_never_anonymous(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "city portal")
    elsewhere = create(path, "another consortium's portal", consortium="kumamoto")
    async with running_broker(portal_keys=path) as broker, aiohttp.ClientSession() as session:
        url = f"{broker.url}/api/v1/search"
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-Api-Key": key}):
            async with session.get(url, params=SEARCH, headers=headers) as response:
                assert response.status == 200 and response.headers["RateLimit-Policy"].startswith('"key";')
        wrong = [key[:-2] + ("xx" if not key.endswith("xx") else "yy"), "yk_" + "0" * 12 + key[15:], "yk_short", elsewhere]
        for bad in wrong:
            for headers in ({"Authorization": f"Bearer {bad}"}, {"X-Api-Key": bad}):
                status, head, body = await _get(session, url, SEARCH, headers)
                assert (status, body["reason"], head["Content-Type"]) == (401, "invalid_api_key", "application/problem+json")
                assert head["WWW-Authenticate"] == 'Bearer realm="yokodan", error="invalid_token"'
        # a wrong key is refused on every route, not only on searches
        status, _, body = await _get(session, f"{broker.url}/api/v1/members", None, {"X-Api-Key": wrong[0]})
        assert (status, body["reason"]) == (401, "invalid_api_key")
        # a patron's bearer token (not yk_) on a search is not a portal key: anonymous, as before
        assert (await _get(session, url, SEARCH, {"Authorization": "Bearer " + "a" * 43}))[0] == 200
        assert cli("keys", "revoke", "--file", str(path), key[3:15]).returncode == 0
        await asyncio.sleep(1.1)  # the store looks at the file at most once a second
        status, _, body = await _get(session, url, SEARCH, {"X-Api-Key": key})
        assert (status, body["reason"]) == (401, "invalid_api_key")
    assert broker.sandbox_requests.paths.count("/okayama-city/sru") == 3  # two keyed searches, one anonymous


async def test_two_keys_have_their_own_buckets_and_anonymous_callers_keep_the_address_bucket(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    tight = create(path, "tight", burst="2", rate="0.01")
    roomy = create(path, "roomy", burst="3", rate="1")
    settings = AdmissionSettings(client_burst=2, client_rate_per_s=0.01)
    async with running_broker(settings, portal_keys=path) as broker, session_from("127.0.0.3") as session:
        url = f"{broker.url}/api/v1/search"
        tight_answers = [await _get(session, url, SEARCH, {"X-Api-Key": tight}) for _ in range(3)]
        assert [a[0] for a in tight_answers] == [200, 200, 429]
        status, head, body = tight_answers[2]
        assert (body["status"], body["reason"], head["Retry-After"]) == (429, "rate_limited", "100")
        assert (head["RateLimit-Policy"], head["RateLimit"]) == ('"key";q=2;w=200', '"key";r=0;t=200')
        assert "with this API key" in body["detail"]
        roomy_answers = [await _get(session, url, SEARCH, {"X-Api-Key": roomy}) for _ in range(2)]
        assert [(a[0], a[1]["RateLimit-Remaining"], a[1]["RateLimit-Policy"]) for a in roomy_answers] == [
            (200, "2", '"key";q=3;w=3'), (200, "1", '"key";q=3;w=3')]  # fmt: skip
        # the same address without a key: its own bucket, untouched by the keys' searches
        anonymous = [await _get(session, url, SEARCH) for _ in range(3)]
        assert [(a[0], a[1]["RateLimit-Policy"]) for a in anonymous] == [
            (200, '"address";q=2;w=200'), (200, '"address";q=2;w=200'), (429, '"address";q=2;w=200')]  # fmt: skip
    assert broker.sandbox_requests.paths.count("/okayama-city/sru") == 6  # no refusal asked a member


async def test_anonymous_search_off_needs_a_key_on_every_search_surface_and_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "portal")

    async def future_route(request: web.Request) -> web.Response:
        return web.json_response({"suggest": []})

    def setup(app: web.Application) -> None:  # a route added later under a search prefix inherits the rule
        app.router.add_get("/api/v1/search/suggest", future_route)

    surfaces = [
        ("GET", "/api/v1/search", SEARCH, None, 200), ("GET", "/api/v1/search/stream", SEARCH, None, 200),
        ("GET", "/sru", {"operation": "searchRetrieve", "version": "1.2", "query": "title=こころ"}, None, 200),
        ("GET", "/api/v1/check", {"isbn": "9784101010137", "systemid": "okayama-city", "callback": "no"}, None, 200),
        ("POST", "/api/v1/searches", None, {"title": "こころ"}, 201),  # a search session
        ("GET", "/api/v1/search/suggest", None, None, 200),
    ]  # fmt: skip
    for anonymous_search in (False, True):  # switched on, the same requests answer: the rule is what refuses
        async with running_broker(access={"anonymous_search": anonymous_search}, portal_keys=path, setup=setup) as broker:
            async with aiohttp.ClientSession() as session:
                for method, route, params, body_json, ok in surfaces:
                    async with session.request(method, broker.url + route, params=params, json=body_json) as response:
                        body = await response.read()
                        if anonymous_search:
                            assert response.status == ok, route
                            continue
                        assert response.status == 401, route
                        assert response.headers["WWW-Authenticate"] == 'Bearer realm="yokodan"'
                        assert response.headers["Content-Type"] == "application/problem+json"
                        assert b'"reason":"api_key_required"' in body
                    async with session.request(
                        method, broker.url + route, params=params, json=body_json, headers={"X-Api-Key": key}
                    ) as response:
                        assert response.status == ok, route
                # the rest stays open
                for route in ("/api/v1/members", "/healthz", "/api/v1/openapi.json"):
                    assert (await _get(session, broker.url + route))[0] == 200


async def test_the_pages_keep_searching_with_their_first_party_pass() -> None:
    async with running_broker(access={"anonymous_search": False}) as broker:
        stream = f"{broker.url}/api/v1/search/stream"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as page:
            async with page.get(f"{broker.url}/?q=夏目漱石") as response:
                assert response.status == 200
                cookie = response.cookies[PASS_COOKIE]
                assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
            async with page.get(stream, params=SEARCH) as response:
                lines = (await response.read()).splitlines()
                assert response.status == 200 and b'"type":"final"' in lines[-1]
        async with aiohttp.ClientSession() as outsider:
            forged = {"Cookie": f"{PASS_COOKIE}=9999999999.{'0' * 64}"}
            assert (await _get(outsider, stream, SEARCH, forged))[0] == 401
            assert (await _get(outsider, stream, SEARCH))[0] == 401
    async with running_broker() as broker, aiohttp.ClientSession() as page:  # anonymous allowed: no pass needed, none set
        async with page.get(f"{broker.url}/") as response:
            assert PASS_COOKIE not in response.cookies


async def test_a_key_for_some_members_searches_only_those(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key = create(path, "school", members="okayama-city,tamano-city")
    async with running_broker(portal_keys=path) as broker, aiohttp.ClientSession() as session:
        url = f"{broker.url}/api/v1/search"
        status, _, body = await _get(session, url, {"q": "夏目漱石"}, {"X-Api-Key": key})
        assert status == 200 and [t["member"] for t in body["targets"]] == ["okayama-city", "tamano-city"]
        status, _, body = await _get(session, url, {"q": "猫", "members": "okayama-city,bizen-city"}, {"X-Api-Key": key})
        assert (status, body["reason"], body["errors"]) == (403, "members_not_allowed", [{"parameter": "members", "detail": "bizen-city"}])
        status, _, body = await _get(session, url, {"q": "猫", "members": "atlantis"}, {"X-Api-Key": key})
        assert status == 400  # unknown stays unknown
        sru = await session.get(f"{broker.url}/sru", params={"version": "1.2", "operation": "searchRetrieve", "query": "title=こころ"},
                                headers={"X-Api-Key": key})  # fmt: skip
        text = await sru.text()
        assert sru.status == 200 and 'member="okayama-city"' in text and 'member="bizen-city"' not in text
        # a search session keeps to the same subset, and its POST spends the key's token, not the address's
        async with session.post(f"{broker.url}/api/v1/searches", json={"q": "猫", "members": ["bizen-city"]},
                                headers={"X-Api-Key": key}) as refused:  # fmt: skip
            assert refused.status == 403 and (await refused.json())["reason"] == "members_not_allowed"
        async with session.post(f"{broker.url}/api/v1/searches", json={"q": "夏目漱石"}, headers={"X-Api-Key": key}) as started:
            assert started.status == 201 and started.headers["RateLimit-Policy"].startswith('"key"')
            location = (await started.json())["links"]["self"]
        async with session.get(f"{broker.url}{location}", params={"version": 0, "timeout": 10}) as polled:
            diff = await polled.json()
        assert sorted([*diff["running"], *(f["member"] for f in diff["finished"])]) == ["okayama-city", "tamano-city"]


async def test_keys_never_reach_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "keys.toml"
    key = create(path, "portal")
    secret = KEY_SHAPE.fullmatch(key)[2]  # type: ignore[index]
    async with running_broker(access={"anonymous_search": False}, portal_keys=path) as broker:
        async with aiohttp.ClientSession() as session:
            await _get(session, f"{broker.url}/api/v1/search", SEARCH, {"Authorization": f"Bearer {key}"})
            await _get(session, f"{broker.url}/api/v1/search/stream", SEARCH, {"X-Api-Key": key})
            await _get(session, f"{broker.url}/api/v1/search", SEARCH, {"X-Api-Key": wrong_key(key)})
            await _get(session, f"{broker.url}/api/v1/check", {"appkey": key, "isbn": "9784101010137", "systemid": "okayama-city", "callback": "no"})
            await _get(session, f"{broker.url}/api/v1/check", {"appkey": wrong_key(key), "isbn": "9784101010137", "systemid": "okayama-city"})
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    # the refusals are logged, by key id only (so the check below looked at real lines)
    assert [r.getMessage() for r in caplog.records if r.name == "broker.portals.access"] == [
        f"refused API key {key[3:15]} from 127.0.0.1"] * 2
    assert secret not in logged and secret[:-1] not in logged


async def _get(session: aiohttp.ClientSession, url: str, params: dict | None = None, headers: dict | None = None):  # type: ignore[no-untyped-def]
    async with session.get(url, params=params, headers=headers) as response:
        import orjson

        raw = await response.read()
        json_types = ("application/json", "application/problem+json")
        body = orjson.loads(raw) if raw and response.headers.get("Content-Type", "").startswith(json_types) else {}
        return response.status, response.headers, body
