"""Throughput of the LEAP worker against a raw aiokafka consumer on the same broker.

Publishes a synthetic term (with clock ticks) to fresh topics, then measures:
  1. a raw aiokafka consumer reading every record of leap.activity (the ceiling);
  2. a ``leap worker`` (clock=event) from start until every student's indicator for the
     last day is in Redis: events/s end to end, and the day-boundary recompute times.

    python bench/pipeline.py --students 2000 --days 21          # starts Apache Kafka
    LEAP_KAFKA_BOOTSTRAP=127.0.0.1:9092 python bench/pipeline.py  # or uses yours

Run by hand; figures depend on the machine. Redis must answer at LEAP_REDIS_URL.
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

import redis
from aiokafka import AIOKafkaConsumer

from connectors.publisher import ActivityPublisher
from connectors.synthetic import SyntheticTerm, make_students, write_students
from leap.brokers import KafkaBroker, free_port
from leap.settings import Settings
from leap.state_keys import indicator_key
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


def wait_for_indicators(settings: Settings, as_of: str, expected: int, timeout: float) -> float:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        keys = list(client.scan_iter(match=indicator_key(settings.redis_prefix, "*"), count=5000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "as_of")
        if sum(1 for a in pipe.execute() if a == as_of) >= expected:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"worker did not finish within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--worker-log", type=Path, help="Keep the worker's log here.")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        bootstrap = os.environ.get("LEAP_KAFKA_BOOTSTRAP")
        if not bootstrap:
            bootstrap = stack.enter_context(KafkaBroker()).bootstrap
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leap-bench-")))
        run = f"bench{uuid.uuid4().hex[:6]}"
        env = {
            "LEAP_KAFKA_BOOTSTRAP": bootstrap,
            "LEAP_CLOCK": "event",
            "LEAP_PARTITIONS": str(args.partitions),
            "LEAP_STUDENTS": str(workdir / "students.csv"),
            "LEAP_APP_ID": run,
            "LEAP_DATA_DIR": str(workdir / "worker"),
            "LEAP_WORKER_WEB_PORT": str(free_port()),
            "LEAP_REDIS_PREFIX": f"{run}:",
            "LEAP_ACTIVITY_TOPIC": f"{run}.activity",
            "LEAP_DEAD_LETTER_TOPIC": f"{run}.dead-letter",
            "LEAP_INDICATOR_CHANGES_TOPIC": f"{run}.indicator-changes",
            "LEAP_COHORT_SCORES_TOPIC": f"{run}.cohort-scores",
        }
        settings = Settings.model_validate(
            {k.removeprefix("LEAP_").lower(): v for k, v in env.items()}
        )
        students = make_students(args.students)
        write_students(students, workdir / "students.csv")
        start = time.time()
        term = SyntheticTerm(
            students,
            __import__("datetime").date(2026, 10, 5),
            args.days,
            settings.zone,
            settings.day_close_grace,
        )

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
        redis_client = redis.Redis.from_url(settings.redis_url)
        for key in redis_client.scan_iter(match=f"{run}:*", count=5000):
            redis_client.delete(key)


if __name__ == "__main__":
    main()
