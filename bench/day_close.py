"""Day close for a whole institution: LEAP's rules in-process vs the same query in PostgreSQL.

Builds ``--days`` days of daily totals for ``--students`` synthetic students (a
``leap.replay.DailyTotalsBook``), then times, several times each:

1. scoring: ``leap.replay.indicators_as_of`` (the functions the stream calls: windowed
   score, cohort median, bands) for every student as of the last day;
2. Redis: those indicator states through the worker's own ``streams.redis_sink.RedisSink``
   (MULTI transactions of 500 hashes), and as plain pipelined HSETs;
3. changes: every indicator encoded as an ``IndicatorChange`` and produced to Kafka,
   acknowledged (a first day: everyone "changed");
4. PostgreSQL: the same computation as one SQL query over a table of
   (student, day, source, units) — window sum with weights and caps, ``percentile_cont``
   median per cohort, bands with CASE — in a private database; results are checked to
   agree with LEAP's.

    python -m bench.day_close                       # 50,000 students, 8 days
    python -m bench.day_close --students 10000 --runs 3
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import (
    bench_parser,
    cleanup_redis,
    delete_topics,
    kafka_bootstrap,
    median,
    postgres_admin_dsn,
    print_table,
    quick,
    synthetic_term,
)
from connectors.publisher import Tick
from leap.institution import load_institution
from leap.policy import load_policy
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.roster import Roster
from leap.scoring import daily_engagement, score_cohort, window_dates
from leap.settings import Settings
from leap.state_keys import indicator_key
from schemas.codec import indicator_change_codec
from streams.redis_sink import RedisSink

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


def engagement_cache(
    book: DailyTotalsBook, roster: Roster, before: date
) -> dict[str, dict[date, float]]:
    """What the stream would already hold at this close, had it kept each closed day's
    engagement (``leap.scoring.daily_engagement``) when it closed that day."""
    return {
        sid: {
            day: daily_engagement(totals, roster.policy)
            for day, totals in book.totals.get(sid, {}).items()
            if day < before and totals
        }
        for sid in roster
    }


def incremental_close(
    book: DailyTotalsBook, roster: Roster, cache: dict[str, dict[date, float]], as_of: date
) -> dict[str, str]:
    """Prototype of an incremental day close: only the closing day's engagement is new;
    each score sums the cached days of its window, in ``window_score``'s order, so it is
    the same float ``student_score`` gives; cohorts are banded by ``score_cohort``."""
    policy = roster.policy
    dates = {w: window_dates(as_of, w) for w in {roster.window_days(s) for s in roster.values()}}
    cohorts: dict[str, dict[str, float]] = {}
    for sid, student in roster.items():
        daily = cache[sid]
        totals = book.totals.get(sid, {}).get(as_of)
        if totals:
            daily[as_of] = daily_engagement(totals, policy)
        window = dates[roster.window_days(student)]
        score = sum(daily.get(day, 0.0) for day in window) / len(window)
        cohorts.setdefault(student.cohort, {})[sid] = score
    indicators: dict[str, str] = {}
    for scores in cohorts.values():
        indicators.update(score_cohort(scores, policy).indicators)
    return indicators


def state_of(result: dict[str, Any]) -> dict[str, str]:
    """The indicator hash the worker writes (``streams.cohort_banding``)."""
    return {
        "student_id": result["student_id"],
        "indicator": result["indicator"],
        "label": result["label"],
        "score": repr(result["score"]),
        "reference_score": repr(result["reference_score"]),
        "as_of": result["as_of"],
        "window_days": str(result["window_days"]),
        "policy_version": result["policy_version"],
        "course": result["course"],
        "year": str(result["year"]),
        "updated_at": "2026-10-13T03:00:00+00:00",
    }


async def redis_sink_write(url: str, prefix: str, states: dict[str, dict[str, str]]) -> float:
    sink = RedisSink(url, prefix)
    try:
        started = time.perf_counter()
        await sink.write_indicators(states)
        await sink.flush()
        return time.perf_counter() - started
    finally:
        await sink.redis.aclose()


async def redis_pipelined(url: str, prefix: str, states: dict[str, dict[str, str]]) -> float:
    client = aioredis.Redis.from_url(url)
    try:
        started = time.perf_counter()
        items = list(states.items())
        for start in range(0, len(items), 1000):
            pipe = client.pipeline(transaction=False)
            for sid, state in items[start : start + 1000]:
                pipe.hset(indicator_key(prefix, sid), mapping=state)  # type: ignore[arg-type]
            await pipe.execute()
        return time.perf_counter() - started
    finally:
        await client.aclose()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def emit_changes(bootstrap: str, topic: str, results: list[dict[str, Any]]) -> float:
    codec = indicator_change_codec(topic=topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=64 * 1024
    )
    await producer.start()
    try:
        started = time.perf_counter()
        sent = []
        now = datetime.now(UTC)
        for r in results:
            change = {
                "student_id": r["student_id"],
                "as_of": date.fromisoformat(r["as_of"]),
                "previous_indicator": None,
                "indicator": r["indicator"],
                "score": r["score"],
                "reference_score": r["reference_score"],
                "window_days": r["window_days"],
                "policy_version": r["policy_version"],
                "reason": "day_close",
                "course": r["course"],
                "year": r["year"],
                "contact_allowed": True,
                "emitted_at": now,
            }
            sent.append(
                await producer.send(topic, key=r["student_id"].encode(), value=codec.encode(change))
            )
        await asyncio.gather(*sent)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def postgres(
    book: DailyTotalsBook, roster: Roster, as_of: date, runs: int
) -> tuple[float, list[float], dict[str, str]]:
    """(load seconds, query seconds per run, indicators) in a private database."""
    admin_dsn = postgres_admin_dsn()
    name = f"leapbench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(admin_dsn)
    dsn = f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
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
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--students", type=int)
    parser.add_argument("--days", type=int, default=8)
    args = parser.parse_args()
    small = quick(args)
    students = args.students or (10_000 if small else 50_000)
    runs = args.runs or (3 if small else 5)
    settings = Settings()  # type: ignore[call-arg]
    policy = load_policy(settings.policy)
    institution = load_institution(settings.institution)

    started = time.perf_counter()
    people, term = synthetic_term(students, args.days, settings)
    book = DailyTotalsBook(settings.zone)
    book.add_all(i for i in term.items() if not isinstance(i, Tick))
    reference = {s.student_id: s for s in people}
    roster = Roster(institution, policy, 1, people)
    as_of = term.last_day
    rows_count = sum(len(s) for d in book.totals.values() for s in d.values())
    print(
        f"{len(roster):,} students in scope, {args.days} days, {rows_count:,} "
        f"(student, day, source) totals, built in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    score_s, incremental_s, redis_sink_s, redis_pipe_s, changes_s = [], [], [], [], []
    incremental: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    with kafka_bootstrap() as bootstrap:
        topic = f"{prefix.rstrip(':')}.indicator-changes"
        asyncio.run(create_topic(bootstrap, topic, settings.partitions))
        for _ in range(runs):
            started = time.perf_counter()
            results = indicators_as_of(book, reference, policy, as_of, institution)
            score_s.append(time.perf_counter() - started)
            cache = engagement_cache(book, roster, as_of)
            started = time.perf_counter()
            incremental = incremental_close(book, roster, cache, as_of)
            incremental_s.append(time.perf_counter() - started)
            states = {r["student_id"]: state_of(r) for r in results}
            try:
                redis_sink_s.append(
                    asyncio.run(redis_sink_write(settings.redis_url, prefix, states))
                )
                cleanup_redis(settings.redis_url, prefix)
                redis_pipe_s.append(
                    asyncio.run(redis_pipelined(settings.redis_url, prefix, states))
                )
            finally:
                cleanup_redis(settings.redis_url, prefix)
            changes_s.append(asyncio.run(emit_changes(bootstrap, topic, results)))
            print(
                f"  scoring {score_s[-1]:.2f} s, Redis (sink) {redis_sink_s[-1]:.2f} s, "
                f"Redis (pipelined) {redis_pipe_s[-1]:.2f} s, changes {changes_s[-1]:.2f} s",
                flush=True,
            )
        asyncio.run(delete_topics(bootstrap, topic))
    load_s, sql_s, sql_indicators = asyncio.run(postgres(book, roster, as_of, runs))
    leap_indicators = {r["student_id"]: r["indicator"] for r in results}
    agree = sum(1 for sid, ind in leap_indicators.items() if sql_indicators.get(sid) == ind)
    same = sum(1 for sid, ind in leap_indicators.items() if incremental.get(sid) == ind)

    score, sql = median(score_s), median(sql_s)
    total = score + median(redis_sink_s) + median(changes_s)
    print_table(
        f"Day close: {len(roster):,} students as of {as_of} ({args.days} days of totals, "
        f"medians of {runs})",
        ["step", "seconds", "students/s"],
        [
            ["LEAP scoring (leap.scoring via leap.replay, in-process)", score, len(roster) / score],
            [
                "LEAP scoring, incremental prototype (closed days' engagement kept)",
                median(incremental_s),
                len(roster) / median(incremental_s),
            ],
            [
                "Redis: worker's RedisSink (MULTI, 500 hashes each)",
                median(redis_sink_s),
                len(roster) / median(redis_sink_s),
            ],
            [
                "Redis: plain pipelined HSETs, 1000 a round trip",
                median(redis_pipe_s),
                len(roster) / median(redis_pipe_s),
            ],
            [
                "IndicatorChange encode + produce, acked",
                median(changes_s),
                len(roster) / median(changes_s),
            ],
            ["LEAP total (scoring + RedisSink + changes)", total, len(roster) / total],
            ["PostgreSQL: same computation, one query", sql, len(roster) / sql],
            ["PostgreSQL: loading the totals (COPY + ANALYZE, once)", load_s, len(roster) / load_s],
        ],
    )
    print(
        f"PostgreSQL query / LEAP scoring: {sql / score:.1f}x (incremental prototype: "
        f"{sql / median(incremental_s):.1f}x); LEAP total ≤ 10 s: "
        f"{'yes' if total <= 10 else 'no'}; indicators agreeing with LEAP's: PostgreSQL "
        f"{agree:,}, incremental {same:,}, of {len(leap_indicators):,}"
    )


if __name__ == "__main__":
    main()
