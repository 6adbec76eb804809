"""The CLI as a person runs it: `yokodan search` and `yokodan demo` in real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_search_prints_a_readable_table() -> None:
    result = run_cli("search", "夏目漱石", "--limit", "5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "works from 13/13 members" in out
    assert "held by" in out and "on the shelf at:" in out
    assert "member status:" in out and "岡山県立図書館" in out
    assert out.count(" ok ") == 13 and "html_opac" in out and "ils_rest" in out


def test_search_rejects_bad_input_clearly() -> None:
    result = run_cli("search")
    assert result.returncode == 2 and "give a query" in result.stderr
    result = run_cli("search", "--isbn", "9784101010015")
    assert result.returncode == 2 and "not a valid ISBN" in result.stderr
    result = run_cli("search", "猫", "--consortium", "/nonexistent/consortium.toml")
    assert result.returncode == 2 and "consortium.toml" in result.stderr and "not found" in result.stderr


def test_demo_serves_merged_search(tmp_path: Path) -> None:
    port, sandbox_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "broker.cli", "demo", "--port", str(port), "--sandbox-port", str(sandbox_port),
            "--index-dir", str(tmp_path / "index"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        banner = ""
        while time.monotonic() < deadline and "Ctrl-C" not in banner:
            banner += proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner, banner
        query = urllib.parse.urlencode({"q": "夏目漱石"})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/search?{query}", timeout=30) as response:
            body = json.load(response)
        assert len(body["targets"]) == 13 and {t["state"] for t in body["targets"]} == {"ok"}
        members = {h["member"] for w in body["works"] for h in w["holdings"]}
        assert len(members) >= 5
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


# --- errors: a person's mistake exits 2 in one line per problem; a bug keeps its traceback --------


def test_broken_consortium_file_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    shipped = (ROOT / "consortia" / "okayama.toml").read_text(encoding="utf-8")
    broken = tmp_path / "okayama-broken.toml"
    broken.write_text(shipped.replace("lat = 34.645233", "lat = 134.645233", 1), encoding="utf-8")
    result = run_cli("serve", "--consortium", str(broken), "--port", str(_free_port()), "--no-index")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines == [line for line in lines if line.startswith(f"yokodan: {broken}: ")], result.stderr
    assert any("members[0].branches[0].lat" in line for line in lines), result.stderr
    assert "Traceback" not in result.stderr


def test_argument_errors_exit_2_naming_the_option() -> None:
    result = run_cli("search", "猫", "--base-url", "ftp://example.org")
    assert result.returncode == 2 and result.stderr.startswith("yokodan: --base-url: expected an http(s) URL")
    result = run_cli("search", "猫", "--page-size", "0")
    assert result.returncode == 2 and result.stderr.startswith("yokodan: --page-size: "), result.stderr
    result = run_cli("search", "猫", "--members", "nowhere-town")
    assert result.returncode == 2 and "unknown member ids: nowhere-town" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_index_directory_exits_2(tmp_path: Path) -> None:
    occupied = tmp_path / "index"
    occupied.write_text("not an index", encoding="utf-8")
    result = run_cli("serve", "--consortium", "consortia/okayama.toml", "--port", str(_free_port()),
                     "--index-dir", str(occupied))
    assert result.returncode == 2 and "not a directory" in result.stderr and "Traceback" not in result.stderr


_RAISE_INSIDE = """
import sys
import broker.cli as cli

def broken(*args, **kwargs):
    raise ValueError("an internal bug, not a user error")

cli.load_consortium = broken
sys.exit(cli.main(["search", "猫"]))
"""


def test_an_internal_value_error_is_a_traceback_not_exit_2() -> None:
    result = subprocess.run([sys.executable, "-c", _RAISE_INSIDE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: an internal bug, not a user error" in result.stderr
    assert "yokodan: an internal bug" not in result.stderr


def test_main_does_not_swallow_an_internal_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker import cli

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("internal")

    monkeypatch.setattr(cli, "load_consortium", broken)
    with pytest.raises(ValueError, match="internal"):
        cli.main(["search", "猫"])
