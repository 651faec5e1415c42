"""Throughput and memory of the Moodle connector catching up on a big log.

Fills ``mdl_logstore_standard_log`` in a fresh database with ``--rows`` rows (one
``generate_series`` INSERT: a realistic mix of student, teacher, cron and log-in-as rows,
some users without an idnumber), then times one ``run_once`` into fresh topics and reports
rows/s and the process's peak RSS, which must not grow with the table (keyset batches).

    python bench/moodle_poller.py --rows 1000000           # starts Apache Kafka
    LEAP_KAFKA_BOOTSTRAP=127.0.0.1:9092 python bench/moodle_poller.py

The database is created through LEAP_BENCH_POSTGRES_DSN (default: the local server's Unix
socket as the current OS user, as `scripts/services.sh` sets up) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import time
import uuid

import asyncpg

from bench.common import scratch_database
from connectors.moodle import MoodleConfig
from connectors.moodle_cli import run_poller
from leap.brokers import KafkaBroker
from leap.settings import Settings
from streams.topics import ensure_topics

DDL = """
CREATE TABLE mdl_user (
    id BIGSERIAL PRIMARY KEY, deleted SMALLINT NOT NULL DEFAULT 0,
    username VARCHAR(100) NOT NULL DEFAULT '', idnumber VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE TABLE mdl_course (
    id BIGSERIAL PRIMARY KEY, shortname VARCHAR(255) NOT NULL DEFAULT '',
    format VARCHAR(21) NOT NULL DEFAULT 'topics'
);
CREATE TABLE mdl_logstore_standard_log (
    id BIGSERIAL PRIMARY KEY, eventname VARCHAR(255) NOT NULL DEFAULT '',
    component VARCHAR(100) NOT NULL DEFAULT '', action VARCHAR(100) NOT NULL DEFAULT '',
    target VARCHAR(100) NOT NULL DEFAULT '', objecttable VARCHAR(50), objectid BIGINT,
    crud VARCHAR(1) NOT NULL DEFAULT '', edulevel SMALLINT NOT NULL, contextid BIGINT NOT NULL,
    contextlevel BIGINT NOT NULL, contextinstanceid BIGINT NOT NULL, userid BIGINT NOT NULL,
    courseid BIGINT, relateduserid BIGINT, anonymous SMALLINT NOT NULL DEFAULT 0, other TEXT,
    timecreated BIGINT NOT NULL, origin VARCHAR(10), ip VARCHAR(45), realuserid BIGINT
);
"""

# Users 1-2 guest/admin, 3-102 staff, 103-5102 students (every 50th with no idnumber).
FILL = """
INSERT INTO mdl_user (id, username, idnumber)
SELECT i, CASE i WHEN 1 THEN 'guest' WHEN 2 THEN 'admin' ELSE 'u' || i END,
       CASE WHEN i < 103 OR i % 50 = 0 THEN '' ELSE 'S' || (1000000 + i) END
FROM generate_series(1, 5102) i;
INSERT INTO mdl_course (id, shortname, format)
SELECT i, CASE i WHEN 1 THEN 'SITE' ELSE 'C' || i END, CASE i WHEN 1 THEN 'site' ELSE 'topics' END
FROM generate_series(1, 300) i;
INSERT INTO mdl_logstore_standard_log (id, eventname, component, action, target, crud,
    edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, anonymous, other,
    timecreated, origin, ip, realuserid)
SELECT i, '\\mod_resource\\event\\course_module_viewed', 'mod_resource', 'viewed',
       'course_module', 'r',
       CASE WHEN i % 10 < 8 THEN 2 WHEN i % 10 = 8 THEN 1 ELSE 0 END,
       i % 9000, 70, i % 9000, CASE WHEN i % 10 = 8 THEN 3 + i % 100 ELSE 103 + i % 5000 END,
       1 + i % 300, 0, 'N;', 1790000000 + i / 10,
       CASE WHEN i % 97 = 0 THEN 'cli' WHEN i % 7 = 0 THEN 'ws' ELSE 'web' END, '10.0.0.1',
       CASE WHEN i % 211 = 0 THEN 2 END
FROM generate_series(1, {rows}) i;
"""


async def bench(bootstrap: str, admin_dsn: str, rows: int, batch_size: int) -> None:
    async with scratch_database(admin_dsn) as dsn:
        moodle = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            await moodle.execute(DDL)
            await moodle.execute(FILL.format(rows=int(rows)))
            await moodle.execute("VACUUM ANALYZE")
            print(f"filled {rows} log rows in {time.perf_counter() - started:.1f} s")
        finally:
            await moodle.close()
        run = f"bench{uuid.uuid4().hex[:6]}."
        settings = Settings(  # type: ignore[call-arg]
            kafka_bootstrap=bootstrap,
            activity_topic=f"{run}leap.activity",
            dead_letter_topic=f"{run}leap.dead-letter",
            indicator_changes_topic=f"{run}leap.indicator-changes",
            cohort_scores_topic=f"{run}leap.cohort-scores",
        )
        await ensure_topics(settings)
        config = MoodleConfig(dsn=dsn, site="bench", batch_size=batch_size)  # type: ignore[call-arg]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        async with run_poller(settings, config) as poller:
            summary = await poller.run_once()
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"run_once: {rows} log rows scanned, {summary.read} matched, {summary.published} "
        f"published, {summary.rejected.total()} rejected, in {elapsed:.1f} s: "
        f"{rows / elapsed:,.0f} log rows/s, {summary.read / elapsed:,.0f} events/s"
    )
    print(f"peak RSS {rss_after / 1024:.0f} MiB (before the run {rss_before / 1024:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    admin_dsn = os.environ.get(
        "LEAP_BENCH_POSTGRES_DSN", "postgresql:///postgres?host=/var/run/postgresql"
    )
    with contextlib.ExitStack() as stack:
        bootstrap = (
            os.environ.get("LEAP_KAFKA_BOOTSTRAP") or stack.enter_context(KafkaBroker()).bootstrap
        )
        asyncio.run(bench(bootstrap, admin_dsn, args.rows, args.batch_size))


if __name__ == "__main__":
    main()
