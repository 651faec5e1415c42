"""``leap dev``: the whole pipeline on one machine, fed by a synthetic cohort.

Starts what is missing (a Tansu broker unless LEAP_KAFKA_BOOTSTRAP is set, a
redis-server unless one answers at LEAP_REDIS_URL), runs ``leap worker`` and
``leap api`` as child processes on ``clock=event``, feeds several simulated weeks of
term, and prints where to look and how the indicators came out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from connectors.publisher import ActivityPublisher
from connectors.reference_load import load_reference
from connectors.synthetic import SyntheticTerm, make_students, write_students
from leap.brokers import TansuBroker, free_port
from leap.reference import Student
from leap.scoring import INDICATORS, LABELS
from leap.settings import Settings
from leap.state_keys import indicator_key
from leap.tokens import api_environment, dev_key_file, dev_token, ensure_signing_key
from streams.topics import ensure_topics

__all__ = ["run_dev"]

console = Console(stderr=True)
#: The demo's own Redis namespace, emptied at each start so no old run shows through.
DEV_PREFIX = "leap-dev:"
#: How long the demo waits for the last simulated day's indicators.
RESULT_TIMEOUT = 120.0
#: The sample student token lasts a working day of poking at the demo.
SAMPLE_TOKEN_TTL = 8 * 3600


def run_dev(base: Settings, students: int, days: int, stay: bool) -> None:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leap-dev-")))
        overrides: dict[str, str] = {
            "LEAP_CLOCK": "event",
            "LEAP_DATA_DIR": str(workdir / "worker"),
            "LEAP_WORKER_WEB_PORT": str(free_port()),
            "LEAP_APP_ID": f"leap-dev-{os.getpid()}",
            "LEAP_REDIS_PREFIX": DEV_PREFIX,
        }
        if "LEAP_KAFKA_BOOTSTRAP" not in os.environ:
            broker = stack.enter_context(TansuBroker())
            console.print(f"broker: Tansu (in memory) on {broker.bootstrap}")
            # Tansu's quirks, measured: see README "The embedded demo broker".
            overrides |= {
                "LEAP_KAFKA_BOOTSTRAP": broker.bootstrap,
                "LEAP_PRODUCER_MAX_BATCH_SIZE": "1",
                "LEAP_PRODUCER_IDEMPOTENCE": "false",
                "LEAP_BROKER_SESSION_TIMEOUT": "6",
            }
        overrides["LEAP_REDIS_URL"] = _redis(base.redis_url, workdir, stack)
        overrides |= _auth(base)
        settings = Settings.model_validate(
            {k.removeprefix("LEAP_").lower(): v for k, v in overrides.items()}
        )

        cohort = make_students(students)
        write_students(cohort, workdir / "students.csv")
        asyncio.run(ensure_topics(settings))
        # As in production: the worker and the API follow the reference topic.
        loaded = asyncio.run(load_reference(settings, workdir / "students.csv"))
        console.print(
            f"reference data: {loaded.added} students on {settings.reference_students_topic}"
        )
        env = os.environ | overrides
        stack.enter_context(_child("worker", ["worker", "--loglevel", "warning"], env, workdir))
        stack.enter_context(_child("api", ["api"], env, workdir))

        start = _term_start(days)
        term = SyntheticTerm(cohort, start, days, settings.zone, settings.day_close_grace)
        console.print(
            f"feeding {len(cohort)} synthetic students, {days} days from {start} "
            f"({len(_cohort_names(cohort))} cohorts)"
        )
        started = time.monotonic()
        sent = asyncio.run(_feed(settings, term))
        console.print(f"published {sent} activity events in {time.monotonic() - started:.1f} s")
        counts = _wait_for_indicators(settings, term.last_day, len(cohort), workdir / "worker.log")
        console.print(f"indicators ready {time.monotonic() - started:.1f} s after the first event")
        _print_summary(settings, term.last_day, counts)
        _print_token(settings, cohort[0])
        if stay:
            console.print("running; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


def _term_start(days: int) -> date:
    """A Monday, far enough back that the whole simulated term has happened."""
    start = date.today() - timedelta(days=days + 1)
    return start - timedelta(days=start.weekday())


def _cohort_names(students: list[Student]) -> set[str]:
    return {s.cohort for s in students}


async def _feed(settings: Settings, term: SyntheticTerm) -> int:
    total = len(term.students) * term.days * 2.4  # measured mean events per student-day
    with Progress(console=console) as progress:
        task = progress.add_task("publishing events", total=total)
        async with ActivityPublisher(settings) as publisher:
            return await publisher.publish(
                term.items(), on_sent=lambda n: progress.advance(task, n)
            )


def _redis(url: str, workdir: Path, stack: contextlib.ExitStack) -> str:
    """The Redis at ``url`` if it answers, else a private redis-server for the demo."""
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        stale = list(client.scan_iter(match=f"{DEV_PREFIX}*", count=1000))
        for start in range(0, len(stale), 1000):
            client.delete(*stale[start : start + 1000])
        console.print(f"redis: {url} (keys under {DEV_PREFIX!r}, emptied)")
        return url
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"no Redis answers at {url} and redis-server is not installed: "
            "`apt-get install redis-server` (or set LEAP_REDIS_URL)"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stack.callback(_stop, proc)
    own = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(own).ping()
            console.print(f"redis: started redis-server on port {port} (memory only)")
            return own
        time.sleep(0.1)
    raise RuntimeError(f"redis-server did not start on port {port}")


@contextlib.contextmanager
def _child(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Iterator[None]:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leap.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    console.print(f"{name}: started (log {log_path})")
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at once:\n{log_path.read_text()[-3000:]}")
        yield
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_indicators(
    settings: Settings, last_day: date, expected: int, worker_log: Path
) -> Counter[str]:
    """Poll Redis until every student has an indicator as of the last simulated day."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    deadline = time.monotonic() + RESULT_TIMEOUT
    counts: Counter[str] = Counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"waiting for indicators as of {last_day}", total=expected)
        while time.monotonic() < deadline:
            counts = _indicator_counts(client, settings.redis_prefix, last_day)
            progress.update(task, completed=sum(counts.values()))
            if sum(counts.values()) >= expected:
                return counts
            time.sleep(1)
    raise RuntimeError(
        f"only {sum(counts.values())} of {expected} indicators as of {last_day} after "
        f"{RESULT_TIMEOUT:.0f} s. The worker's log ends:\n"
        + worker_log.read_text(errors="replace")[-3000:]
    )


def _indicator_counts(client: redis.Redis, prefix: str, as_of: date) -> Counter[str]:
    """Counts by (cohort, indicator) of students whose indicator is as of ``as_of``."""
    counts: Counter[str] = Counter()
    keys = list(client.scan_iter(match=indicator_key(prefix, "*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "as_of", "course", "year", "indicator")
    for found_as_of, course, year, indicator in pipe.execute():
        if found_as_of == as_of.isoformat():
            counts[f"{course}|{year}|{indicator}"] += 1
    return counts


def _print_summary(settings: Settings, as_of: date, counts: Counter[str]) -> None:
    table = Table(title=f"Engagement indicators as of {as_of}")
    table.add_column("course")
    table.add_column("year", justify="right")
    for indicator in INDICATORS:
        table.add_column(LABELS[indicator], justify="right")
    cohorts = sorted({tuple(key.split("|")[:2]) for key in counts})
    for course, year in cohorts:
        row = [str(counts[f"{course}|{year}|{i}"]) for i in INDICATORS]
        table.add_row(course, year, *row)
    Console().print(table)
    console.print(
        f"API: http://{settings.api_host}:{settings.api_port}/v1/students/{{id}}/engagement"
    )


def _auth(base: Settings) -> dict[str, str]:
    """The API accepts RS256 tokens signed by ``leap token``'s key (made on first use), so
    ``leap token`` in another shell, from the same directory, works against this API too."""
    key = dev_key_file(base).resolve()
    ensure_signing_key(key)
    return {
        "LEAP_AUTH_DEV_KEY_FILE": str(key),
        **api_environment(base.model_copy(update={"auth_dev_key_file": key})),
    }


def _print_token(settings: Settings, student: Student) -> None:
    token = dev_token(settings, "student", student.student_id, ttl=SAMPLE_TOKEN_TTL)
    url = f"http://{settings.api_host}:{settings.api_port}"
    console.print(f"a token for student {student.student_id} (8 h): {token}", soft_wrap=True)
    console.print(
        f"try: curl -H 'Authorization: Bearer {token}' "
        f"{url}/v1/students/{student.student_id}/engagement",
        soft_wrap=True,
        markup=False,
    )
    console.print(
        f"more: leap token --role tutor --sub {student.tutor_id} "
        f"(or --role department --sub you --department '{student.department}', --role admin)",
        soft_wrap=True,
        markup=False,
    )
    if not settings.postgres_dsn:
        console.print(
            "staff reads of a student are audited, so they need LEAP_POSTGRES_DSN (after "
            "`leap db upgrade`); without it they answer 503, and students' own reads work",
            soft_wrap=True,
        )
