"""The one "needs shared data" helper (tests/conftest.py): skip with a message locally, fail under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parents[1]

INNER_TEST = '''
import pytest

@pytest.mark.shared_data("no-such-dir/never.csv")
def test_needs_a_missing_file():
    pass

@pytest.mark.shared_data
def test_needs_the_data_directory():
    pass
'''


def _run_inner(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """A pytest session of its own whose conftest is the project's hook, as the suite loads it."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_setup  # noqa: F401\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    shared_data: needs ../shared\n")
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_marker_fails_under_ci_when_a_path_is_missing(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout
    # The check runs in setup (before the test's fixtures do any work), so pytest counts an error.
    assert "ERROR test_inner.py::test_needs_a_missing_file" in result.stdout
    assert "no-such-dir/never.csv not found (CI=true" in result.stdout
    assert "skipped" not in result.stdout


def test_marker_skips_with_a_message_outside_ci(tmp_path: Path) -> None:
    result = _run_inner(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout
    assert "SKIPPED" in result.stdout and "no-such-dir/never.csv not found" in result.stdout
    assert "failed" not in result.stdout


def test_helper_passes_when_the_paths_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "leaflet.txt").write_text("TEL", encoding="utf-8")
    monkeypatch.setattr(conftest, "SHARED_DIR", tmp_path)
    monkeypatch.setenv("CI", "true")
    conftest.require_shared_data()  # ../shared/data by default
    conftest.require_shared_data("seeds/leaflet.txt", "data")


def test_helper_fails_under_ci_and_skips_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "SHARED_DIR", tmp_path / "shared")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="data not found"):
        conftest.require_shared_data()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="data not found"):
        conftest.require_shared_data()
