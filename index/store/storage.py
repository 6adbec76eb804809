"""The union index's directory: create it, recognise it, refuse what is not ours.

Engine-neutral; the engine's own files and locks are the back end's (whoosh_backend.py).
A marker file names the schema version: an index built by another version would answer
wrongly (different terms), so opening it is refused, not guessed at. It is a cache: every
refusal tells the operator that deleting the directory rebuilds it.
"""

from __future__ import annotations

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
        if marker.exists():
            _check_marker(marker, schema_version)
        elif any(path.iterdir()):
            raise UnionIndexError(
                f"{path} is not empty and is not a Yokodan union index (no {MARKER}); refusing to write into it"
            )
        else:
            marker.write_bytes(orjson.dumps({"schema_version": schema_version}))
    except OSError as exc:
        raise UnionIndexError(f"cannot use union index directory {path}: {exc}") from exc


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
