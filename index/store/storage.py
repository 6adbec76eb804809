"""The union index's directory: create it, recognise it, refuse what is not ours.

Engine-neutral; the engine's own files and locks are the back end's (whoosh_backend.py).
A marker file names the schema version: an index built by another version would answer
wrongly (different terms), so opening it is refused, not guessed at. It is a cache: every
refusal tells the operator that deleting the directory rebuilds it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import orjson

from index.store.results import UnionIndexError

__all__ = ["MARKER", "prepare_directory"]

MARKER = "yokodan-union-index.json"


def prepare_directory(path: Path, schema_version: int) -> None:
    """Make `path` a union index directory of `schema_version`, or raise UnionIndexError."""
    if path.exists() and not path.is_dir():
        raise UnionIndexError(f"union index path {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        marker = path / MARKER
        if not marker.exists():
            # Two openers of a new directory race here: the other may write the marker between our
            # look and our listing, so its half-written temp file and the marker itself are not
            # "someone else's files", and the marker is looked for again before refusing.
            others = [p for p in path.iterdir() if p.name != MARKER and not p.name.startswith(f"{MARKER}.")]
            if others and not marker.exists():
                raise UnionIndexError(
                    f"{path} is not empty and is not a Yokodan union index (no {MARKER}); refusing to write into it"
                )
            if not marker.exists():
                _write_marker_once(marker, schema_version)
        _check_marker(marker, schema_version)
    except OSError as exc:
        raise UnionIndexError(f"cannot use union index directory {path}: {exc}") from exc


def _write_marker_once(marker: Path, schema_version: int) -> None:
    """Write the marker whole and only once: a temp file linked into place (link fails if it exists)."""
    temp = marker.with_name(f"{MARKER}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        temp.write_bytes(orjson.dumps({"schema_version": schema_version}))
        with contextlib.suppress(FileExistsError):  # another opener's marker won; it is checked next
            os.link(temp, marker)
    finally:
        temp.unlink(missing_ok=True)


def _check_marker(marker: Path, schema_version: int) -> None:
    try:
        version = orjson.loads(marker.read_bytes()).get("schema_version")
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise UnionIndexError(f"unreadable union index marker {marker}: {exc}") from exc
    if version != schema_version:
        raise UnionIndexError(
            f"union index {marker.parent} has schema version {version!r}, this Yokodan uses {schema_version}; "
            f"delete the directory to rebuild it"
        )
