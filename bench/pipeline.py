"""Throughput of the LEAP worker against a raw aiokafka consumer on the same broker.

Publishes a synthetic term (with clock ticks) to fresh topics, then measures:
  1. a raw aiokafka consumer reading every record of leap.activity (the ceiling);
  2. a ``leap worker`` (clock=event) from start until every student's indicator for the
     last day is in Redis: events/s end to end, and the day-boundary recompute times.

    python -m bench.pipeline --students 2000 --days 21          # starts Apache Kafka
    LEAP_KAFKA_BOOTSTRAP=127.0.0.1:9092 python -m bench.pipeline  # or uses yours

Run by hand; figures depend on the machine. Redis must answer at LEAP_REDIS_URL.
bench/ingest.py puts the worker beside a bare Faust agent; this one times the day closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.common import (
    bench_env,
    cleanup_redis,
    kafka_bootstrap,
    settings_from_env,
    synthetic_term,
    wait_for_indicators,
)
from connectors.publisher import ActivityPublisher
from connectors.synthetic import write_students
from leap.settings import Settings
from streams.topics import ensure_topics


async def raw_consume(settings: Settings, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        settings.activity_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    started, seen = time.perf_counter(), 0
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--worker-log", type=Path, help="Keep the worker's log here.")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(kafka_bootstrap())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leap-bench-")))
        env = bench_env(bootstrap, workdir, args.partitions)
        settings = settings_from_env(env)
        run = env["LEAP_APP_ID"]
        students, term = synthetic_term(args.students, args.days, settings)
        write_students(students, workdir / "students.csv")
        start = time.time()

        async def publish() -> int:
            await ensure_topics(settings)
            async with ActivityPublisher(settings) as publisher:
                return await publisher.publish(term.items())

        events = asyncio.run(publish())
        records = events + (args.days + 1) * args.partitions
        print(f"published {events} events in {time.time() - start:.1f} s")

        raw_seconds = asyncio.run(raw_consume(settings, records))
        print(f"raw aiokafka consumer: {records / raw_seconds:,.0f} records/s")

        log = workdir / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "leap.cli", "worker"],
                env=os.environ | env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            seconds = wait_for_indicators(
                settings, term.last_day.isoformat(), len(students), args.timeout
            )
        finally:
            worker.terminate()
            worker.wait(30)
        if args.worker_log:
            args.worker_log.write_bytes(log.read_bytes())
        closes = [float(x) for x in re.findall(r"students in ([0-9.]+)s", log.read_text())]
        print(
            f"leap worker: {events / seconds:,.0f} events/s end to end "
            f"({seconds:.1f} s incl. start-up and group join)"
        )
        print(f"ratio raw/leap: {(records / raw_seconds) / (events / seconds):.1f}x")
        if closes:
            closes.sort()
            print(
                f"day-boundary recompute per partition ({len(students) // args.partitions} "
                f"students): median {closes[len(closes) // 2] * 1000:.1f} ms, "
                f"max {closes[-1] * 1000:.1f} ms over {len(closes)} closes"
            )
        cleanup_redis(settings.redis_url, f"{run}:")


if __name__ == "__main__":
    main()
