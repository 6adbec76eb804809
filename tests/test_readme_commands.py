"""The README's "Two commands" section, run as written on real sockets.

Every command in a ```sh block of the README is classified here; one this file does not know fails
the suite, so the README cannot gain a command that nothing runs. The demo is started with the
README's own script (on free ports, so parallel runs and a demo already running do not collide),
its curl lines are run with curl, and the one-off `yokodan search` line with the venv's yokodan.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.cli import DEFAULT_PORT
from tests.test_import_layers import ALLOWED

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEMO_SCRIPT = ["bash", "scripts/demo.sh"]
TEST_SCRIPT = ["bash", "scripts/test.sh"]


@dataclass
class ReadmeCommands:
    demo: list[list[str]] = field(default_factory=list)
    test: list[list[str]] = field(default_factory=list)
    curl: list[list[str]] = field(default_factory=list)
    cli: list[list[str]] = field(default_factory=list)


def readme_commands(markdown: str) -> ReadmeCommands:
    commands = ReadmeCommands()
    for block in re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.S | re.M):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words == DEMO_SCRIPT:
                commands.demo.append(words)
            elif words == TEST_SCRIPT:
                commands.test.append(words)
            elif words[0] == "curl":
                commands.curl.append(words)
            elif Path(words[0]).name == "yokodan":
                commands.cli.append(words)
            else:
                raise AssertionError(f"README command not covered by {Path(__file__).name}: {line!r}")
    return commands


def test_readme_has_two_commands_and_ci_runs_the_test_one() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert commands.demo == [DEMO_SCRIPT] and commands.test == [TEST_SCRIPT]
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines() if line.startswith("exec ")]
    assert [shlex.split(line)[1:] for line in ci_lines] == commands.test


def test_readme_import_rule_is_the_one_the_layer_test_enforces() -> None:
    section = README.read_text(encoding="utf-8").split("## Rooms and the import rule", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    rooms_above: list[str] = []
    for room, may_import in re.findall(r"^\| `(\w+)/` \|[^|]*\| ([^|]*) \|$", section, flags=re.M):
        if may_import.startswith("nothing"):
            documented[room] = set()
        elif may_import.startswith("everything"):
            documented[room] = set(rooms_above)
        else:
            documented[room] = set(re.findall(r"`(\w+)`", may_import))
        rooms_above.append(room)
    assert documented == {room: set(allowed) - {room} for room, allowed in ALLOWED.items()}


# --- running them ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtualenv the scripts see as active: this one (scripts/test.sh runs pytest in .venv), or a
    fresh one on top of this interpreter's packages, so a test never installs into a shared Python."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    created = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(created)], check=True, timeout=300)
    return created


def _environment(venv: Path) -> dict[str, str]:
    return {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONUNBUFFERED": "1"}


@dataclass
class RunningDemo:
    port: int
    banner: str


@pytest.fixture
def demo(venv: Path, tmp_path: Path) -> Iterator[RunningDemo]:
    [command] = readme_commands(README.read_text(encoding="utf-8")).demo
    port, sandbox_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--sandbox-port", str(sandbox_port), "--index-dir", str(tmp_path / "index")],
        cwd=ROOT, env=_environment(venv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: pip and the demo stop together
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    banner = ""
    deadline = time.monotonic() + 240  # a fresh venv pip-installs the package first
    try:
        while "Ctrl-C" not in banner:
            assert proc.poll() is None, f"the demo exited with {proc.returncode}:\n{banner}"
            assert time.monotonic() < deadline, f"the demo did not start:\n{banner}"
            try:
                banner += lines.get(timeout=1)
            except queue.Empty:
                continue
        yield RunningDemo(port, banner)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_readme_commands_work_as_written(demo: RunningDemo, venv: Path, tmp_path: Path) -> None:
    assert shutil.which("curl"), "the README's commands need curl (scripts/test.sh installs it)"
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert f"http://127.0.0.1:{demo.port}" in demo.banner
    assert len(commands.curl) == 2 and len(commands.cli) == 1
    for curl in commands.curl:
        readme_address = f"127.0.0.1:{DEFAULT_PORT}"  # the README talks to the demo's default port
        assert any(readme_address in word for word in curl), curl
        body_file = tmp_path / "body"
        result = subprocess.run(
            [*(w.replace(readme_address, f"127.0.0.1:{demo.port}") for w in curl),
             "-sS", "--max-time", "60", "-o", str(body_file), "-w", "%{http_code} %{content_type}"],
            capture_output=True, text=True, timeout=90,
        )
        assert result.returncode == 0, result.stderr
        status, content_type = result.stdout.split(" ", 1)
        assert (status, content_type.split(";")[0]) == ("200", "application/json"), (curl, result.stdout)
        answer = json.loads(body_file.read_bytes())
        if "/api/v1/search" in curl[1]:
            assert {t["state"] for t in answer["targets"]} == {"ok"} and len(answer["targets"]) == 13
            assert any("夏目" in author for work in answer["works"] for author in work["authors"])
        else:
            assert "/api/v1/members" in curl[1] and len(answer["members"]) == 13
    for cli in commands.cli:
        # `.venv/bin/yokodan` as written when pytest runs in the repository's .venv (scripts/test.sh)
        written = ROOT / cli[0]
        executable = str(written) if written.resolve().parent == (venv / "bin").resolve() else str(venv / "bin" / "yokodan")
        result = subprocess.run([executable, *cli[1:]], cwd=ROOT, env=_environment(venv), capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "works from 13/13 members" in result.stdout and "夏目" in result.stdout
