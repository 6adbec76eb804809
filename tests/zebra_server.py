"""A real Index Data Zebra 2.2.7 (Debian `idzebra-2.0` + `yaz`) for connector tests.

`start_zebra()` copies the project's own register configuration (tests/zebra/conf),
converts and indexes MARC records with `zebraidx` and serves them with `zebrasrv`
over SRU (and Z39.50) on 127.0.0.1 and a free port. Startup is well under 3 s
for a few hundred records.

Pytest fixtures (session scope), to be imported into tests/conftest.py:

    from tests.zebra_server import zebra, zebra_ndl  # noqa: F401  (pytest fixtures)

* `zebra`     - tests/zebra/records/*.marcxml (17 Japanese records with 852/952 holdings)
* `zebra_ndl` - the 233 real NDL MARC21 records in ../shared/data (ISO2709, UTF-8)

When `zebrasrv` is missing (or ../shared/data for `zebra_ndl`) they skip, except
when CI=true: CI installs the packages, so there a missing server is a failure.

Zebra quirks to know (see ../shared/catalogue-servers/README.md):
* always send maximumRecords (the default is 0 records); nextRecordPosition is never sent;
* `==` is the complete-field relation (CQL 1.1 `exact` silently becomes a keyword search);
* the SRU path must be /Default (anything else is an HTTP 404 with an HTML body);
* Content-Type is text/xml without a charset (the body is UTF-8).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
CONF_DIR = TESTS_DIR / "zebra" / "conf"
RECORDS_DIR = TESTS_DIR / "zebra" / "records"
# ../shared/data beside the repository (never an absolute path: CI clones elsewhere).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NDL_MARC = SHARED_DATA / "bibliographic" / "ndl_jpmarc21_enju_233.mrc"
NDL_CSV = SHARED_DATA / "bibliographic" / "ndl_jpmarc21_enju_233.csv"

DATABASE = "Default"
HOST = "127.0.0.1"
MISSING_PACKAGE = "Debian package idzebra-2.0 not installed (CI installs it)"
STARTUP_TIMEOUT_S = 10.0


class ZebraError(RuntimeError):
    """Zebra could not be configured, indexed or started; the message carries its log."""


@dataclass
class ZebraServer:
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    records: int  # records handed to zebraidx
    startup_s: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def host(self) -> str:
        return HOST

    @property
    def database(self) -> str:
        return DATABASE

    @property
    def sru_url(self) -> str:
        return f"http://{HOST}:{self.port}/{DATABASE}"

    @property
    def z3950(self) -> str:
        return f"{HOST}:{self.port}/{DATABASE}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """zebrasrv's request log (one line per request): handy in assertion messages."""
        path = self.workdir / "zebrasrv.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop zebrasrv and every per-connection child it forked (its process group)."""
        if self._stopped:
            return
        self._stopped = True
        _kill_group(self.process)

    def __enter__(self) -> ZebraServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def zebra_available() -> bool:
    return all(shutil.which(tool) for tool in ("zebrasrv", "zebraidx", "yaz-marcdump"))


def module_path() -> str:
    """Directory of Zebra's record filter modules (multiarch path on Debian)."""
    candidates = sorted(glob.glob("/usr/lib/*/idzebra-2.0/modules")) + ["/usr/lib/idzebra-2.0/modules"]
    for candidate in candidates:
        if Path(candidate, "mod-dom.so").exists():
            return candidate
    raise ZebraError("Zebra's mod-dom.so not found (is idzebra-2.0 installed?)")


def free_port() -> int:
    """A port the kernel just handed out; released again so zebrasrv can bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
        return True
    return False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    # Forked per-connection children may outlive the listener for a moment.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _count_records(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(line.lstrip().startswith(b"<record") for line in handle)


def _record_files(records_paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for item in records_paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise ZebraError(f"no such records file or directory: {path}")
    if not files:
        raise ZebraError(f"no record files in {list(map(str, records_paths))}")
    return files


def _prepare_data(files: list[Path], data_dir: Path) -> int:
    """MARCXML is indexed as it is; ISO2709 is converted to UTF-8 MARCXML first."""
    total = 0
    for number, source in enumerate(files, 1):
        with source.open("rb") as handle:
            head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        target = data_dir / f"{number:04d}-{source.stem}.xml"
        if head.startswith(b"<"):
            shutil.copyfile(source, target)
        else:
            # ISO2709 (MARC21 binary). Zebra's DOM filter reads XML only.
            with target.open("wb") as out:
                result = subprocess.run(
                    ["yaz-marcdump", "-i", "marc", "-o", "marcxml", "-f", "utf-8", "-t", "utf-8", str(source)],
                    stdout=out,
                    stderr=subprocess.PIPE,
                    check=False,
                )
            if result.returncode != 0:
                raise ZebraError(f"yaz-marcdump failed on {source}: {result.stderr.decode(errors='replace')}")
        count = _count_records(target)
        if count == 0:
            raise ZebraError(f"no MARC records in {source}")
        total += count
    return total


def _install_conf(workdir: Path, port: int) -> Path:
    conf = workdir / "conf"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree(CONF_DIR, conf)
    substitutions = {"@WORKDIR@": str(workdir), "@PORT@": str(port), "@MODULE_PATH@": module_path()}
    for name in ("zebra.cfg", "yazgfs.xml"):
        path = conf / name
        text = path.read_text(encoding="utf-8")
        for placeholder, value in substitutions.items():
            text = text.replace(placeholder, value)
        path.write_text(text, encoding="utf-8")
    return conf


def _index(workdir: Path, conf: Path) -> None:
    log = workdir / "zebraidx.log"
    with log.open("wb") as out:
        for args in (["init"], ["-n", "update", str(workdir / "data")]):
            result = subprocess.run(
                ["zebraidx", "-c", str(conf / "zebra.cfg"), "-d", DATABASE, *args],
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
            if result.returncode != 0:
                raise ZebraError(f"zebraidx {' '.join(args)} failed:\n{log.read_text(errors='replace')[-3000:]}")
    problems = [line for line in log.read_text(errors="replace").splitlines() if "[fatal]" in line or "[warn]" in line]
    if problems:
        raise ZebraError("zebraidx reported problems:\n" + "\n".join(problems[:10]))


def _serve(workdir: Path, conf: Path, port: int) -> subprocess.Popen[bytes]:
    srvlog = workdir / "zebrasrv.log"
    srvlog.write_bytes(b"")
    with (workdir / "zebrasrv.out").open("wb") as out:
        process = subprocess.Popen(
            ["zebrasrv", "-f", str(conf / "yazgfs.xml"), "-l", str(srvlog)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills the forked children too
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _port_open(port):
            return process
        time.sleep(0.02)
    _kill_group(process)
    output = (workdir / "zebrasrv.out").read_text(errors="replace") + srvlog.read_text(errors="replace")
    raise ZebraError(f"zebrasrv did not open port {port} (exit {process.returncode}):\n{output[-3000:]}")


def start_zebra(
    tmp_dir: str | os.PathLike[str],
    records_paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    port: int | None = None,
) -> ZebraServer:
    """Index `records_paths` (MARCXML or ISO2709 files or directories) and serve them.

    Everything (conf, converted data, register, logs) goes under `tmp_dir`.
    Returns a running server; call `.stop()` (or use it as a context manager).
    """
    if not zebra_available():
        raise ZebraError(MISSING_PACKAGE)
    started = time.monotonic()
    if isinstance(records_paths, (str, os.PathLike)):
        records_paths = [records_paths]
    workdir = Path(tmp_dir).resolve()
    if any(ch in str(workdir) for ch in " :"):
        raise ZebraError(f"Zebra's config syntax cannot take spaces or colons in paths: {workdir}")
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "db", "tmp"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
        (workdir / sub).mkdir()

    records = _prepare_data(_record_files(records_paths), workdir / "data")
    # The port only goes into yazgfs.xml, so indexing happens once even if a retry is needed.
    conf = _install_conf(workdir, port or 0)
    _index(workdir, conf)

    attempts = 1 if port is not None else 3
    last_error: ZebraError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        conf = _install_conf(workdir, chosen)
        try:
            process = _serve(workdir, conf, chosen)
        except ZebraError as error:  # e.g. another process took the free port meanwhile
            last_error = error
            continue
        return ZebraServer(
            workdir=workdir,
            port=chosen,
            process=process,
            records=records,
            startup_s=time.monotonic() - started,
        )
    assert last_error is not None
    raise last_error


# ---------------------------------------------------------------- pytest fixtures


def _missing(reason: str) -> None:
    """Skip locally; fail on CI, which installs the packages and has ../shared beside the clone."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def zebra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZebraServer]:
    """Zebra serving tests/zebra/records (17 Japanese records with 852/952 holdings)."""
    if not shutil.which("zebrasrv"):
        _missing(MISSING_PACKAGE)
    server = start_zebra(tmp_path_factory.mktemp("zebra"), [RECORDS_DIR])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def zebra_ndl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZebraServer]:
    """Zebra serving the 233 real NDL MARC21 records from ../shared/data (ISO2709)."""
    if not NDL_MARC.is_file():
        _missing(f"../shared/data is not beside the repository (looked for {NDL_MARC})")
    if not shutil.which("zebrasrv"):
        _missing(MISSING_PACKAGE)
    server = start_zebra(tmp_path_factory.mktemp("zebra-ndl"), [NDL_MARC])
    try:
        yield server
    finally:
        server.stop()
