"""Versioned schema: plain SQL files ``migrations/NNNN_words.sql``, applied in order once each.

Each file runs in its own transaction and is recorded in ``leap.schema_migrations`` with the
SHA-256 of its text. An applied file is history: if its text changes, or the database has a
version this code does not ship, nothing is applied (the schema would no longer be what the
files say). A session advisory lock makes a second upgrader wait, then find nothing to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from itertools import pairwise

import asyncpg

__all__ = [
    "LOCK_KEY",
    "MIGRATIONS",
    "Migration",
    "MigrationError",
    "load_migrations",
    "pending",
    "upgrade",
]

#: The shipped migrations (package data).
MIGRATIONS: Traversable = files("leap.db") / "migrations"

#: Advisory lock key held while migrating; any fixed number, but every LEAP must use this one.
LOCK_KEY = 0x1EA9_5C4E

_FILE_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS leap;
CREATE TABLE IF NOT EXISTS leap.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The migrations cannot be applied as they stand; nothing further was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Traversable = MIGRATIONS) -> list[Migration]:
    """Every ``*.sql`` file of ``directory``, by version; misnamed or duplicate versions fail."""
    found: list[Migration] = []
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files are named NNNN_words.sql")
        found.append(Migration(int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for before, after in pairwise(found):
        if before.version == after.version:
            raise MigrationError(f"{before.name} and {after.name} share a version")
    return found


def pending(available: Sequence[Migration], applied: Mapping[int, str]) -> list[Migration]:
    """The migrations still to apply, given ``applied`` (version -> checksum).

    Refuses a changed applied file, an applied version this code lacks, and a new file
    numbered below one already applied (it would run after migrations written after it)."""
    by_version = {m.version: m for m in available}
    for version, checksum in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}, which this LEAP does not ship: "
                "the schema is newer than this code"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.name} was changed after it was applied (checksum "
                f"{checksum[:12]}… in the database, {migration.checksum[:12]}… now): restore "
                "it and put the change in a new migration"
            )
    todo = [m for m in available if m.version not in applied]
    latest = max(applied, default=0)
    late = [m.name for m in todo if m.version < latest]
    if late:
        raise MigrationError(
            f"{', '.join(late)} numbered below the applied {latest:04d}: renumber after it"
        )
    return todo


async def upgrade(
    connection: asyncpg.Connection, available: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply the pending migrations in order, each in its own transaction; return them."""
    if available is None:
        available = load_migrations()
    await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await connection.execute(_BOOKKEEPING)
        rows = await connection.fetch("SELECT version, checksum FROM leap.schema_migrations")
        todo = pending(available, {row["version"]: row["checksum"] for row in rows})
        for migration in todo:
            await _apply(connection, migration)
        return todo
    finally:
        if not connection.is_closed():
            await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _apply(connection: asyncpg.Connection, migration: Migration) -> None:
    try:
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO leap.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"{migration.name} failed and was rolled back: {exc}") from exc
