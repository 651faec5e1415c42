"""Reading students' state (api/state_reads.py) on a Redis of the test's own: on a Redis
that has never seen the script (just started, or restarted empty) and once it is cached;
concurrent requests' reads sent as one command; errors and cancellations.

A private ``redis-server``, so its script cache and command counts are this test's alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

import api.state_reads
from api.state_reads import StateReads, read_states
from leap.brokers import free_port
from leap.state_keys import days_key, indicator_key
from tests.integration.private_redis import PrivateRedis

pytestmark = pytest.mark.integration

PREFIX = "leap:"


@pytest.fixture
def fresh_redis_url(tmp_path: Path) -> Iterator[str]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server.url
    server.kill()


def state(sid: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    indicator = {b"indicator": b"good", b"as_of": b"2026-10-12", b"student": sid.encode()}
    days = {b"2026-10-12": b'{"engagement":1.5,"sources":{"vle":6}}', b"2026-10-13": sid.encode()}
    return indicator, days


async def write(client: Redis, *student_ids: str) -> None:
    for sid in student_ids:
        indicator, days = state(sid)
        await client.hset(indicator_key(PREFIX, sid), mapping=indicator)  # type: ignore[arg-type]
        await client.hset(days_key(PREFIX, sid), mapping=days)  # type: ignore[arg-type]


async def calls(client: Redis, command: str) -> int:
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_read_states_before_and_after_the_script_is_cached(fresh_redis_url: str) -> None:
    async with Redis.from_url(fresh_redis_url) as client:
        await write(client, "S1", "S2")
        first = await read_states(client, PREFIX, ["S1", "S2", "S3"])  # NOSCRIPT, then EVAL
        cached = await read_states(client, PREFIX, ["S2"])  # EVALSHA
        assert await calls(client, "eval") == 1  # the script was sent once, then named
    assert first == [state("S1"), state("S2"), ({}, {})]
    assert cached == [state("S2")]


async def test_concurrent_reads_share_one_command(fresh_redis_url: str) -> None:
    async with Redis.from_url(fresh_redis_url) as client:
        ids = [f"S{n}" for n in range(5)]
        await write(client, *ids)
        reads = StateReads(client, PREFIX)
        await reads.read("S0")  # the script is cached from here on
        before = await calls(client, "evalsha")
        together = await asyncio.gather(*(reads.read(sid) for sid in [*ids, "nobody"]))
        assert await calls(client, "evalsha") - before == 1
        alone = await reads.read("S4")  # a later turn of the loop: a command of its own
        assert await calls(client, "evalsha") - before == 2
    assert together == [*(state(sid) for sid in ids), ({}, {})]
    assert alone == state("S4")


async def test_a_crowd_is_read_in_batches_of_at_most_max_batch(
    fresh_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.state_reads, "MAX_BATCH", 2)
    async with Redis.from_url(fresh_redis_url) as client:
        ids = [f"S{n}" for n in range(5)]
        await write(client, *ids)
        reads = StateReads(client, PREFIX)
        await reads.read("S0")
        before = await calls(client, "evalsha")
        crowd = await asyncio.gather(*(reads.read(sid) for sid in ids))
        assert await calls(client, "evalsha") - before == 3
    assert crowd == [state(sid) for sid in ids]


async def test_a_cancelled_request_leaves_the_others_their_answers(fresh_redis_url: str) -> None:
    async with Redis.from_url(fresh_redis_url) as client:
        await write(client, "S1", "S2")
        reads = StateReads(client, PREFIX)
        first, gone, last = (asyncio.create_task(reads.read(s)) for s in ("S1", "S9", "S2"))
        await asyncio.sleep(0)  # all three have asked
        gone.cancel()
        assert await asyncio.wait_for(first, 5) == state("S1")
        assert await asyncio.wait_for(last, 5) == state("S2")
        assert gone.cancelled()


async def test_every_request_in_a_batch_gets_the_error() -> None:
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    async with down:
        reads = StateReads(down, PREFIX)
        answers = await asyncio.gather(
            *(reads.read(sid) for sid in ("S1", "S2", "S3")), return_exceptions=True
        )
    assert all(isinstance(a, RedisConnectionError) for a in answers), answers
