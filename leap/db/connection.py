"""Connections to LEAP's PostgreSQL, failing with a message an operator can act on."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import asyncpg

__all__ = ["COMMAND_TIMEOUT", "DatabaseUnavailable", "connect", "create_pool", "redacted"]

#: Seconds any one statement may take. A hung database must fail the read an audit row guards
#: (and the sink's batch, which is retried) rather than hold it forever.
COMMAND_TIMEOUT = 10.0

_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


class DatabaseUnavailable(RuntimeError):
    """LEAP's PostgreSQL could not be reached with the configured DSN."""


def redacted(dsn: str) -> str:
    """The DSN without its password (in the user part or the query), fit for messages."""
    userinfo, at, _ = urlsplit(dsn).netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if at and colon:
        dsn = dsn.replace(f"//{userinfo}@", f"//{user}:***@", 1)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", dsn)


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with no statement timeout, for migrations: they may run long, and an
    upgrader waits on the advisory lock for as long as another one holds it."""
    try:
        return await asyncpg.connect(dsn)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(dsn, exc) from exc


async def create_pool(
    dsn: str, *, max_size: int = 10, command_timeout: float | None = COMMAND_TIMEOUT
) -> asyncpg.Pool:
    """A pool for the history sink, the audit log and retention (``command_timeout=None``:
    a purge that has not run for months may delete millions of rows)."""
    try:
        return await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, command_timeout=command_timeout
        )
    except _CONNECT_ERRORS as exc:
        raise _unavailable(dsn, exc) from exc


def _unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailable:
    reason = str(exc) or type(exc).__name__
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {redacted(dsn)} (LEAP_POSTGRES_DSN): {reason}"
    )
