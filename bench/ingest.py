"""Ingest: the LEAP worker against a raw consumer and a bare Faust agent, side by side.

Publishes one synthetic term (clock ticks included) to a fresh ``leap.activity`` on
Apache Kafka, then, for each of ``--runs`` rounds, reads it with:

  a. a raw aiokafka consumer that decodes every record (``schemas.codec``): Python's limit;
  b. a bare Faust agent that only consumes (bench/faust_floor.py), per event and with
     ``take_events`` as LEAP does, and with the Avro decode added: the framework's floor;
  c. ``leap worker`` (clock=event) until every student's indicator for the last day and
     their per-day totals are in Redis;
  d. prototypes for going past (b): LEAP's per-event work on a plain aiokafka loop
     (bench/light_loop.py), and bare Faust over *packed* records carrying many events
     each (bench/packed.py: per student-day, and per partition chunk).

Faust processes are timed end to end (spawn to done: start-up and group join included)
and from their first record ("steady"). ``--profile DIR`` also samples (c) and the bare
``take`` agent with py-spy and prints where each spends its CPU. ``--baseline-tree DIR``
runs (c) a second time per round from another copy of the code (e.g. ``git archive REV``
unpacked there), interleaved, for a before/after on the same machine and data.

    python -m bench.ingest                     # starts Apache Kafka (or LEAP_KAFKA_BOOTSTRAP)
    python -m bench.ingest --students 2000 --days 21 --runs 3 --profile /tmp/prof
    python -m bench.ingest --readers bc --baseline-tree /tmp/before
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import (
    bench_env,
    bench_parser,
    cleanup_redis,
    cpu_seconds,
    delete_topics,
    kafka_bootstrap,
    median,
    print_table,
    quick,
    rss_kib,
    settings_from_env,
    synthetic_term,
    wait_for_indicators,
)
from bench.light_loop import light_loop
from bench.packed import PARTITION_CHUNK, pack
from connectors.publisher import ActivityPublisher, Tick
from connectors.synthetic import write_students
from leap.brokers import free_port
from leap.reference import partition_for
from leap.settings import Settings
from schemas.codec import activity_codec
from streams.topics import ensure_topics

FLOORS = ("events", "take", "take-decode")


async def publish(settings: Settings, items: list[Any]) -> int:
    await ensure_topics(settings)
    async with ActivityPublisher(settings) as publisher:
        return await publisher.publish(items)


async def publish_packed(settings: Settings, events: list[dict[str, Any]]) -> dict[str, int]:
    """Two packed copies of the term's events; returns records per packed topic."""
    codec = activity_codec(topic=settings.activity_topic)
    topics = {f"{settings.activity_topic}.packed-{g}": g for g in ("student-day", "partition")}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, settings.partitions, 1) for t in topics])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=10
    )
    await producer.start()
    counts: dict[str, int] = {}
    try:
        for topic, grouping in topics.items():
            groups: list[tuple[int, list[dict[str, Any]]]] = []
            open_groups: dict[Any, list[dict[str, Any]]] = {}
            for event in events:
                sid = event["student_id"]
                part = partition_for(sid, settings.partitions)
                if grouping == "student-day":
                    key: Any = (sid, event["occurred_at"].date())
                    if key not in open_groups:
                        open_groups.clear()  # the term yields a student's day together
                        open_groups[key] = []
                        groups.append((part, open_groups[key]))
                else:
                    key = part
                    if len(open_groups.get(key, ())) >= PARTITION_CHUNK or key not in open_groups:
                        open_groups[key] = []
                        groups.append((part, open_groups[key]))
                open_groups[key].append(event)
            sent = [
                await producer.send(topic, pack(codec, group), partition=part)
                for part, group in groups
            ]
            await asyncio.gather(*sent)
            counts[topic] = len(groups)
    finally:
        await producer.stop()
    return counts


def raw_decode(settings: Settings, expected: int) -> float:
    """Seconds for a raw aiokafka consumer to read and decode every record."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> float:
        codec = activity_codec(topic=settings.activity_topic)
        consumer = AIOKafkaConsumer(
            settings.activity_topic,
            bootstrap_servers=settings.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"bench-raw-{os.getpid()}-{time.time_ns()}",
        )
        started, decoded = time.perf_counter(), 0
        await consumer.start()
        try:
            while decoded < expected:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batch.values():
                    for record in records:
                        if record.value:
                            codec.decode(record.value)
                            decoded += 1
        finally:
            await consumer.stop()
        return time.perf_counter() - started

    return asyncio.run(run())


@contextlib.contextmanager
def sampled(pid: int, out: Path | None) -> Any:
    """py-spy samples ``pid`` while the block runs (when ``out`` is given)."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def run_floor(
    mode: str,
    topic: str,
    env: dict[str, str],
    expected: int,
    workdir: Path,
    profile: Path | None = None,
) -> dict[str, float]:
    result = workdir / f"floor-{mode}-{time.time_ns()}.json"
    command = [
        sys.executable,
        "-m",
        "bench.faust_floor",
        "--mode",
        mode,
        "--bootstrap",
        env["LEAP_KAFKA_BOOTSTRAP"],
        "--topic",
        topic,
        "--partitions",
        env["LEAP_PARTITIONS"],
        "--expected",
        str(expected),
        "--result",
        str(result),
        "--app-id",
        f"{env['LEAP_APP_ID']}-{result.stem}",
        "--datadir",
        str(workdir / result.stem),
        "--web-port",
        str(free_port()),
    ]
    spawned = time.time()
    with (workdir / f"{result.stem}.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        with sampled(process.pid, profile):
            while not result.exists():
                if process.poll() is not None or time.time() - spawned > 900:
                    raise SystemExit(f"floor {mode} failed: see {workdir}/{result.stem}.log")
                time.sleep(0.1)
            time.sleep(0.05)  # the file is written whole; give the write a moment
        rss, cpu = rss_kib(process.pid), cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    done = json.loads(result.read_text())
    return {
        "e2e": done["done"] - spawned,
        "steady": done["done"] - done["first"],
        "events": done["events"],
        "rss_kib": rss,
        "cpu": cpu,
    }


def run_leap(
    base_env: dict[str, str],
    students: int,
    last_day: str,
    workdir: Path,
    profile: Path | None = None,
    tree: Path | None = None,
) -> dict[str, float]:
    """One ``leap worker`` on the term's topic, with its own group, tables and Redis keys;
    from the code in ``tree`` when given (first on the path), else this checkout's."""
    fresh = bench_env(
        base_env["LEAP_KAFKA_BOOTSTRAP"],
        workdir,
        int(base_env["LEAP_PARTITIONS"]),
        run=f"{base_env['LEAP_APP_ID']}-w{time.time_ns() % 10**9}",
    )
    env = {
        **fresh,
        "LEAP_ACTIVITY_TOPIC": base_env["LEAP_ACTIVITY_TOPIC"],
        "LEAP_STUDENTS": base_env["LEAP_STUDENTS"],
    }
    settings = settings_from_env(env)
    log = workdir / f"{env['LEAP_APP_ID']}.log"
    spawned = time.time()
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "leap.cli", "worker"],
            env=os.environ | env,
            cwd=tree,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with sampled(worker.pid, profile):
            _wait_for_worker(worker, log, settings, last_day, students, timeout=900)
        done = time.time()
        rss, cpu = rss_kib(worker.pid), cpu_seconds(worker.pid)
    finally:
        worker.terminate()
        worker.wait(60)
        cleanup_redis(settings.redis_url, settings.redis_prefix)
    ready = _ready_at(log.read_text(errors="replace"))
    return {
        "e2e": done - spawned,
        "steady": done - (ready or spawned),
        "rss_kib": rss,
        "cpu": cpu,
    }


def _wait_for_worker(
    worker: subprocess.Popen[bytes],
    log: Path,
    settings: Settings,
    last_day: str,
    students: int,
    timeout: float,
) -> None:
    """Until every student's indicator says ``last_day``; fails at once if the worker
    exits (e.g. a topic not yet in a loaded broker's metadata), not after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if worker.poll() is not None:
            raise SystemExit(f"leap worker exited with {worker.returncode}: see {log}")
        try:
            wait_for_indicators(settings, last_day, students, timeout=5)
            return
        except SystemExit:
            if time.monotonic() > deadline:
                raise


def _ready_at(log: str) -> float | None:
    """When Faust said the worker was ready (its log's local time)."""
    match = re.search(r"^\[([0-9-]+ [0-9:,]+)\] \[\d+\] \[INFO\] \[\^Worker\]: Ready", log, re.M)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


#: (label, pattern of a frame's file): the innermost frame of ours decides, else the leaf.
CATEGORIES = (
    ("decode (schemas/codec.py, fastavro)", "schemas/codec.py"),
    ("changelog writes (table_batch.py)", "streams/table_batch.py"),
    ("day close: score, report (day_close.py)", "streams/day_close.py"),
    ("cohort banding (cohort_banding.py)", "streams/cohort_banding.py"),
    ("no-engagement alerts (alerting.py)", "streams/alerting.py"),
    ("Redis sink (redis_sink.py)", "streams/redis_sink.py"),
    ("count, dedupe, tables (activity.py)", "streams/activity.py"),
)
LEAVES = (
    # Kernel time in socket calls and epoll: on a busy machine it also counts waiting for a
    # core after waking the broker or Redis, so it is kept apart from the Python work.
    ("socket I/O, epoll (kernel)", "(asyncio/selector_events.py"),
    ("socket I/O, epoll (kernel)", "(selectors.py"),
    ("aiokafka (fetch, produce, protocol)", "aiokafka/"),
    ("Faust stream/agent/table machinery", "faust/"),
    ("mode (services, timers)", "mode/"),
    ("logging", "logging/"),
    ("asyncio event loop", "asyncio/"),
)


def profile_shares(raw: Path) -> Counter[str]:
    shares: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        label = None
        for frame in reversed(frames):
            label = next((name for name, pattern in CATEGORIES if pattern in frame), None)
            if label:
                break
        if label is None:
            leaf = frames[-1]
            label = next((name for name, pattern in LEAVES if pattern in leaf), "other")
        shares[label] += int(count)
    return shares


BASELINE = "c0. leap worker, baseline tree"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--students", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--profile", type=Path, help="Write py-spy samples here and summarise.")
    parser.add_argument(
        "--readers", default="abcd", help="Which of a, b, c, d to run (default: abcd)."
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="Also run (c) from the code in this directory, interleaved (before/after).",
    )
    args = parser.parse_args()
    small = quick(args)
    students = args.students or (500 if small else 2000)
    days = args.days or 7
    runs = args.runs or (1 if small else 2)
    readers = set(args.readers)
    if not readers or readers - set("abcd"):
        parser.error("--readers takes letters of abcd")
    baseline = args.baseline_tree.resolve() if args.baseline_tree else None

    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(kafka_bootstrap())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leap-ingest-")))
        env = bench_env(bootstrap, workdir, args.partitions)
        stack.callback(lambda: asyncio.run(delete_topics(bootstrap, env["LEAP_APP_ID"])))
        settings = settings_from_env(env)
        roster, term = synthetic_term(students, days, settings)
        write_students(roster, workdir / "students.csv")
        last_day = term.last_day.isoformat()
        items = list(term.items())
        events = [i for i in items if not isinstance(i, Tick)]
        started = time.perf_counter()
        count = asyncio.run(publish(settings, items))
        packed = asyncio.run(publish_packed(settings, events)) if "d" in readers else {}
        records = count + (len(items) - count) * args.partitions
        print(
            f"published {count:,} events ({records:,} records with ticks) for {students:,} "
            f"students over {days} days in {time.perf_counter() - started:.1f} s"
            + "".join(
                f"; packed {n:,} records ({t.rsplit('-', 1)[-1]})" for t, n in packed.items()
            ),
            flush=True,
        )
        rows: dict[str, list[dict[str, float]]] = {}

        def note(name: str, figures: dict[str, float]) -> None:
            rows.setdefault(name, []).append(figures)
            print(f"  {name}: {figures}", flush=True)

        for run in range(runs):
            print(f"round {run + 1} of {runs}", flush=True)
            if "a" in readers:
                seconds = raw_decode(settings, count)
                note("a. raw aiokafka consumer + Avro decode", {"e2e": seconds, "steady": seconds})
            if "b" in readers:
                for mode in FLOORS:
                    note(
                        f"b. bare Faust agent ({mode})",
                        run_floor(mode, settings.activity_topic, env, count, workdir),
                    )
            if "c" in readers:
                # Alternate which goes first, so neither always runs on a warmer machine.
                trees: list[Path | None] = [None] if baseline is None else [baseline, None]
                for tree in trees if run % 2 == 0 else trees[::-1]:
                    note(
                        "c. leap worker" if tree is None else BASELINE,
                        run_leap(env, len(roster), last_day, workdir, tree=tree),
                    )
            if "d" in readers:
                light_settings = settings.model_copy(
                    update={"app_id": f"{settings.app_id}-l{run}", "redis_prefix": f"{run}light:"}
                )
                seconds = asyncio.run(light_loop(light_settings, count))
                cleanup_redis(settings.redis_url, light_settings.redis_prefix)
                note(
                    "d1. LEAP's per-event work on a plain aiokafka loop",
                    {"e2e": seconds, "steady": seconds},
                )
                for topic in packed:
                    grouping = topic.rsplit("packed-", 1)[-1]
                    note(
                        f"d2. bare Faust agent, packed records per {grouping}, decoded",
                        run_floor("packed", topic, env, count, workdir),
                    )

        floors = [rows[f"b. bare Faust agent ({m})"] for m in FLOORS if "b" in readers]
        floor = max((median([count / f["steady"] for f in r]) for r in floors), default=None)
        table = []
        for name, figures in rows.items():
            e2e = median([count / f["e2e"] for f in figures])
            steady = median([count / f["steady"] for f in figures])
            ratio = f"{steady / floor:.2f}" if floor else "-"
            cpu = [f["cpu"] / count * 100_000 for f in figures if "cpu" in f]
            table.append([name, e2e, steady, ratio, median(cpu) if cpu else "-", len(figures)])
        print_table(
            f"Ingest: {count:,} events, {students:,} students, {days} days, "
            f"{args.partitions} partitions (medians)",
            [
                "reader",
                "events/s end to end",
                "events/s steady",
                "vs best bare Faust",
                "CPU s per 100k events",
                "runs",
            ],
            table,
        )
        if baseline is not None and "c" in readers:
            pairs = list(zip(rows[BASELINE], rows["c. leap worker"], strict=True))
            speedups = [before["steady"] / after["steady"] for before, after in pairs]
            savings = [after["cpu"] / before["cpu"] for before, after in pairs]
            print(
                f"leap worker vs baseline tree {baseline}: steady rate x{median(speedups):.2f} "
                f"(per round: {', '.join(f'{x:.2f}' for x in speedups)}); CPU "
                f"x{median(savings):.2f} (per round: {', '.join(f'{x:.2f}' for x in savings)})"
            )
        if "b" in readers and "c" in readers:
            leap_rss = median([f["rss_kib"] for f in rows["c. leap worker"]])
            floor_rss = median([f["rss_kib"] for f in rows["b. bare Faust agent (take)"]])
            print(
                f"RSS at the end: leap worker {leap_rss / 1024:.0f} MiB, bare Faust agent "
                f"{floor_rss / 1024:.0f} MiB ({(leap_rss - floor_rss) * 1024 / len(roster):,.0f} "
                f"bytes per student more, {days} days of state)"
            )
        print(f"ingest benchmark done in {time.perf_counter() - started:.0f} s", flush=True)

        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profiled: list[tuple[str, Path]] = []
            leap_raw = args.profile / "leap.txt"
            run_leap(env, len(roster), last_day, workdir, profile=leap_raw)
            profiled.append(("leap worker", leap_raw))
            if baseline is not None:
                before_raw = args.profile / "leap-baseline.txt"
                run_leap(env, len(roster), last_day, workdir, profile=before_raw, tree=baseline)
                profiled.append(("leap worker, baseline tree", before_raw))
            floor_raw = args.profile / "floor.txt"
            run_floor("take", settings.activity_topic, env, count, workdir, profile=floor_raw)
            profiled.append(("bare Faust agent (take)", floor_raw))
            for title, raw in profiled:
                shares = profile_shares(raw)
                total = sum(shares.values())
                print_table(
                    f"Where {title} spends its CPU (py-spy, {total:,} samples at 100 Hz)",
                    ["where", "share", "CPU s per 100k events"],
                    [
                        [name, f"{100 * n / total:.1f}%", n / 100 / count * 100_000]
                        for name, n in shares.most_common()
                    ],
                )


if __name__ == "__main__":
    main()
