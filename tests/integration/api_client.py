"""The API app with its lifespan running, reached in-process over real Redis.

Tokens are real RS256 JWTs from a key pair made once per test session, checked by the real
verifier: tests get an admin by default (:func:`serve`), or any principal (:func:`token`).
Staff reads are audited, so the app gets a real PostgreSQL audit log: one migrated database
for the whole session (:func:`session_database`), unless a test brings its own DSN.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from api.access import Principal, Role, Roster
from api.app import create_app
from leap.contact import ContactPreferences
from leap.db.connection import connect
from leap.db.migrate import upgrade
from leap.settings import Settings
from leap.tokens import ensure_signing_key, mint

__all__ = [
    "ADMIN",
    "TEST_AUDIENCE",
    "TEST_ISSUER",
    "bearer",
    "serve",
    "session_database",
    "token",
    "with_audit_log",
    "with_test_auth",
]

TEST_ISSUER = "https://idp.leap.test"
TEST_AUDIENCE = "leap-api-test"
ADMIN = Principal(Role.ADMIN, "admin@leap.test")

_keys = tempfile.TemporaryDirectory(prefix="leap-test-keys-")  # removed at interpreter exit


@cache
def signing_key() -> Path:
    """The session's private key (PEM); its public half is ``*.pub.pem`` beside it."""
    private = Path(_keys.name) / "signing-key.pem"
    ensure_signing_key(private)
    return private


def with_test_auth(settings: Settings) -> Settings:
    """``settings`` whose API accepts :func:`token`'s tokens."""
    public = ensure_signing_key(signing_key())
    return settings.model_copy(
        update={
            "auth_issuer": TEST_ISSUER,
            "auth_audience": TEST_AUDIENCE,
            "auth_algorithms": ["RS256"],
            "auth_public_key_file": public,
        }
    )


def _psql(dsn: str, sql: str) -> None:
    subprocess.run(
        ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True
    )


async def _migrate(dsn: str) -> None:
    connection = await connect(dsn)
    try:
        await upgrade(connection)
    finally:
        await connection.close()


@cache
def session_database() -> str:
    """A migrated database for this test process, dropped at exit: created through
    ``LEAP_TEST_POSTGRES_DSN`` like the ``postgres_dsn`` fixture's."""
    admin = os.environ.get(
        "LEAP_TEST_POSTGRES_DSN", "postgresql:///postgres?host=/var/run/postgresql"
    )
    name = f"leaptest_api_{os.getpid()}"
    _psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _psql(admin, f"CREATE DATABASE {name}")
    atexit.register(_psql, admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    parts = urlsplit(admin)
    dsn = f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")
    with ThreadPoolExecutor(1) as thread:  # callers may be inside a running event loop
        thread.submit(asyncio.run, _migrate(dsn)).result()
    return dsn


def with_audit_log(settings: Settings) -> Settings:
    """``settings`` with the session's audit database, unless they name one already."""
    if settings.postgres_dsn is not None:
        return settings
    return settings.model_copy(update={"postgres_dsn": session_database()})


def token(principal: Principal = ADMIN, ttl: int = 300) -> str:
    """A valid token for ``principal`` under :func:`with_test_auth` settings."""
    return mint(
        signing_key().read_bytes(),
        principal,
        issuer=TEST_ISSUER,
        audience=TEST_AUDIENCE,
        ttl=ttl,
    )


def bearer(principal: Principal = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(principal)}"}


@asynccontextmanager
async def serve(
    settings: Settings,
    *,
    roster: Roster | None = None,
    preferences: ContactPreferences | None = None,
    headers: Mapping[str, str] | None = None,
    audit_log: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, sending an admin's token unless ``headers`` are given.

    Settings without ``auth_issuer`` get :func:`with_test_auth`; without ``students``, an
    empty roster (every student then 404s); without ``postgres_dsn``, the session's audit
    database (``audit_log=False``: none, as with LEAP_POSTGRES_DSN unset).
    """
    if settings.auth_issuer is None:
        settings = with_test_auth(settings)
    if audit_log:
        settings = with_audit_log(settings)
    if roster is None and settings.students is None:
        roster = {}
    app = create_app(settings, roster, preferences)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://leap.test",
            headers=bearer() if headers is None else dict(headers),
        ) as client:
            yield client
