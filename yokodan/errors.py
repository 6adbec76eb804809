"""The project's own errors: one base class and a few kinds, as httpx has `HTTPError` above its family.

    YokodanError                 anything the project raises on purpose (a bug is any other exception)
    ├── ConfigError              a file or setting the operator wrote cannot be used; the message names
    │   │                        the file, the field path and the reason, one line per problem
    │   ├── broker.consortium.ConsortiumFileError
    │   └── connectors.html_profile.OpacProfileError
    ├── BadRequest               the caller asked for something that cannot be answered as asked
    │   ├── broker.api.InvalidRequest          (HTTP 400, problem+json)
    │   ├── broker.search.UnknownMembers
    │   └── broker.cli.InvalidArguments
    ├── StoreError               local state on disk cannot be used (corrupt, foreign, locked, closed)
    │   └── index.store.UnionIndexError
    └── connectors.errors.ConnectorError     talking to one member system went wrong (timeouts,
                                              HTTP errors, malformed answers, refusals …)

Why a base of our own instead of ValueError: front ends (the CLI's exit status 2, the API's 4xx)
catch `YokodanError` to report a user's or an operator's mistake in one line, and every other
exception stays a bug with its traceback. pydantic also turns a ValueError raised inside a
validator into a ValidationError, so these classes deliberately are not ValueErrors.

The concrete classes live in the room that raises them; this module imports nothing of the project.
"""

from __future__ import annotations

from pathlib import Path


class YokodanError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(YokodanError):
    """A configuration file or setting cannot be used.

    Subclasses set `path` (the file) and `problems` (one 'field: reason' line each); str() gives
    one line per problem, each starting with the file name.
    """

    path: Path | None = None
    problems: list[str]


class BadRequest(YokodanError):
    """The caller's request (API parameters, CLI arguments, member ids) cannot be answered as asked."""


class StoreError(YokodanError):
    """Local storage (the union index; later the hold ledger) cannot be used."""


__all__ = ["BadRequest", "ConfigError", "StoreError", "YokodanError"]
