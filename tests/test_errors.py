"""One error base: every error the project raises on purpose is a YokodanError of a named kind.

Front ends rely on it: the CLI exits 2 for a YokodanError and lets anything else be a bug with a
traceback, so an error class that forgets the base turns an operator's mistake into a crash, and
one that subclasses ValueError turns a bug into a polite exit. The walk below catches both.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import socket
from pathlib import Path

import pytest

import broker
import connectors
import index
import yokodan
from broker.api import InvalidRequest
from broker.cli import InvalidArguments
from broker.consortium import ConsortiumFileError, load_consortium
from broker.members import MemberRegistry
from broker.search import SearchService, UnknownMembers
from connectors import HttpClient
from connectors.errors import ConnectorError, TargetUnreachable
from connectors.html_profile import OpacProfileError, load_profile
from index.store import UnionIndex, UnionIndexError
from yokodan import BadRequest, ConfigError, SearchQuery, StoreError, YokodanError

ROOMS = (yokodan, connectors, index, broker)  # sandbox/ simulates members: its errors are theirs, not ours


def _project_error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for room in ROOMS:
        names = [room.__name__] + [m.name for m in pkgutil.walk_packages(room.__path__, prefix=f"{room.__name__}.")]
        for name in names:
            module = importlib.import_module(name)
            for attr, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == name
                    and not attr.startswith("_")
                ):
                    found[f"{name}.{attr}"] = value
    return found


def test_every_public_project_error_is_a_yokodan_error_and_not_a_value_error() -> None:
    classes = _project_error_classes()
    # The walk really sees the rooms' errors (a walk that found nothing would pass vacuously).
    assert {"broker.consortium.ConsortiumFileError", "connectors.errors.ConnectorError",
            "index.store.results.UnionIndexError", "broker.members.UnknownMembers", "broker.api.InvalidRequest"} <= set(classes)
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, YokodanError))
    assert outside == []
    # pydantic turns a ValueError raised in a validator into a ValidationError, and a bare
    # `except ValueError` would swallow bugs: the project's errors are deliberately not ValueErrors.
    value_errors = sorted(name for name, cls in classes.items() if issubclass(cls, ValueError))
    assert value_errors == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConsortiumFileError, ConfigError),
        (OpacProfileError, ConfigError),
        (InvalidRequest, BadRequest),
        (UnknownMembers, BadRequest),
        (InvalidArguments, BadRequest),
        (UnionIndexError, StoreError),
        (ConnectorError, YokodanError),
    ],
)
def test_each_error_belongs_to_its_kind(error: type[Exception], kind: type[Exception]) -> None:
    assert issubclass(error, kind) and issubclass(kind, YokodanError)
    kinds = {ConfigError, BadRequest, StoreError}
    # exactly one kind (ConnectorError is a kind of its own, directly under the base)
    assert [k for k in kinds if issubclass(error, k)] == ([kind] if kind in kinds else [])


def test_broken_consortium_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('id = "x"\nname = "x"\nkind = "mutual_use"\nmembers = "none"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_consortium(path)
    assert str(path) in str(caught.value) and "members" in str(caught.value)
    assert caught.value.path == path and caught.value.problems


def test_unknown_opac_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no profile named 'okalib'"):
        load_profile("okalib")


def test_unusable_index_directory_is_a_store_error(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "index"
    not_a_directory.write_text("", encoding="utf-8")
    with pytest.raises(StoreError, match="not a directory"):
        UnionIndex.open(not_a_directory)


async def test_unknown_members_is_a_bad_request(http: HttpClient) -> None:
    service = SearchService(MemberRegistry(load_consortium(), http))
    with pytest.raises(BadRequest, match="nowhere-town"):
        await service.search(SearchQuery(text="猫"), ["nowhere-town"])


async def test_refused_connection_is_a_yokodan_error(http: HttpClient) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(YokodanError) as caught:
            await http.get(f"http://127.0.0.1:{port}/sru", member="m", timeout_s=2, attempts=1)
    assert isinstance(caught.value, TargetUnreachable)
