"""Portal API keys: `yk_<id>_<secret>`, kept in a TOML file as the id and a SHA-256 of the secret.

A key names a portal (a prefecture's 横断検索 page, a city site, a school system): who runs it and
how to reach them, the web origins its pages call from, its own token bucket (burst, per second),
optionally the members it may search and the consortium it is for. The file holds no secret:

    [[keys]]
    id = "3f9a0c1d2e4b"
    name = "岡山県 横断検索"
    contact = "toshokan@pref.okayama.example"
    origins = ["https://portal.example.jp"]
    burst = 40
    rate_per_s = 5.0
    secret_sha256 = "…"          # SHA-256 of the secret part, hex
    created_at = "2026-12-02T16:50:00+00:00"
    revoked_at = "…"             # set by `yokodan keys revoke`; the key then answers 401

Why SHA-256 and not scrypt/argon2: the secret is 32 random bytes (256 bits), not a password a
person chose, so no dictionary or brute force reaches it and a slow hash buys nothing; it would
cost tens of milliseconds of CPU on every request (a way to load the broker with wrong keys).
The same reasoning, and the same hash, as the ledger's patron tokens (broker/ledger/accounts.py).
The lookup is O(1): the id before the secret finds the one record, then one digest is compared
in constant time (`hmac.compare_digest`).

The running broker re-reads the file when it changes (checked at most once a second), so
`yokodan keys revoke` takes effect without a restart. A file that breaks while the broker runs is
logged and the keys read before stay in force; a broken file at start-up is a ConfigError (exit 2).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.consortium import WebOrigin
from yokodan.errors import BadRequest, ConfigError

log = logging.getLogger(__name__)

KEY_PREFIX = "yk_"
# The id is 12 hex digits; the secret is token_urlsafe(32): 43 characters of [A-Za-z0-9_-].
# A patron's bearer token (accounts.py: token_urlsafe(32), 43 characters) can never have this shape.
KEY_SHAPE = re.compile(r"yk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
DEFAULT_BURST = 40
DEFAULT_RATE_PER_S = 5.0
RELOAD_CHECK_S = 1.0


class PortalKeysFileError(ConfigError):
    """A keys file that cannot be used; one line per problem, naming the file and the key."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


class UnknownPortalKey(BadRequest):
    """`yokodan keys revoke` named a key id the file does not have."""


class InvalidKeySettings(BadRequest):
    """`yokodan keys create` was given settings a key cannot have (an origin with a path …)."""


class PortalKey(BaseModel):
    """One portal's key, as kept (never the secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    contact: Annotated[str, Field(max_length=200)] = ""
    origins: list[WebOrigin] = Field(default_factory=list)
    burst: int = Field(default=DEFAULT_BURST, ge=1, le=100_000)
    rate_per_s: float = Field(default=DEFAULT_RATE_PER_S, gt=0, le=10_000)
    members: list[Annotated[str, Field(min_length=1)]] | None = None  # None: every member
    consortium: str | None = None  # None: valid at any broker that reads this file
    secret_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def summary(self) -> str:
        """One line for `keys list`: everything but the digest."""
        state = f"revoked {self.revoked_at}" if self.revoked else "active"
        members = ",".join(self.members) if self.members else "all members"
        origins = " ".join(self.origins) or "no origins"
        where = f" consortium {self.consortium}" if self.consortium else ""
        return f"{self.id}  {state}  {self.name} <{self.contact}>  {self.burst}/{self.rate_per_s:g}/s  {members}  {origins}{where}"


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[PortalKey] = Field(default_factory=list)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """'yk_<id>_<secret>' -> (id, secret); None for anything else."""
    match = KEY_SHAPE.fullmatch(presented.strip())
    return (match[1], match[2]) if match else None


def looks_like_key(presented: str) -> bool:
    """Did the caller mean to present a portal key (so that a wrong one is a 401, never anonymous)?"""
    return presented.strip().startswith(KEY_PREFIX)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_key(
    name: str,
    *,
    contact: str = "",
    origins: Sequence[str] = (),
    burst: int = DEFAULT_BURST,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    members: Sequence[str] | None = None,
    consortium: str | None = None,
    taken: Sequence[str] = (),
) -> tuple[PortalKey, str]:
    """A new key record and the full key (`yk_<id>_<secret>`), which is shown once and never kept."""
    key_id = secrets.token_hex(6)
    while key_id in taken:
        key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    try:
        record = PortalKey(
            id=key_id, name=name, contact=contact, origins=list(origins), burst=burst, rate_per_s=rate_per_s,
            members=list(members) if members else None, consortium=consortium,
            secret_sha256=secret_digest(secret), created_at=_now(),
        )  # fmt: skip
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        raise InvalidKeySettings("\n".join(problems)) from None
    return record, f"{KEY_PREFIX}{key_id}_{secret}"


# --- the file -----------------------------------------------------------------------------------


def read_keys(path: Path) -> list[PortalKey]:
    """The keys of a file; a missing file has none (the first `keys create` makes it)."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PortalKeysFileError(path, [f"cannot read file: {exc.strerror or exc}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PortalKeysFileError(path, [f"not a TOML file: {exc}"]) from None
    try:
        keys = _KeysFile.model_validate(data).keys
    except ValidationError as exc:
        raise PortalKeysFileError(path, [_problem_line(e, data) for e in exc.errors(include_url=False)]) from None
    seen: set[str] = set()
    duplicates = [k.id for k in keys if k.id in seen or seen.add(k.id)]  # type: ignore[func-returns-value]
    if duplicates:
        raise PortalKeysFileError(path, [f"key id {d!r} appears twice" for d in duplicates])
    return keys


def _problem_line(error: dict, data: dict) -> str:
    loc = error["loc"]
    where = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    if len(loc) >= 2 and loc[0] == "keys" and isinstance(loc[1], int):
        try:
            where += f" (key {data['keys'][loc[1]].get('id', '?')})"
        except (KeyError, IndexError, AttributeError, TypeError):
            pass
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (two `keys create` at once must not lose one of the keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, keys: Sequence[PortalKey]) -> None:
    # Written beside and renamed over: a broker re-reading the file sees the old or the new one, never half.
    data = {"keys": [k.model_dump(exclude_none=True) for k in keys]}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"# Yokodan portal keys: ids and SHA-256 digests only. Edit with `yokodan keys`.\n")
        fh.write(tomli_w.dumps(data).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def add_key(path: Path, make: Callable[[Sequence[str]], tuple[PortalKey, str]]) -> tuple[PortalKey, str]:
    """Create a key with `make(taken_ids)` and append it to the file, under the file's lock."""
    with _locked(path):
        keys = read_keys(path)
        record, full = make([k.id for k in keys])
        _write(path, [*keys, record])
    return record, full


def revoke_key(path: Path, key_id: str) -> PortalKey:
    with _locked(path):
        keys = read_keys(path)
        found = next((k for k in keys if k.id == key_id), None)
        if found is None:
            raise UnknownPortalKey(f"{path}: no key with id {key_id!r}")
        if found.revoked:
            return found
        revoked = found.model_copy(update={"revoked_at": _now()})
        _write(path, [revoked if k.id == key_id else k for k in keys])
    return revoked


# --- the store a broker checks requests against ------------------------------------------------------


class KeyStore:
    """The keys valid at this broker, by id; re-read when the file changes.

    `path=None`: no keys file, so every presented key is invalid (401), never ignored.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        consortium_id: str,
        member_ids: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.consortium_id = consortium_id
        self.member_ids = frozenset(member_ids)
        self.clock = clock
        self._keys: dict[str, PortalKey] = {}
        self._origins: frozenset[str] = frozenset()
        self._stamp: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the file read
        self._checked_at = -float("inf")
        if path is not None:
            self._load(strict=True)

    def verify(self, presented: str) -> PortalKey | None:
        """The key record when `presented` is a live key valid here; None otherwise."""
        parts = split_key(presented)
        if parts is None:
            return None
        self._maybe_reload()
        record = self._keys.get(parts[0])
        if record is None or record.revoked:
            return None
        if not hmac.compare_digest(record.secret_sha256, secret_digest(parts[1])):
            return None
        return record

    def key_origins(self) -> frozenset[str]:
        """Every live key's origins (a preflight carries no key, so it is answered for any of them)."""
        self._maybe_reload()
        return self._origins

    def __len__(self) -> int:
        return sum(not k.revoked for k in self._keys.values())

    def _maybe_reload(self) -> None:
        if self.path is None or self.clock() - self._checked_at < RELOAD_CHECK_S:
            return
        self._checked_at = self.clock()
        if self._file_stamp() != self._stamp:
            self._load(strict=False)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self, *, strict: bool) -> None:
        assert self.path is not None
        stamp = self._file_stamp()
        try:
            keys = read_keys(self.path)
            mine = {k.id: k for k in keys if k.consortium in (None, self.consortium_id)}
            problems = [
                f"key {k.id}: members {sorted(set(k.members) - self.member_ids)} are not in consortium {self.consortium_id!r}"
                for k in mine.values()
                if k.members and set(k.members) - self.member_ids
            ]
            if problems:
                raise PortalKeysFileError(self.path, problems)
        except PortalKeysFileError as exc:
            if strict:
                raise
            # The keys read before stay in force: dropping them would refuse every portal at once.
            log.error("portal keys file not reloaded, the previous keys stay in force: %s", exc)
            self._stamp = stamp
            return
        self._keys = mine
        self._origins = frozenset(o for k in mine.values() if not k.revoked for o in k.origins)
        self._stamp = stamp
