"""``streams.redis_sink.RedisSink`` against a real Redis: what one flush does to each hash.

The sink applies each chunk of queued writes with one script call (``APPLY_SCRIPT``), so
these check that the script does exactly what the queued writes say — set fields, delete
fields, replace a hash whole, keep values byte for byte — and that a paced flush still
reaches Redis when the writes stop coming. Outages and restarts are in
tests/faults/test_redis_outage.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
import redis

from leap.state_keys import cohort_key, days_key, indicator_key
from streams.redis_sink import CHUNK_HASHES, FLUSH_EVERY_SECONDS, RedisSink

pytestmark = pytest.mark.integration


async def _eventually(check: Callable[[], Any], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def store(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


async def test_one_flush_sets_deletes_and_replaces_exactly(
    redis_url: str, redis_prefix: str, store: Any
) -> None:
    sink = RedisSink(redis_url, redis_prefix)  # not started: flushed by hand
    try:
        student = days_key(redis_prefix, "S1")
        store.hset(student, mapping={"2026-10-01": "old", "2026-10-02": "kept"})
        cohort = cohort_key(redis_prefix, "BSc Physics", 2)
        store.hset(cohort, mapping={"gone": "1", "high": "9"})
        odd = 'quotes " \\ back\\slash, newline\n, tab\t, unicode é 漢字 🙂, {"json": [1]}'

        await sink.write_days(
            {
                ("S1", date(2026, 10, 5)): {"engagement": 2.5, "sources": {"moodle": 10.0}},
                ("S2", date(2026, 10, 5)): {"engagement": 0.0, "sources": {}},
            }
        )
        await sink.forget_days(["S1"], date(2026, 10, 1))
        await sink.write_indicators({"S1": {"indicator": "high", "note": odd}})
        await sink.write_cohort(("BSc Physics", "2", {"high": "3", "low": "1"}))
        assert await sink.flush() is False  # first flush: no marker to have lost

        assert store.hgetall(student) == {
            "2026-10-02": "kept",
            "2026-10-05": json.dumps({"engagement": 2.5, "sources": {"moodle": 10.0}}),
        }
        assert json.loads(store.hget(days_key(redis_prefix, "S2"), "2026-10-05")) == {
            "engagement": 0.0,
            "sources": {},
        }
        assert store.hgetall(indicator_key(redis_prefix, "S1")) == {
            "indicator": "high",
            "note": odd,
        }
        assert store.hgetall(cohort) == {"high": "3", "low": "1"}  # replaced whole
        assert len(sink.pending) == 0

        sink.replace_all({cohort: {}})  # replaced by nothing: deleted
        await sink.flush()
        assert not store.exists(cohort)
    finally:
        await sink.redis.aclose()


async def test_large_hashes_and_many_chunks(redis_url: str, redis_prefix: str, store: Any) -> None:
    sink = RedisSink(redis_url, redis_prefix)
    try:
        wide = {f"field{n}": f"value{n}" for n in range(1500)}  # past one HSET's 1,000 values
        sink.replace_all({f"{redis_prefix}wide": wide})
        await sink.flush()
        assert store.hgetall(f"{redis_prefix}wide") == wide

        students = [f"S{n}" for n in range(2 * CHUNK_HASHES + 7)]
        await sink.write_indicators({sid: {"indicator": sid} for sid in students})
        await sink.flush()
        pipe = store.pipeline()
        for sid in students:
            pipe.hget(indicator_key(redis_prefix, sid), "indicator")
        assert pipe.execute() == students

        sink.pending.delete(f"{redis_prefix}wide", [f"field{n}" for n in range(1200)])
        await sink.flush()
        assert store.hgetall(f"{redis_prefix}wide") == {
            f"field{n}": f"value{n}" for n in range(1200, 1500)
        }
    finally:
        await sink.redis.aclose()


async def test_a_lost_marker_is_reported(redis_url: str, redis_prefix: str, store: Any) -> None:
    sink = RedisSink(redis_url, redis_prefix)
    try:
        assert await sink.flush() is False
        assert await sink.flush() is False  # still there
        store.delete(sink._marker)  # as a Redis restarted empty would have it
        assert await sink.flush() is True
        assert await sink.flush() is False
    finally:
        store.delete(sink._marker)
        await sink.redis.aclose()


async def test_paced_flushes_still_reach_redis_when_the_writes_stop(
    redis_url: str, redis_prefix: str, store: Any
) -> None:
    sink = RedisSink(redis_url, redis_prefix)
    await sink.start()
    try:
        key = indicator_key(redis_prefix, "S1")
        for n in range(20):  # a burst: coalesced, the newest value wins
            await sink.write_indicators({"S1": {"indicator": str(n)}})
        await _eventually(lambda: store.hget(key, "indicator") == "19", "the burst")
        await asyncio.sleep(FLUSH_EVERY_SECONDS / 2)  # just after a flush: paced
        await sink.write_indicators({"S1": {"indicator": "last"}})  # then nothing more
        await _eventually(
            lambda: store.hget(key, "indicator") == "last",
            "the last write of a quiet stream",
            within=FLUSH_EVERY_SECONDS * 4,
        )
    finally:
        await sink.stop()
        store.delete(sink._marker)
