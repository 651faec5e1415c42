"""What the process-fault tests share: a cohort streamed in chunks, workers that can be killed
and restarted, and the oracle check every scenario ends with.

The check is the at-least-once contract in full: Redis holds ``leap replay``'s indicators;
every (student, local date) record of the worker's ``daily_totals`` changelog holds exactly
the fingerprints and per-source totals of that student-day's events in the file (so each
event was counted once, none lost, none twice); Redis's per-day breakdowns equal the same
totals; every IndicatorChange published agrees with the oracle, and none is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import redis
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from connectors.events_file import FileReader
from connectors.publisher import Rejected, Tick
from connectors.synthetic import SyntheticTerm, make_students, write_students
from leap.policy import load_policy
from leap.reference import Student, load_students
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.scoring import Policy, local_date, to_milli
from leap.settings import Settings
from leap.state_keys import days_key
from schemas.codec import activity_to_json, indicator_change_codec
from streams.day_record import day_fingerprints, day_sources, event_fingerprint, totals_key
from tests.integration.leap_process import isolated_worker, leap_env, run_leap, wait_for
from tests.integration.test_pipeline import redis_indicators

__all__ = [
    "Cohort",
    "Feeder",
    "Figures",
    "Worker",
    "check_against_oracle",
    "fault_rng",
    "make_cohort",
    "read_all",
    "wait_all_closed",
]

ZONE = ZoneInfo("Europe/London")
START = date(2026, 10, 19)  # a Monday
GRACE = timedelta(hours=2)
SEED_ENV = "LEAP_TEST_FAULT_SEED"

#: ``LEAP_TEST_WORKER_LOGLEVEL=info`` keeps the workers' day closes and bandings in their logs.
WORKER_LOGLEVEL = os.environ.get("LEAP_TEST_WORKER_LOGLEVEL", "warning")

#: Seconds a ``Feeder`` may sit at its gate while a test waits before a chunk is let through.
NUDGE_AFTER = 3.0

T = TypeVar("T")


def fault_rng(name: str) -> tuple[random.Random, int]:
    """A seeded RNG for kill moments: ``LEAP_TEST_FAULT_SEED`` replays a failed run."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"{name}: {SEED_ENV}={seed}", flush=True)
    return random.Random(seed), seed


@dataclass
class Cohort:
    """A synthetic cohort's events, split into chunks to be imported one after another."""

    topic_prefix: str
    config: dict[str, Any]  # LEAP_* settings shared by every worker and the importer
    workdir: Path
    students_csv: Path
    events_file: Path
    chunks: list[Path]
    days: int

    @property
    def last(self) -> date:
        return START + timedelta(days=self.days - 1)

    @property
    def until(self) -> datetime:
        """The clock tick that closes the last day."""
        return datetime.combine(self.last + timedelta(days=1), clock_time(0), ZONE) + GRACE

    def worker_config(self, name: str) -> dict[str, Any]:
        """One worker's settings: same app id (consumer group), its own data dir and port."""
        return {**self.config, **isolated_worker(self.topic_prefix, self.workdir / name)}

    @property
    def settings(self) -> Settings:
        return Settings(**self.worker_config("reader"))


def make_cohort(
    tmp_path: Path,
    services: dict[str, str],
    topic_prefix: str,
    *,
    students: int = 200,
    days: int = 5,
    partitions: int = 4,
    chunks: int = 10,
) -> Cohort:
    """``days`` local days of ``students``' activity from ``START``, in ``chunks`` files."""
    cohort = make_students(students, seed=23)
    students_csv = tmp_path / "students.csv"
    write_students(cohort, students_csv)
    term = SyntheticTerm(cohort, START, days, ZONE, GRACE, seed=23)
    lines = [json.dumps(activity_to_json(i)) + "\n" for i in term.items() if isinstance(i, dict)]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(lines))
    paths = []
    for n in range(chunks):
        path = tmp_path / f"chunk-{n:02d}.jsonl"
        path.write_text("".join(lines[n * len(lines) // chunks : (n + 1) * len(lines) // chunks]))
        paths.append(path)
    config = {
        **services,
        "clock": "event",
        "timezone": "Europe/London",
        "day_close_grace": "PT2H",
        "partitions": partitions,
        "students": students_csv,
    }
    return Cohort(topic_prefix, config, tmp_path, students_csv, events_file, paths, days)


def _samples(text: str) -> Iterator[Any]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


class Worker:
    """A ``leap worker`` process that can be killed (SIGKILL), stopped and started again.

    Every incarnation appends to the same log, under a line saying when it started.
    """

    def __init__(self, cohort: Cohort, name: str) -> None:
        self.name = name
        self.config = cohort.worker_config(name)
        self.data_dir = Path(self.config["data_dir"])
        self.env = leap_env(**self.config)
        self.cwd = cohort.workdir
        self.log = cohort.workdir / f"{name}.log"
        self.incarnations = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.config['worker_web_port']}/metrics"

    def start(self) -> None:
        assert self._proc is None, f"{self.name} is already running"
        self.incarnations += 1
        with self.log.open("ab") as out:
            out.write(f"--- {self.name} incarnation {self.incarnations}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "leap.cli", "worker", "--loglevel", WORKER_LOGLEVEL],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no leaving the group, like a lost machine."""
        proc, self._proc = self._proc, None
        assert proc is not None and proc.poll() is None, f"{self.name} died:\n{self.tail()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """SIGTERM: Faust commits, leaves the group and exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def lose_local_state(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def metrics(self) -> list[Any]:
        """This incarnation's /metrics samples; empty while its web server is not up."""
        try:
            return list(_samples(httpx.get(self.metrics_url, timeout=2).text))
        except httpx.HTTPError:
            return []

    def handled(self) -> float:
        """Activity events this incarnation has taken (counted, duplicate or late)."""
        return sum(s.value for s in self.metrics() if s.name == "leap_worker_events_total")

    def recovery_seconds(self) -> float | None:
        found = [s.value for s in self.metrics() if s.name == "leap_worker_table_recovery_seconds"]
        return found[0] if found else None

    def partitions_closed(self) -> set[int]:
        """Partitions this incarnation closed a day on: the ones it owned at some point."""
        return {
            int(s.labels["partition"])
            for s in self.metrics()
            if s.name == "leap_worker_last_closed_day_timestamp_seconds"
        }

    def wait_handling(self, feeder: Feeder, more_than: float = 0) -> None:
        """Block until this incarnation has taken more than ``more_than`` events, fed more
        if it has taken all that were sent."""
        feeder.feed_until(lambda: self.handled() > more_than, f"{self.name} to consume", self.log)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Feeder:
    """Imports the chunks in order, ``gap`` seconds apart, with ``leap import events --ticks``,
    in a thread of its own.

    Chunks wait at a gate: only the first ``allowed`` go on their own (by default all but
    the last, which also ticks event time past the last day's close and waits for
    ``release()``). A test lets more through with ``allow()`` after a fault, so the
    component it faulted must take events sent after the fault: a feeder that had already
    sent all it could would leave nothing to prove, and the test would wait in vain.
    """

    def __init__(
        self, cohort: Cohort, env: dict[str, str], gap: float = 1.0, allowed: int | None = None
    ) -> None:
        self.cohort = cohort
        self.env = env
        self.gap = gap
        self.imported: list[float] = []  # seconds from start() to each chunk's last ack
        self.error: BaseException | None = None
        self.importing = False  # a chunk's import is under way
        self._last = len(cohort.chunks) - 1
        self._allowed = self._last if allowed is None else allowed
        self._waiting = False  # at the gate
        self._waiting_since = 0.0
        self._gate = threading.Condition()
        self._thread = threading.Thread(target=self.run, name="leap-feeder", daemon=True)
        self._started_at = 0.0

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._thread.start()

    def run(self) -> None:
        try:
            for n, chunk in enumerate(self.cohort.chunks):
                with self._gate:
                    self._waiting, self._waiting_since = True, time.monotonic()
                    self._gate.wait_for(lambda n=n: n < self._allowed)  # type: ignore[misc]
                    self._waiting = False
                args = ["import", "events", str(chunk), "--ticks"]
                if n == self._last:
                    args += ["--until", self.cohort.until.isoformat()]
                self.importing = True
                try:
                    run_leap(args, self.env, self.cohort.workdir, timeout=120)
                finally:
                    self.importing = False
                self.imported.append(time.monotonic() - self._started_at)
                time.sleep(self.gap)
        except BaseException as exc:
            self.error = exc

    def allow(self, more: int = 1) -> None:
        """Let ``more`` chunks past the gate; never the last, which is ``release()``'s."""
        with self._gate:
            self._allowed = min(self._allowed + more, self._last)
            self._gate.notify_all()

    def feed_until(self, probe: Callable[[], T | None], what: str, log: Path | None = None) -> T:
        """``wait_for(probe)``, letting one more chunk through whenever the feeder has sat
        at its gate for ``NUDGE_AFTER`` seconds: what a test waits for may need events."""

        def fed_probe() -> T | None:
            with self._gate:
                idle = self._waiting and time.monotonic() - self._waiting_since > NUDGE_AFTER
                if idle and self._allowed < self._last:
                    self._allowed += 1
                    self._gate.notify_all()
            return probe()

        return wait_for(fed_probe, 60, what, log)

    def wait_importing(self) -> None:
        """Block until a chunk's import is under way."""
        self.feed_until(lambda: self.importing, "an import under way")

    def release(self) -> None:
        with self._gate:
            self._allowed = len(self.cohort.chunks)
            self._gate.notify_all()

    def finish(self, timeout: float = 120) -> None:
        self.release()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the importer did not finish"
        if self.error is not None:
            raise AssertionError(f"the importer failed: {self.error}") from self.error


def wait_all_closed(cohort: Cohort, logs: list[Path], timeout: float = 90) -> dict[str, Any]:
    """Every student's indicator in Redis, once all are as of the last day."""
    settings = cohort.settings
    expected = len(load_students(cohort.students_csv))

    def closed() -> dict[str, dict[str, str]] | None:
        states = redis_indicators(settings)
        done = [s for s in states.values() if s["as_of"] == cohort.last.isoformat()]
        return states if len(done) == expected else None

    try:
        return wait_for(closed, timeout, f"every indicator as of {cohort.last}")
    except AssertionError as exc:
        tails = "\n".join(
            f"== {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs
        )
        raise AssertionError(f"{exc}\n{tails}") from None


async def read_all(bootstrap: list[str], topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end offsets now, partition order kept."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            # Without a group every partition is assigned once metadata is in; aiokafka
            # has no event to await for that.
            while not consumer.assignment():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


@dataclass
class _Oracle:
    """What the file says, computed the way ``leap replay`` does."""

    book: DailyTotalsBook
    fingerprints: dict[str, set[str]]  # totals_key -> fingerprints of that student-day
    students: dict[str, Student]
    policy: Policy

    def indicators(self, day: date) -> dict[str, dict[str, Any]]:
        results = indicators_as_of(self.book, self.students, self.policy, day)
        return {r["student_id"]: r for r in results}


def _oracle(cohort: Cohort) -> _Oracle:
    book = DailyTotalsBook(ZONE)
    fingerprints: dict[str, set[str]] = defaultdict(set)
    for item in FileReader(cohort.events_file).items():
        assert not isinstance(item, Rejected | Tick)
        book.add(item)
        day = local_date(item["occurred_at"], ZONE)
        fingerprints[totals_key(item["student_id"], day)].add(event_fingerprint(item["event_id"]))
    return _Oracle(book, fingerprints, load_students(cohort.students_csv), load_policy(None))


@dataclass
class Figures:
    produced: int  # events in the file
    counted: int  # distinct fingerprints in the final day records
    dead_lettered: int
    changes: int  # IndicatorChange records on the topic
    repeated_changes: int  # of which re-published (at-least-once), equal to another

    def __str__(self) -> str:
        return (
            f"produced {self.produced}, counted {self.counted}, dead-lettered "
            f"{self.dead_lettered}, IndicatorChanges {self.changes} "
            f"({self.repeated_changes} repeated)"
        )


def check_against_oracle(cohort: Cohort, states: dict[str, dict[str, str]]) -> Figures:
    """Assert the at-least-once contract (module docstring); return what was counted."""
    settings = cohort.settings
    oracle = _oracle(cohort)
    produced = sum(len(ids) for ids in oracle.fingerprints.values())

    # 1. The day records: each student-day counted exactly its events, once each.
    changelog = f"{settings.app_id}-daily_totals-changelog"
    records: dict[str, Any] = {}
    for message in asyncio.run(read_all(settings.bootstrap_servers, changelog)):
        records[json.loads(message.key)] = json.loads(message.value) if message.value else None
    records = {k: v for k, v in records.items() if v is not None}
    missing_days = sorted(set(oracle.fingerprints) - set(records))
    extra_days = sorted(set(records) - set(oracle.fingerprints))
    assert not missing_days and not extra_days, (missing_days[:10], extra_days[:10])
    for key, record in records.items():
        sid, _, day = key.partition("|")
        want_totals = dict(oracle.book.totals[sid][date.fromisoformat(day)])
        fingerprints = day_fingerprints(record)
        assert len(fingerprints) == len(oracle.fingerprints[key]), key
        assert set(fingerprints) == oracle.fingerprints[key], key
        assert day_sources(record) == want_totals, key
    counted = sum(len(day_fingerprints(r)) for r in records.values())

    # 2. Redis's per-day breakdowns (what the API shows) equal the same totals.
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        for sid in oracle.students:
            got_days = {
                day: {s: to_milli(v) for s, v in json.loads(raw)["sources"].items()}
                for day, raw in client.hgetall(days_key(settings.redis_prefix, sid)).items()
            }
            want_days = {
                d.isoformat(): dict(totals) for d, totals in oracle.book.totals.get(sid, {}).items()
            }
            assert got_days == want_days, (sid, got_days, want_days)
    finally:
        client.close()

    # 3. Redis holds `leap replay`'s indicators, key by key.
    out = run_leap(
        ["replay", str(cohort.events_file), "--students", str(cohort.students_csv),
         "--as-of", cohort.last.isoformat()],
        leap_env(**cohort.config),
        cohort.workdir,
    )  # fmt: skip
    expected = {r["student_id"]: r for r in map(json.loads, out.splitlines())}
    assert set(states) == set(expected) == set(oracle.students)
    for sid, want in expected.items():
        got = states[sid]
        assert (
            got["as_of"],
            got["indicator"],
            float(got["score"]),
            float(got["reference_score"]),
            int(got["window_days"]),
        ) == (
            want["as_of"],
            want["indicator"],
            want["score"],
            want["reference_score"],
            want["window_days"],
        ), (sid, got, want)

    # 4. IndicatorChanges: none contradicts the oracle, none is missing.
    codec = indicator_change_codec()
    got_changes = [
        (c["student_id"], c["as_of"], c["previous_indicator"], c["indicator"], c["score"])
        for c in (
            codec.decode(m.value)
            for m in asyncio.run(
                read_all(settings.bootstrap_servers, settings.indicator_changes_topic)
            )
        )
    ]
    want_changes = set()
    previous: dict[str, str | None] = dict.fromkeys(oracle.students)
    for offset in range(cohort.days):
        as_of = START + timedelta(days=offset)
        for sid, result in oracle.indicators(as_of).items():
            if result["indicator"] != previous[sid]:
                want_changes.add((sid, as_of, previous[sid], result["indicator"], result["score"]))
            previous[sid] = result["indicator"]
    contradicting = set(got_changes) - want_changes
    assert not contradicting, (
        f"{len(contradicting)} changes contradict replay: {sorted(contradicting)[:5]}; replay "
        f"says: {sorted(c for c in want_changes if c[0] in {x[0] for x in contradicting})[:10]}"
    )
    missing = want_changes - set(got_changes)
    assert not missing, f"{len(missing)} changes never published: {sorted(missing)[:5]}"

    dead = asyncio.run(read_all(settings.bootstrap_servers, settings.dead_letter_topic))
    assert not dead, [dict(m.headers) for m in dead]
    repeated = sum(n - 1 for n in Counter(got_changes).values())
    return Figures(produced, counted, len(dead), len(got_changes), repeated)
