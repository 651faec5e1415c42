"""Redis outage (issue 4): the worker keeps consuming, the API says so, nothing is lost.

A private ``redis-server`` (no persistence, so a restart comes back empty: the harsh case)
serves one ``leap worker`` (``clock=event``) and the API. Part of a synthetic term is
imported, Redis is killed, the rest is imported. While Redis is down the worker must keep
consuming (events counted, offsets committed, days closed, writes queued) and stay up; the
API must answer 503 with ``Retry-After`` and ``/readyz`` must name Redis. Redis then comes
back empty, and must catch up to equal ``leap replay`` key by key (indicators and per-day
breakdowns) either (a) with the same worker still running, or (b) after that worker was
killed with SIGKILL during the outage and another one started once Redis is back.

The sink's own contract (writes never wait for Redis, a later write of a field is never
undone by an earlier one, a Redis that lost its data asks for a resync) is tested first,
against the same kind of private Redis, without Kafka.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.engagement import newest_closable
from connectors.events_file import FileReader
from connectors.publisher import Rejected, Tick
from leap.policy import load_policy
from leap.replay import DailyTotalsBook
from leap.settings import Settings
from leap.state_keys import days_key, indicator_key
from streams.day_record import day_breakdown
from streams.redis_sink import PROBE_SECONDS, RedisSink
from tests.integration.api_client import serve
from tests.integration.leap_process import leap_running, wait_for
from tests.integration.private_redis import PrivateRedis
from tests.integration.test_pipeline import (
    GRACE,
    ZONE,
    Pipeline,
    all_closed_as_of,
    build_pipeline,
    import_until_closed,
    replay,
)

pytestmark = pytest.mark.integration

DAYS = 4
#: The term ends on the newest day that has closed by now, so a caught-up record is current.
LAST = newest_closable(datetime.now(UTC), ZONE, GRACE)
START = LAST - timedelta(days=DAYS - 1)
#: Days imported before the outage; the rest are imported while Redis is down.
BEFORE = 2


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server._proc is not None:
        server.kill()


# --- The sink alone -----------------------------------------------------------------------


def _gauge(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def _eventually(probe: Any, what: str, seconds: float = 15) -> None:
    """Poll ``probe`` from the test's event loop, so the sink under test keeps running."""
    for _ in range(int(seconds / 0.05)):
        if probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


async def test_sink_queues_through_an_outage_and_asks_for_a_resync(
    private_redis: PrivateRedis,
) -> None:
    store = private_redis.client()
    sink = RedisSink(private_redis.url, "t:")
    resyncs: list[float] = []
    sink.resync = lambda: resyncs.append(time.monotonic())
    day = date(2026, 11, 30)
    await sink.start()
    try:
        await sink.write_days({("S1", day): {"engagement": 1.0, "sources": {"moodle": 1.0}}})
        await sink.write_indicators({"S1": {"indicator": "low", "as_of": "2026-11-29"}})
        await _eventually(lambda: store.hget("t:days:S1", "2026-11-30"), "the first writes")

        private_redis.kill()
        errors = _gauge("leap_worker_redis_errors_total")
        for n in range(2, 6):  # each returns at once although Redis is down
            value = {"engagement": float(n), "sources": {"moodle": float(n)}}
            await asyncio.wait_for(sink.write_days({("S1", day): value}), 1)
        await asyncio.wait_for(sink.forget_days(["S1"], date(2026, 11, 1)), 1)
        await asyncio.wait_for(sink.write_indicators({"S1": {"indicator": "good"}}), 1)
        await _eventually(
            lambda: _gauge("leap_worker_redis_errors_total") > errors + 1, "failed attempts"
        )
        assert _gauge("leap_worker_redis_pending_writes") == 3  # coalesced: 2 fields + 1 HDEL

        private_redis.start()  # empty
        await _eventually(lambda: resyncs, "a resync request after the outage")
        await _eventually(
            lambda: _gauge("leap_worker_redis_pending_writes") == 0, "the queue to drain"
        )
        assert json.loads(store.hget("t:days:S1", "2026-11-30") or "")["engagement"] == 5.0
        assert store.hget("t:indicator:S1", "indicator") == "good"

        # Emptied without a failed write in between: the marker's absence gives it away.
        store.flushall()
        before = len(resyncs)
        await _eventually(lambda: len(resyncs) > before, "a resync request", PROBE_SECONDS * 3)

        await sink.write_indicators({"S2": {"indicator": "high"}})
    finally:
        await sink.stop()  # flushes what is queued
        store_value = store.hget("t:indicator:S2", "indicator")
        store.close()
    assert store_value == "high"


# --- The whole pipeline -------------------------------------------------------------------


def _split(p: Pipeline) -> tuple[Path, Path]:
    """The term's events before and after local day START + BEFORE."""
    first: list[str] = []
    rest: list[str] = []
    cut = (START + timedelta(days=BEFORE)).isoformat()
    for line in p.events_file.read_text().splitlines(keepends=True):
        occurred = datetime.fromisoformat(json.loads(line)["occurred_at"])
        (first if occurred.astimezone(ZONE).date().isoformat() < cut else rest).append(line)
    paths = (p.workdir / "before.jsonl", p.workdir / "during.jsonl")
    for path, lines in zip(paths, (first, rest), strict=True):
        path.write_text("".join(lines))
    return paths


def _worker_metrics(settings: Settings) -> dict[str, float]:
    """Events counted, Redis errors and pending writes, and each partition's closed day."""
    url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "leap_worker_events_total" and s.labels["outcome"] == "counted":
                out["counted"] = out.get("counted", 0) + s.value
            elif s.name in ("leap_worker_redis_errors_total", "leap_worker_redis_pending_writes"):
                out[s.name.removeprefix("leap_worker_")] = s.value
            elif s.name == "leap_worker_last_closed_day_timestamp_seconds":
                out[f"closed:{s.labels['partition']}"] = s.value
    return out


async def _offsets(settings: Settings) -> tuple[int, int]:
    """The worker group's committed offsets on the activity topic, and its end offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(settings.activity_topic, n) for n in range(settings.partitions)]
        committed = await admin.list_consumer_group_offsets(settings.app_id, partitions=tps)
        ends = await consumer.end_offsets(tps)
        return sum(m.offset for m in committed.values() if m.offset > 0), sum(ends.values())
    finally:
        await consumer.stop()
        await admin.close()


def _kept_consuming(settings: Settings, events: int) -> dict[str, float] | None:
    """The worker's metrics once it has counted every event, closed every partition's last
    day and holds Redis writes it could not make."""
    metrics = _worker_metrics(settings)
    last_close = datetime.combine(LAST + timedelta(days=1), clock_time(0), ZONE).timestamp()
    done = (
        metrics.get("counted") == events
        and metrics.get("redis_pending_writes", 0) > 0
        and all(metrics.get(f"closed:{n}") == last_close for n in range(settings.partitions))
    )
    return metrics if done else None


def _all_committed(offsets: tuple[int, int]) -> tuple[int, int] | None:
    committed, end = offsets
    return offsets if committed == end else None


async def _api(settings: Settings, student: str) -> tuple[httpx.Response, httpx.Response]:
    async with serve(settings) as client:
        return (
            await client.get(f"/v1/students/{student}/engagement"),
            await client.get("/readyz"),
        )


def _expected_days(p: Pipeline) -> dict[str, dict[str, Any]]:
    """Each student's per-day breakdowns, from the file, as the API reads them."""
    book = DailyTotalsBook(ZONE)
    for item in FileReader(p.events_file).items():
        assert not isinstance(item, Rejected | Tick)
        book.add(item)
    policy = load_policy(None)
    return {
        sid: {d.isoformat(): day_breakdown(totals, policy) for d, totals in days.items()}
        for sid, days in book.totals.items()
    }


def _redis_equals_replay(
    p: Pipeline, expected: dict[str, dict[str, Any]], days: dict[str, dict[str, Any]]
) -> bool:
    """Every indicator (as of LAST) and every day breakdown as the oracle says."""
    client = redis.Redis.from_url(p.settings.redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for sid in expected:
            pipe.hgetall(indicator_key(p.settings.redis_prefix, sid))
            pipe.hgetall(days_key(p.settings.redis_prefix, sid))
        replies = pipe.execute()
    except redis.RedisError:
        return False
    finally:
        client.close()
    for (sid, want), state, got_days in zip(
        expected.items(), replies[::2], replies[1::2], strict=True
    ):
        if not state or state["as_of"] != want["as_of"]:
            return False
        assert state["indicator"] == want["indicator"], sid
        assert float(state["score"]) == want["score"], sid
        assert float(state["reference_score"]) == want["reference_score"], sid
        assert int(state["window_days"]) == want["window_days"], sid
        if {day: json.loads(raw) for day, raw in got_days.items()} != days.get(sid, {}):
            return False
    return True


@pytest.mark.parametrize(
    "worker_survives", [True, False], ids=["worker-kept-running", "worker-killed"]
)
def test_redis_outage_mid_stream(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    private_redis: PrivateRedis,
    worker_survives: bool,
) -> None:
    services = {
        "kafka_bootstrap": kafka_bootstrap,
        "redis_url": private_redis.url,
        "redis_prefix": "leap:",
    }
    p = build_pipeline(tmp_path, services, topic_prefix, "event", START, DAYS, False)
    settings = p.settings
    before, during = _split(p)
    expected = replay(p, LAST)
    days = _expected_days(p)
    events = sum(1 for line in p.events_file.read_text().splitlines() if line.strip())
    student = sorted(expected)[0]
    midway = START + timedelta(days=BEFORE - 1)

    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log) as worker:
        import_until_closed(p, before, midway)
        wait_for(
            lambda: all_closed_as_of(p, midway, len(expected)),
            timeout=90,
            what=f"every indicator as of {midway}",
            log=p.worker_log,
        )
        record, ready = asyncio.run(_api(settings, student))
        assert record.status_code == 200, record.text
        assert (record.json()["as_of"], record.json()["stale"]) == (midway.isoformat(), True)
        assert ready.status_code == 200, ready.text
        committed_before, _ = asyncio.run(_offsets(settings))

        # 1. Redis goes away mid-stream; the rest of the term arrives.
        private_redis.kill()
        record, ready = asyncio.run(_api(settings, student))
        assert record.status_code == 503
        assert record.headers["retry-after"].isdigit()
        assert record.headers["content-type"] == "application/problem+json"
        assert ready.status_code == 503 and ready.headers["retry-after"].isdigit()
        assert ready.json()["checks"]["redis"].startswith("error")
        assert ready.json()["checks"]["kafka"] == "ok"
        assert "redis" in ready.json()["detail"]
        import_until_closed(p, during, LAST)

        # 2. The worker keeps consuming: every event counted, every day closed, offsets
        #    committed to the end, writes queued; and it is still up.
        metrics = wait_for(
            lambda: _kept_consuming(settings, events),
            timeout=90,
            what="every event counted and every day closed while Redis is down",
            log=p.worker_log,
        )
        assert metrics["redis_errors_total"] > 0
        committed, end = wait_for(
            lambda: _all_committed(asyncio.run(_offsets(settings))),
            timeout=30,
            what="offsets committed to the end of the topic",
            log=p.worker_log,
        )
        assert committed_before < committed == end
        assert worker.poll() is None, "the worker exited during the outage"

        # 3. Redis comes back empty: (a) to the same worker, (b) to a new one.
        if worker_survives:
            back = time.monotonic()
            private_redis.start()
            wait_for(
                lambda: _redis_equals_replay(p, expected, days),
                timeout=60,
                what="Redis to catch up",
                log=p.worker_log,
            )
            caught_up = time.monotonic() - back
            assert worker.poll() is None
            assert _worker_metrics(settings)["redis_pending_writes"] == 0
        else:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            private_redis.start()
            log = tmp_path / "worker-2.log"
            back = time.monotonic()
            with leap_running(["worker", "--loglevel", "warning"], p.env, log):
                wait_for(
                    lambda: _redis_equals_replay(p, expected, days),
                    timeout=90,
                    what="Redis to catch up from the new worker",
                    log=log,
                )
                caught_up = time.monotonic() - back

    # 4. The API serves the caught-up record as current again.
    record, ready = asyncio.run(_api(settings, student))
    assert record.status_code == 200, record.text
    body = record.json()
    assert body["as_of"] == LAST.isoformat()
    closable_now = newest_closable(datetime.now(UTC), ZONE, GRACE)
    assert body["stale"] is (closable_now > LAST)  # False, unless a day closed meanwhile
    assert ready.status_code == 200, ready.text
    what = "same worker" if worker_survives else "new worker, from its start"
    print(f"Redis caught up {caught_up:.1f} s after it came back ({what}); {events} events")
