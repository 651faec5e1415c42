"""``leap db upgrade`` and ``leap retention purge``: LEAP's own PostgreSQL, for operators."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, NoReturn

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from leap.db.connection import DatabaseUnavailable, connect, create_pool
from leap.db.migrate import Migration, MigrationError, load_migrations, upgrade
from leap.db.retention import AUDIT_TABLE, HISTORY_TABLE, cutoffs, purge
from leap.settings import Settings

__all__ = ["db_app", "retention_app"]

db_app = typer.Typer(no_args_is_help=True)
retention_app = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)


@db_app.callback()
def db() -> None:
    """LEAP's own PostgreSQL database (LEAP_POSTGRES_DSN)."""
    # A callback keeps `upgrade` a subcommand even while it is the only one.


@retention_app.callback()
def retention() -> None:
    """Storage limitation: delete what is kept past its retention period."""


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations in order; safe to repeat and to run twice at once."""
    _, dsn = _dsn()
    try:
        applied = asyncio.run(_upgrade(dsn))
        latest = load_migrations()[-1].name
    except (DatabaseUnavailable, MigrationError) as exc:
        _fail(str(exc))
    except asyncpg.PostgresError as exc:
        _fail(f"upgrade failed, nothing further applied: {exc}")
    for migration in applied:
        typer.echo(f"applied {migration.name}")
    typer.echo(f"schema up to date at {latest} ({len(applied)} applied now)")


@retention_app.command("purge")
def retention_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete indicator history and audit rows older than LEAP_HISTORY_RETENTION_DAYS and
    LEAP_AUDIT_RETENTION_DAYS (counted back from today in LEAP_TIMEZONE)."""
    settings, dsn = _dsn()
    now = datetime.now(settings.zone)
    days = settings.history_retention_days, settings.audit_retention_days
    try:
        counts = asyncio.run(_purge(dsn, now, *days, dry_run))
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    except asyncpg.UndefinedTableError as exc:
        _fail(f"{exc}: run `leap db upgrade` first")
    except asyncpg.PostgresError as exc:
        _fail(f"purge failed: {exc}")
    limits = cutoffs(now, *days)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{HISTORY_TABLE}: {verb} {counts[HISTORY_TABLE]} rows "
        f"(as_of before {limits.history_before.isoformat()})"
    )
    typer.echo(
        f"{AUDIT_TABLE}: {verb} {counts[AUDIT_TABLE]} rows "
        f"(at before {limits.audit_before.isoformat(timespec='seconds')})"
    )


async def _upgrade(dsn: str) -> list[Migration]:
    connection = await connect(dsn)
    try:
        return await upgrade(connection)
    finally:
        await connection.close()


async def _purge(
    dsn: str, now: datetime, history_days: int, audit_days: int, dry_run: bool
) -> dict[str, int]:
    pool = await create_pool(dsn, max_size=1, command_timeout=None)
    try:
        return await purge(pool, now, history_days, audit_days, dry_run=dry_run)
    finally:
        await pool.close()


def _dsn() -> tuple[Settings, str]:
    """The settings and LEAP's PostgreSQL DSN, which these commands cannot do without."""
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        _fail(f"invalid LEAP_* setting:\n{exc}")
    if not settings.postgres_dsn:
        _fail("LEAP_POSTGRES_DSN is not set: point it at LEAP's PostgreSQL database")
    return settings, settings.postgres_dsn


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
