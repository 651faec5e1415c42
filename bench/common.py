"""What every benchmark shares: sizes, a broker, fresh topic names, data files, tables.

The machine is small (2 cores) and often shared, so each script measures the things it
compares side by side in one run, several times where affordable, and prints medians and
ratios. ``--quick`` (or ``LEAP_BENCH_QUICK=1``) scales every size down for a smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import redis
from aiokafka.admin import AIOKafkaAdminClient

from connectors.publisher import Tick
from connectors.synthetic import SyntheticTerm, make_students, write_students
from leap.brokers import KafkaBroker, free_port
from leap.reference import Student
from leap.settings import Settings
from leap.state_keys import indicator_key
from schemas.codec import activity_to_json

__all__ = [
    "TERM_START",
    "bench_env",
    "bench_parser",
    "cleanup_redis",
    "cpu_seconds",
    "delete_topics",
    "kafka_bootstrap",
    "median",
    "postgres_admin_dsn",
    "print_table",
    "quick",
    "rss_kib",
    "settings_from_env",
    "synthetic_term",
    "timed",
    "wait_for_indicators",
    "write_events_file",
]

#: A Monday in term, so every weekday of the synthetic timetable occurs.
TERM_START = date(2026, 10, 5)


def quick(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "quick", False)) or os.environ.get("LEAP_BENCH_QUICK") == "1"


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Small sizes (also LEAP_BENCH_QUICK=1)."
    )
    parser.add_argument("--runs", type=int, help="Repetitions; medians are reported.")
    return parser


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn`` took, and what it returned."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table, so the output pastes straight into docs/benchmarks.md."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
    print(flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """``LEAP_KAFKA_BOOTSTRAP``, or a private Apache Kafka for this run."""
    configured = os.environ.get("LEAP_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    with KafkaBroker() as broker:
        yield broker.bootstrap


def postgres_admin_dsn() -> str:
    """Where private benchmark databases are created (as tests/conftest.py does)."""
    return os.environ.get(
        "LEAP_BENCH_POSTGRES_DSN", "postgresql:///postgres?host=/var/run/postgresql"
    )


@contextlib.asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one benchmark; yields its DSN, drops it afterwards."""
    name = f"leapbench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(admin_dsn)
    dsn = f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield dsn
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def bench_env(
    bootstrap: str, workdir: Path, partitions: int, run: str | None = None
) -> dict[str, str]:
    """``LEAP_*`` for one worker run on fresh topics, tables and Redis prefix, all named
    after ``run`` (default: a new ``bench<hex>``), so a shared broker can be tidied after."""
    run = run or f"bench{uuid.uuid4().hex[:6]}"
    return {
        "LEAP_KAFKA_BOOTSTRAP": bootstrap,
        "LEAP_REDIS_URL": os.environ.get("LEAP_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "LEAP_CLOCK": "event",
        "LEAP_PARTITIONS": str(partitions),
        "LEAP_STUDENTS": str(workdir / "students.csv"),
        "LEAP_APP_ID": run,
        "LEAP_DATA_DIR": str(workdir / run),
        "LEAP_WORKER_WEB_PORT": str(free_port()),
        "LEAP_REDIS_PREFIX": f"{run}:",
        "LEAP_ACTIVITY_TOPIC": f"{run}.activity",
        "LEAP_DEAD_LETTER_TOPIC": f"{run}.dead-letter",
        "LEAP_INDICATOR_CHANGES_TOPIC": f"{run}.indicator-changes",
        "LEAP_COHORT_SCORES_TOPIC": f"{run}.cohort-scores",
        "LEAP_ALERTS_TOPIC": f"{run}.alerts",
        "LEAP_REFERENCE_STUDENTS_TOPIC": f"{run}.reference.students",
        "LEAP_CONTACT_PREFERENCES_TOPIC": f"{run}.reference.contact-preferences",
    }


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Topics named ``prefix*`` (a run's own, its workers' and Faust's): tidy on a shared broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def settings_from_env(env: dict[str, str]) -> Settings:
    return Settings.model_validate({k.removeprefix("LEAP_").lower(): v for k, v in env.items()})


def synthetic_term(students: int, days: int, settings: Settings) -> tuple[list[Student], Any]:
    roster = make_students(students)
    return roster, SyntheticTerm(roster, TERM_START, days, settings.zone, settings.day_close_grace)


def write_events_file(workdir: Path, students: int, days: int) -> tuple[Path, Path, int, date]:
    """A synthetic term as ``leap import`` / ``leap replay`` read it: (events, students CSV,
    event count, last day)."""
    settings = Settings()  # type: ignore[call-arg]
    roster, term = synthetic_term(students, days, settings)
    students_csv, events = workdir / "students.csv", workdir / "events.jsonl"
    write_students(roster, students_csv)
    count = 0
    with events.open("w", encoding="utf-8") as out:
        for item in term.items():
            if isinstance(item, Tick):
                continue
            out.write(json.dumps(activity_to_json(item), separators=(",", ":")) + "\n")
            count += 1
    return events, students_csv, count, term.last_day


def wait_for_indicators(settings: Settings, as_of: str, expected: int, timeout: float) -> float:
    """Seconds until ``expected`` indicator hashes say ``as_of`` (polled)."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            keys = list(
                client.scan_iter(match=indicator_key(settings.redis_prefix, "*"), count=5000)
            )
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "as_of")
            if sum(1 for a in pipe.execute() if a == as_of) >= expected:
                return time.perf_counter() - started
            time.sleep(0.2)
    finally:
        client.close()
    raise SystemExit(f"worker did not finish within {timeout} s")


def cleanup_redis(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start : start + 5000])
    finally:
        client.close()


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used, all threads (Linux): on a shared machine a
    steadier measure of work done than a rate, which also counts time waiting for a core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")
