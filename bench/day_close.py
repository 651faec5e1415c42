"""Day close for a whole institution: the worker's own code path vs the same query in PostgreSQL.

Builds ``--days`` days of daily totals for ``--students`` synthetic students (a
``leap.replay.DailyTotalsBook``), then times, several times each:

1. scoring alone: ``leap replay``'s full recompute (``leap.replay.indicators_as_of``), and
   the worker's (``streams.student_windows``: each window slid on from the day before,
   then ``leap.scoring.score_cohort`` per cohort) for every student as of the last day;
2. the worker's day close, end to end in this process: ``streams.day_close.DayCloser``
   for every partition (scores, alerts, reports to Kafka), the reports read back and
   banded by ``streams.cohort_banding.CohortBanding`` (``cohort_rounds`` and
   ``indicators`` tables, ``IndicatorChange`` records acknowledged by Kafka), and
   ``streams.redis_sink.RedisSink`` flushed — over Faust tables in memory holding the
   book, as ``streams.app.create_app`` wires them on one worker (without PostgreSQL
   history, whose upserts run in the background). The day before the last
   is closed first (everyone's first indicator, so everyone "changes"), then the last
   day (only real changes) in the steady state: the tables also hold a day of records
   just past the days kept (a copy of the first day's), which that close purges, as
   every close does once a deployment has run for longer than they are kept. After each
   partition's close the producer is flushed, as the agent's commit does (``InSequence``);
3. PostgreSQL: the same computation as one SQL query over a table of
   (student, day, source, units) — window sum with weights and caps, ``percentile_cont``
   median per cohort, bands with CASE — in a private database. The worker's indicators
   and PostgreSQL's are checked against replay's.

``--baseline-tree DIR`` times only the worker's closes (2.), from this tree and from the
code in DIR (``git archive REV | tar -x -C DIR``), each in its own process, alternating
which goes first, for a before/after on the same machine and data.

    python -m bench.day_close                       # 50,000 students, 8 days
    python -m bench.day_close --students 10000 --runs 3
    python -m bench.day_close --baseline-tree /tmp/before --runs 5
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.serializers import codecs
from faust.types import EventT
from prometheus_client import REGISTRY

import streams.day_close
from bench.common import (
    bench_parser,
    cleanup_redis,
    delete_topics,
    kafka_bootstrap,
    median,
    postgres_admin_dsn,
    print_table,
    quick,
    scratch_database,
    synthetic_term,
)
from connectors.publisher import Tick
from leap.contact import ContactPreferences
from leap.institution import load_institution
from leap.policy import load_policy
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.roster import Roster
from leap.scoring import score_cohort
from leap.settings import Settings
from schemas.codec import engagement_alert_codec, indicator_change_codec
from streams.alerting import NoEngagementAlerts
from streams.cohort_banding import CohortBanding
from streams.current_event import processing
from streams.day_close import DayCloser
from streams.day_record import DayRecord, totals_key
from streams.indicator_record import indicator_state
from streams.redis_sink import RedisSink
from streams.student_windows import StudentWindows

SCHEMA = """
CREATE TABLE daily_totals (
    student_id text NOT NULL, day date NOT NULL, source text NOT NULL,
    units bigint NOT NULL,  -- thousandths, as LEAP keeps them
    PRIMARY KEY (student_id, day, source)
);
CREATE TABLE students (
    student_id text PRIMARY KEY, course text NOT NULL, year int NOT NULL,
    window_days int NOT NULL
);
CREATE TABLE rules (source text PRIMARY KEY, weight float8 NOT NULL, cap float8 NOT NULL);
"""

# $1 as-of date, $2 min cohort size, $3 absolute reference, $4-$7 band ratios (high..low).
QUERY = """
WITH scores AS (
    SELECT s.student_id, s.course, s.year,
           COALESCE(SUM(r.weight * LEAST(t.units / 1000.0::float8, r.cap)), 0)
               / s.window_days AS score
    FROM students s
    LEFT JOIN daily_totals t
        ON t.student_id = s.student_id AND t.day > $1::date - s.window_days AND t.day <= $1
    LEFT JOIN rules r ON r.source = t.source
    GROUP BY s.student_id, s.course, s.year, s.window_days
), reference AS (
    SELECT course, year,
           CASE WHEN COUNT(*) < $2 THEN $3
                ELSE COALESCE(NULLIF(percentile_cont(0.5) WITHIN GROUP (ORDER BY score), 0), $3)
           END AS reference
    FROM scores GROUP BY course, year
)
SELECT s.student_id,
       CASE WHEN s.score <= 0 THEN 'very_low'
            WHEN s.score / f.reference >= $4 THEN 'high'
            WHEN s.score / f.reference >= $5 THEN 'good'
            WHEN s.score / f.reference >= $6 THEN 'partial'
            WHEN s.score / f.reference >= $7 THEN 'low'
            ELSE 'very_low' END AS indicator
FROM scores s JOIN reference f USING (course, year)
"""

#: What the stand-in events name as their topic (table writes check it once).
SOURCE_TOPIC = "bench.source"


def windows_close(
    roster: Roster, book: DailyTotalsBook, as_of: date
) -> tuple[float, dict[str, str]]:
    """The worker's scoring of every partition as of ``as_of``, its windows slid on from
    the day before (kept beforehand, untimed, as a running worker has them): (seconds,
    indicators)."""
    windows = StudentWindows(roster.policy)
    empty: dict[date, dict[str, int]] = {}

    def totals_of(sid: str) -> Any:
        return book.totals.get(sid, empty).get

    def close(day: date) -> dict[str, dict[str, float]]:
        cohorts: dict[str, dict[str, float]] = {}
        for partition in range(roster.partitions):
            students = roster.on_partition(partition)
            summaries = windows.close(
                partition, day, [(s.student_id, roster.window_days(s)) for s in students], totals_of
            )
            for s in students:
                cohorts.setdefault(s.cohort, {})[s.student_id] = summaries[s.student_id].score
        return cohorts

    close(as_of - timedelta(days=1))
    started = time.perf_counter()
    indicators: dict[str, str] = {}
    for scores in close(as_of).values():
        indicators.update(score_cohort(scores, roster.policy).indicators)
    return time.perf_counter() - started, indicators


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.topic = SOURCE_TOPIC


class _Event:
    """What an agent's current event gives the close: its partition."""

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


@dataclass
class CloseTimes:
    stage1: float  # DayCloser.close for every partition: scores, alerts, reports acked
    reports: float  # reading the reports back from Kafka
    stage2: float  # CohortBanding: bands, changes acked, tables written
    redis: float  # RedisSink flushed
    changes: int
    purge: float  # of stage1: old day records dropped, their changelog records acked
    purged: int  # day records dropped
    cpu: float  # this process's CPU seconds for the whole close (what contention inflates less)
    purge_cpu: float  # of which the purge's

    @property
    def total(self) -> float:
        return self.stage1 + self.reports + self.stage2 + self.redis


class _Spent:
    """Wall-clock and CPU seconds spent in one part of a close, summed over its calls."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


class Worker:
    """One worker's day-close objects, wired as ``streams.app.create_app`` wires them,
    over Faust tables kept in memory (loaded straight into the store), with a real
    producer, Kafka topics and Redis; the agents' loops are replaced by direct calls."""

    def __init__(self, settings: Settings, roster: Roster, book: DailyTotalsBook) -> None:
        self.settings, self.roster, self.book = settings, roster, book
        n = settings.partitions
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
            store="memory://",
            topic_partitions=n,
            key_serializer="json",
            producer_acks=-1,
            producer_max_batch_size=settings.producer_max_batch_size,
        )
        table: dict[str, Any] = {"partitions": n}
        self.daily_totals = self.app.Table("daily_totals", **table)
        self.tables = [
            self.daily_totals,
            self.app.Table("cohort_rounds", **table),
            self.app.Table("indicators", **table),
            self.app.Table("alerts", **table),
        ]
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.cohort_topic = self.app.topic(
            settings.cohort_scores_topic,
            partitions=n,
            key_serializer="raw",
            value_serializer="json",
        )
        self.sink = RedisSink(settings.redis_url, settings.redis_prefix)
        preferences = ContactPreferences()
        self.closer = DayCloser(
            settings,
            roster.policy,
            roster,
            self.daily_totals,
            self.cohort_topic,
            self.sink,
            NoEngagementAlerts(
                roster,
                preferences,
                self.daily_totals,
                self.tables[3],
                self.app.topic(settings.alerts_topic, **raw),
                engagement_alert_codec(None, settings.alerts_topic),
            ),
        )
        self.purge = _Spent()
        self._time_purges()
        self.banding = CohortBanding(
            roster.policy,
            roster,
            self.tables[1],
            self.tables[2],
            self.app.topic(settings.indicator_changes_topic, **raw),
            indicator_change_codec(None, settings.indicator_changes_topic),
            self.sink,
            settings.lateness_horizon_days,
            preferences,
            None,
        )
        self.reports = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )

    def _time_purges(self) -> None:
        """Time the close's purge of old day records wherever it is made durable: in a
        TableBatch committed by the close, or (the code before it) in Faust's producer
        buffer flushed after the close, which ``close`` then adds to ``purge``."""
        forget = self.closer._forget_day_records

        def timed_forget(*args: Any) -> None:
            with self.purge.timing():
                forget(*args)

        self.closer._forget_day_records = timed_forget  # type: ignore[method-assign, assignment]
        batch = getattr(streams.day_close, "TableBatch", None)
        self.purge_flushed = batch is None
        if batch is not None:
            worker = self

            class TimedBatch(batch):  # type: ignore[misc, valid-type]
                async def commit(self) -> None:
                    with worker.purge.timing():
                        await super().commit()

            streams.day_close.TableBatch = TimedBatch  # type: ignore[misc]

    async def start(self, purged_day: date) -> None:
        """Create the topics, load the book into the tables, and a copy of its first
        day's records dated ``purged_day`` (for a close to purge)."""
        s, n = self.settings, self.settings.partitions
        names = [s.cohort_scores_topic, s.indicator_changes_topic, s.alerts_topic]
        names += [t.changelog_topic.get_topic_name() for t in self.tables]
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, n, 1) for name in names])
        finally:
            await admin.close()
        await self.app.producer.start()
        for t in self.tables:  # the stand-in events' topic has the tables' partitions
            t._verified_source_topics_for_partitions.add(SOURCE_TOPIC)  # type: ignore[attr-defined]
        store = self.daily_totals.data
        first = min(day for days in self.book.totals.values() for day in days)
        for sid, days in self.book.totals.items():
            for day, sources in days.items():
                store[totals_key(sid, day)] = DayRecord(dict(sources)).to_table()
            if first in days:
                store[totals_key(sid, purged_day)] = DayRecord(dict(days[first])).to_table()
        await self.reports.start()
        partitions = [TopicPartition(s.cohort_scores_topic, p) for p in range(n)]
        self.reports.assign(partitions)
        await self.reports.seek_to_beginning(*partitions)

    async def close(self, day: date, history_starts: date) -> CloseTimes:
        changes, records = _changes(), len(self.daily_totals.data)
        self.purge = purge = _Spent()
        cpu, started = time.process_time(), time.perf_counter()
        for partition in range(self.settings.partitions):
            event = cast(EventT, _Event(partition))
            await self.closer.close(event, day, history_starts)
            with purge.timing() if self.purge_flushed else contextlib.nullcontext():
                await self.app.producer.flush()  # what the agent's commit does first
        stage1 = time.perf_counter()
        purged = records - len(self.daily_totals.data)
        expected = self.settings.partitions * len(self.roster.cohorts())
        reports: list[tuple[dict[str, Any], int]] = []
        while len(reports) < expected:
            for messages in (await self.reports.getmany(timeout_ms=10_000)).values():
                reports += [(codecs.loads("json", m.value), m.partition) for m in messages]
        read = time.perf_counter()
        for report, partition in reports:
            with processing(cast(EventT, _Event(partition))):
                await self.banding.on_report(report, partition)
        await self.app.producer.flush()  # rounds written through Faust's buffer
        stage2 = time.perf_counter()
        await self.sink.flush()
        done = time.perf_counter()
        return CloseTimes(
            stage1 - started,
            read - stage1,
            stage2 - read,
            done - stage2,
            _changes() - changes,
            purge.wall,
            purged,
            time.process_time() - cpu,
            purge.cpu,
        )

    def indicators(self) -> dict[str, dict[str, str]]:
        return {
            sid: state
            for sid, value in self.tables[2].data.items()
            if (state := indicator_state(sid, value)) is not None
        }

    async def stop(self) -> None:
        await self.reports.stop()
        await self.app.producer.stop()
        await self.sink.redis.aclose()


def _changes() -> int:
    return int(
        REGISTRY.get_sample_value("leap_worker_indicator_changes_total", {"reason": "day_close"})
        or 0
    )


async def worker_run(
    settings: Settings, roster: Roster, book: DailyTotalsBook, as_of: date, first: date
) -> tuple[CloseTimes, CloseTimes, dict[str, dict[str, str]]]:
    """A fresh worker closes the day before ``as_of`` (everyone's first indicator), then
    ``as_of``; its topics and Redis keys are removed after."""
    run = f"bench{uuid.uuid4().hex[:6]}"
    settings = settings.model_copy(
        update={
            "app_id": run,
            "redis_prefix": f"{run}:",
            "cohort_scores_topic": f"{run}.cohort-scores",
            "indicator_changes_topic": f"{run}.indicator-changes",
            "alerts_topic": f"{run}.alerts",
        }
    )
    worker = Worker(settings, roster, book)
    try:
        await worker.start(as_of - timedelta(days=worker.closer.keep_days + 1))
        first_day = await worker.close(as_of - timedelta(days=1), first)
        next_day = await worker.close(as_of, first)
        return first_day, next_day, worker.indicators()
    finally:
        await worker.stop()
        cleanup_redis(settings.redis_url, settings.redis_prefix)
        await delete_topics(settings.kafka_bootstrap, run)


async def postgres(
    book: DailyTotalsBook, roster: Roster, as_of: date, runs: int
) -> tuple[float, list[float], dict[str, str]]:
    """(load seconds, query seconds per run, indicators) in a private database."""
    async with scratch_database(postgres_admin_dsn()) as dsn:
        db = await asyncpg.connect(dsn)
        try:
            policy = roster.policy
            started = time.perf_counter()
            await db.execute(SCHEMA)
            await db.copy_records_to_table(
                "rules",
                records=[(s, r.weight, r.cap) for s, r in policy.sources.items()],
            )
            await db.copy_records_to_table(
                "students",
                records=[
                    (sid, s.course, s.year, roster.window_days(s)) for sid, s in roster.items()
                ],
            )
            await db.copy_records_to_table(
                "daily_totals",
                records=[
                    (sid, day, source, units)
                    for sid, days in book.totals.items()
                    for day, sources in days.items()
                    for source, units in sources.items()
                ],
            )
            await db.execute("VACUUM ANALYZE")
            load = time.perf_counter() - started
            ratios = [b.min_ratio for b in policy.bands[:4]]
            timings, rows = [], []
            for _ in range(runs):
                started = time.perf_counter()
                rows = await db.fetch(
                    QUERY, as_of, policy.min_cohort_size, policy.absolute_reference, *ratios
                )
                timings.append(time.perf_counter() - started)
            return load, timings, {r["student_id"]: r["indicator"] for r in rows}
        finally:
            await db.close()


@dataclass
class Term:
    """The synthetic term every measurement reads."""

    people: list[Any]
    book: DailyTotalsBook
    roster: Roster
    as_of: date
    first: date


def build_term(students: int, days: int, base: Settings) -> Term:
    started = time.perf_counter()
    people, term = synthetic_term(students, days, base)
    book = DailyTotalsBook(base.zone)
    book.add_all(i for i in term.items() if not isinstance(i, Tick))
    policy = load_policy(base.policy)
    roster = Roster(load_institution(base.institution), policy, base.partitions, people)
    first = min(day for days in book.totals.values() for day in days)
    rows_count = sum(len(s) for d in book.totals.values() for s in d.values())
    print(
        f"{len(roster):,} students in scope on {base.partitions} partitions, {days} days, "
        f"{rows_count:,} (student, day, source) totals, built in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
        file=sys.stderr,
    )
    return Term(people, book, roster, term.last_day, first)


#: A child process of ``--baseline-tree``: the code under test first on its path, then a
#: copy of this script (the tree's own may predate what it measures).
CHILD = (
    "import sys; sys.path[:0] = sys.argv[1:3]; del sys.argv[1:3]; "
    "import day_close_bench; day_close_bench.child()"
)


def child() -> None:
    """One worker run (the first day's close, then the steady state's), as JSON on stdout."""
    parser = bench_parser(__doc__)
    parser.add_argument("--students", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    args = parser.parse_args()
    base = Settings()  # type: ignore[call-arg]
    term = build_term(args.students, args.days, base)
    with kafka_bootstrap() as bootstrap:
        settings = base.model_copy(update={"kafka_bootstrap": bootstrap})
        first_day, next_day, _ = asyncio.run(
            worker_run(settings, term.roster, term.book, term.as_of, term.first)
        )
    print(json.dumps({"first": asdict(first_day), "next": asdict(next_day)}))


def compare_trees(baseline: Path, students: int, days: int, runs: int) -> None:
    """The worker's closes from ``baseline`` and from this tree, in turns (see --help)."""
    here = Path(__file__).resolve().parents[1]
    trees = {"before": baseline.resolve(), "after": here}
    found: dict[str, list[dict[str, CloseTimes]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="leap-day-close-") as scripts:
        shutil.copy(Path(__file__), Path(scripts) / "day_close_bench.py")
        sizes = ["--students", str(students), "--days", str(days)]
        for run in range(runs):
            order = list(trees) if run % 2 == 0 else list(trees)[::-1]
            for name in order:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(trees[name]), scripts, *sizes],
                    cwd=trees[name],
                    check=True,
                    stdout=subprocess.PIPE,
                    text=True,
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                found[name].append({k: CloseTimes(**v) for k, v in result.items()})
                closes = found[name][-1]
                print(
                    f"  {name}: first day {closes['first'].total:.2f} s "
                    f"({closes['first'].cpu:.2f} s CPU), steady state "
                    f"{closes['next'].total:.2f} s ({closes['next'].cpu:.2f} s CPU; purge "
                    f"{closes['next'].purge:.2f} s, {closes['next'].purge_cpu:.2f} s CPU, "
                    f"{closes['next'].purged:,} records)",
                    flush=True,
                )
    rows: list[list[Any]] = []
    for label, which, part in (
        ("first-day close (everyone's first indicator)", "first", "total"),
        ("  of which CohortBanding (stage 2)", "first", "stage2"),
        ("  of which RedisSink flushed", "first", "redis"),
        ("  CPU seconds", "first", "cpu"),
        ("steady-state close (a day of records purged)", "next", "total"),
        ("  of which the purge, acked", "next", "purge"),
        ("  CPU seconds", "next", "cpu"),
        ("  of which the purge's", "next", "purge_cpu"),
    ):
        before = median([getattr(c[which], part) for c in found["before"]])
        after = median([getattr(c[which], part) for c in found["after"]])
        rows.append([label, before, after, f"x{before / after:.2f}"])
    purged = int(median([c["next"].purged for c in found["after"]]))
    print_table(
        f"Day close at {students:,} students, before ({baseline}) and after (this tree), "
        f"medians of {runs} interleaved runs; {purged:,} day records purged",
        ["close", "before, s", "after, s", "speed-up"],
        rows,
    )


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--students", type=int)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="Time only the worker's closes, from this tree and DIR, interleaved.",
    )
    args = parser.parse_args()
    small = quick(args)
    students = args.students or (10_000 if small else 50_000)
    runs = args.runs or 3
    if args.baseline_tree is not None:
        compare_trees(args.baseline_tree, students, args.days, runs)
        return
    base = Settings()  # type: ignore[call-arg]
    policy = load_policy(base.policy)
    institution = load_institution(base.institution)
    term = build_term(students, args.days, base)
    book, roster, as_of, first = term.book, term.roster, term.as_of, term.first
    reference = {s.student_id: s for s in term.people}

    replay_s, windows_s = [], []
    first_days: list[CloseTimes] = []
    next_days: list[CloseTimes] = []
    results: list[dict[str, Any]] = []
    worker_states: dict[str, dict[str, str]] = {}
    windowed: dict[str, str] = {}
    with kafka_bootstrap() as bootstrap:
        settings = base.model_copy(update={"kafka_bootstrap": bootstrap})
        for _ in range(runs):
            started = time.perf_counter()
            results = indicators_as_of(book, reference, policy, as_of, institution)
            replay_s.append(time.perf_counter() - started)
            seconds, windowed = windows_close(roster, book, as_of)
            windows_s.append(seconds)
            first_day, next_day, worker_states = asyncio.run(
                worker_run(settings, roster, book, as_of, first)
            )
            first_days.append(first_day)
            next_days.append(next_day)
            print(
                f"  scoring: replay {replay_s[-1]:.2f} s, worker's windows {windows_s[-1]:.2f} s; "
                f"worker close, first day {first_day.total:.2f} s "
                f"({first_day.changes:,} changes), next day {next_day.total:.2f} s "
                f"({next_day.changes:,} changes, {next_day.purged:,} records purged in "
                f"{next_day.purge:.2f} s)",
                flush=True,
            )
    load_s, sql_s, sql_indicators = asyncio.run(postgres(book, roster, as_of, runs))
    replayed = {r["student_id"]: r for r in results}
    agree = {
        "PostgreSQL": sum(sql_indicators.get(s) == r["indicator"] for s, r in replayed.items()),
        "the worker's windows": sum(windowed.get(s) == r["indicator"] for s, r in replayed.items()),
        "the worker's close (indicator and score)": sum(
            (state := worker_states.get(s)) is not None
            and state["indicator"] == r["indicator"]
            and float(state["score"]) == r["score"]
            for s, r in replayed.items()
        ),
    }

    n = len(roster)
    replay, windows, sql = median(replay_s), median(windows_s), median(sql_s)
    rows: list[list[Any]] = [
        ["leap replay's scoring: full recompute (indicators_as_of)", replay, n / replay],
        ["worker's scoring: windows slid one day + score_cohort", windows, n / windows],
    ]
    for label, closes in (("first day", first_days), ("next day", next_days)):
        changes = int(median([c.changes for c in closes]))
        total = median([c.total for c in closes])
        rows.append(
            [f"**worker day close, {label}** ({changes:,} IndicatorChanges)", total, n / total]
        )
        for part, what in (
            ("stage1", "DayCloser, every partition: scores, alerts, reports acked"),
            ("reports", "reports read back from Kafka"),
            ("stage2", "CohortBanding: bands, changes acked, tables written"),
            ("redis", "RedisSink flushed"),
        ):
            seconds = median([getattr(c, part) for c in closes])
            rows.append([f"  {what}", seconds, n / seconds])
        if label == "next day":
            seconds = median([c.purge for c in closes])
            purged = int(median([c.purged for c in closes]))
            rows.append(
                [f"  of DayCloser: {purged:,} old day records purged", seconds, n / seconds]
            )
    rows += [
        ["PostgreSQL: the same computation, one query", sql, n / sql],
        ["PostgreSQL: loading the totals (COPY + ANALYZE, once)", load_s, n / load_s],
    ]
    print_table(
        f"Day close: {n:,} students as of {as_of} ({args.days} days of totals, medians of {runs})",
        ["step", "seconds", "students/s"],
        rows,
    )
    next_total = median([c.total for c in next_days])
    print(
        f"PostgreSQL query / worker's scoring: {sql / windows:.1f}x (/ replay's: "
        f"{sql / replay:.1f}x); worker's next-day close <= 10 s: "
        f"{'yes' if next_total <= 10 else 'no'}; indicators agreeing with replay's: "
        + ", ".join(f"{what} {count:,}" for what, count in agree.items())
        + f" of {len(replayed):,}"
    )


if __name__ == "__main__":
    main()
