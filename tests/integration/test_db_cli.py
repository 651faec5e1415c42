"""`leap db upgrade` and `leap retention purge` run as an operator runs them: child processes
configured by LEAP_* variables, on real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from leap.db.audit import AuditLog
from leap.db.connection import create_pool
from leap.db.history import HistoryRow, HistoryStore
from tests.integration.leap_process import leap_env, run_leap

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")


async def fill(dsn: str, now: datetime) -> None:
    """Rows far from the boundaries, so the wall clock's date cannot matter."""
    pool = await create_pool(dsn, max_size=1)
    try:
        await HistoryStore(pool).upsert_days(
            HistoryRow("S1000001", day, "good", 9.0, 10.0, 7, {}, "p", "PHYS", 1, True)
            for day in (now.date() - timedelta(days=500), now.date() - timedelta(days=10))
        )
        for at in (now - timedelta(days=800), now - timedelta(days=700)):
            await AuditLog(pool).record("tutor-7", "tutor", "S1000001", "GET /x", True, at)
    finally:
        await pool.close()


async def counts(dsn: str) -> tuple[int, int]:
    connection = await asyncpg.connect(dsn)
    try:
        history = await connection.fetchval("SELECT count(*) FROM leap.indicator_history")
        audit = await connection.fetchval("SELECT count(*) FROM leap.audit_log")
        return history, audit
    finally:
        await connection.close()


async def test_upgrade_then_purge_from_the_command_line(postgres_dsn: str, tmp_path: Path) -> None:
    env = leap_env(postgres_dsn=postgres_dsn, timezone="Europe/London")

    first = run_leap(["db", "upgrade"], env, tmp_path)
    assert "applied 0001_history_audit.sql" in first
    assert "applied 0002_connector_checkpoints.sql" in first
    again = run_leap(["db", "upgrade"], env, tmp_path)
    assert "applied 0" not in again
    assert "(0 applied now)" in again

    await fill(postgres_dsn, datetime.now(LONDON))
    dry = run_leap(["retention", "purge", "--dry-run"], env, tmp_path)
    assert "leap.indicator_history: would delete 1 rows" in dry
    assert "leap.audit_log: would delete 1 rows" in dry
    assert await counts(postgres_dsn) == (2, 2)

    done = run_leap(["retention", "purge"], env, tmp_path)
    assert "leap.indicator_history: deleted 1 rows" in done
    assert "leap.audit_log: deleted 1 rows" in done
    assert await counts(postgres_dsn) == (1, 1)

    shorter = leap_env(postgres_dsn=postgres_dsn, history_retention_days=5, audit_retention_days=5)
    run_leap(["retention", "purge"], shorter, tmp_path)
    assert await counts(postgres_dsn) == (0, 0)


def test_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    env = leap_env(postgres_dsn="postgresql://leap:s3cret@127.0.0.1:1/leap")
    for args in (["db", "upgrade"], ["retention", "purge"]):
        done = subprocess.run(
            [sys.executable, "-m", "leap.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done
        assert "LEAP_POSTGRES_DSN" in done.stderr
        assert "127.0.0.1:1" in done.stderr
        assert "s3cret" not in done.stderr + done.stdout


def test_purge_before_upgrade_says_what_to_do(postgres_dsn: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leap.cli", "retention", "purge"],
        env=leap_env(postgres_dsn=postgres_dsn),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "leap db upgrade" in done.stderr
