"""Session fixtures shared by every test.

Kafka and Redis are only touched when a test asks for them, so ``pytest tests/unit`` needs
neither. Integration tests never skip: a missing service is a failure that says how to fix it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
import redis

from leap.brokers import KafkaBroker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``LEAP_TEST_KAFKA_BOOTSTRAP``, or a real Kafka started for this session."""
    configured = os.environ.get("LEAP_TEST_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    with KafkaBroker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``LEAP_TEST_REDIS_URL`` (default db 15 on the local server), checked to answer PING."""
    url = os.environ.get("LEAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    problem = _ping_error(url)
    if problem is not None:
        pytest.fail(
            f"Redis at {url} does not answer PING ({problem}). Run `make test`, which starts "
            "redis-server via scripts/services.sh, or set LEAP_TEST_REDIS_URL.",
            pytrace=False,
        )
    return url


def _ping_error(url: str) -> str | None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to one test; every key under it is deleted afterwards."""
    prefix = f"leaptest:{uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix for topic names, so tests sharing the session broker never see each other."""
    return f"t{uuid4().hex[:8]}."


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Created through ``LEAP_TEST_POSTGRES_DSN`` (a URL), by default the local server over its
    Unix socket as the current OS user: ``scripts/services.sh`` creates that role."""
    admin = os.environ.get(
        "LEAP_TEST_POSTGRES_DSN", "postgresql:///postgres?host=/var/run/postgresql"
    )
    name = f"leaptest_{uuid4().hex[:8]}"
    problem = _psql(admin, f"CREATE DATABASE {name}")
    if problem is not None:
        pytest.fail(
            f"cannot create a database through {admin} ({problem}). Run `make test`, which "
            "sets PostgreSQL up via scripts/services.sh, or set LEAP_TEST_POSTGRES_DSN.",
            pytrace=False,
        )
    parts = urlsplit(admin)
    yield f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")
    _psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _psql(dsn: str, sql: str) -> str | None:
    done = subprocess.run(
        ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    return done.stderr.strip() or f"psql exited {done.returncode}"
