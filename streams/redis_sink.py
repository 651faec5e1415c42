"""Indicator state to Redis without ever holding up the agents (HSET/HDEL/DEL only).

A Redis outage must not stop the worker consuming, lose state or crash it. So the agents
only *queue* writes, in a coalescing set (the latest value per hash field wins, so memory
grows with students, not events: about one field per student and day of the window, plus
one deletion per student and day the outage lasts), and one background flusher sends them
in chunks, each applied atomically by one script call, at most every
``FLUSH_EVERY_SECONDS``, retrying with backoff while Redis is down. A newer write always
lands after an older one: a flush takes the whole set, and on failure puts back only what
no newer write has replaced since.

The Faust tables stay the truth: when Redis may have lost writes (the flusher saw an
outage, or its marker key vanished: Redis restarted empty or failed over), the sink asks
``resync`` (``streams.redis_resync``) to queue this worker's whole share again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import uuid4

import orjson
import redis.asyncio as aioredis
from mode import Service
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from leap.state_keys import cohort_key, days_key, indicator_key
from streams.metrics import REDIS_ERRORS, REDIS_PENDING_WRITES, REDIS_WRITE_SECONDS

__all__ = ["HashWrite", "PendingWrites", "RedisSink"]

log = logging.getLogger(__name__)

#: Hashes per MULTI transaction: small enough to keep Redis responsive during a catch-up.
CHUNK_HASHES = 500
#: Retry delays double from the first to the cap: a returning Redis is caught up quickly.
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 2.0
#: With nothing to write the flusher still probes Redis this often, to notice a restart.
PROBE_SECONDS = 5.0
#: Flushes start at most this often: what is queued meanwhile coalesces (a day record
#: rewritten batch after batch is sent once), and a quiet stream is flushed this long
#: after its last write at the latest.
FLUSH_EVERY_SECONDS = 0.25
#: How long the final flush may take at shutdown (what it cannot send, resync rebuilds).
STOP_FLUSH_SECONDS = 5.0
#: The marker outlives any probe gap; it vanishes within this long of the worker stopping.
MARKER_TTL_SECONDS = 3600

#: One chunk of writes, applied atomically (as a MULTI transaction would) by one command.
#: redis-py builds each command of a pipeline in Python, ~20 µs of CPU per hash written
#: and ~40 per 11-field indicator; a script call carries the chunk as one JSON argument:
#: ~5 µs per hash. KEYS: the marker, then each hash. ARGV[1]: the marker's TTL, 0 for no
#: probe; ARGV[2]: per hash, [replace (1: drop it first), [field, value, ...], [field to
#: delete, ...]]. Returns 1 if the marker had to be created (Redis lost it).
APPLY_SCRIPT = """
local created = 0
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  if redis.call('SET', KEYS[1], 1, 'NX', 'EX', ttl) then created = 1 end
  redis.call('EXPIRE', KEYS[1], ttl)
end
for i, write in ipairs(cjson.decode(ARGV[2])) do
  local key, values, deleted = KEYS[i + 1], write[2], write[3]
  if write[1] == 1 then redis.call('DEL', key) end
  for first = 1, #values, 1000 do
    redis.call('HSET', key, unpack(values, first, math.min(first + 999, #values)))
  end
  for first = 1, #deleted, 1000 do
    redis.call('HDEL', key, unpack(deleted, first, math.min(first + 999, #deleted)))
  end
end
return created
"""


@dataclass
class HashWrite:
    """What a flush does to one hash: optionally drop it whole, then set or delete fields
    (a field whose value is None is deleted)."""

    fields: dict[str, str | None] = field(default_factory=dict)
    replace: bool = False

    @property
    def size(self) -> int:
        return len(self.fields) or 1


class PendingWrites:
    """Writes not yet in Redis, coalesced: a later write of a field replaces an earlier one.

    Its size (fields, or 1 for a hash dropped whole) is kept as writes come: a gauge reads
    it after every queueing, and summing 50,000 students' hashes each time does not scale."""

    def __init__(self) -> None:
        self.hashes: dict[str, HashWrite] = {}
        self._size = 0

    def set(self, key: str, values: Mapping[str, str]) -> None:
        self._update(key, values)

    def delete(self, key: str, fields: Iterable[str]) -> None:
        self._update(key, dict.fromkeys(fields))

    def replace(self, key: str, values: Mapping[str, str]) -> None:
        """The hash becomes exactly ``values`` (empty: the key is deleted)."""
        self._put(key, HashWrite(dict(values), replace=True))

    def take(self) -> dict[str, HashWrite]:
        taken, self.hashes, self._size = self.hashes, {}, 0
        return taken

    def restore(self, older: Mapping[str, HashWrite]) -> None:
        """Put back writes that failed, under any newer write of the same field or hash."""
        for key, old in older.items():
            new = self.hashes.get(key)
            if new is None:
                self._put(key, old)
            elif not new.replace:
                self._put(key, HashWrite({**old.fields, **new.fields}, old.replace))

    def _update(self, key: str, values: Mapping[str, str | None]) -> None:
        write = self.hashes.get(key)
        if write is None:
            self.hashes[key] = write = HashWrite()
            before = 0
        else:
            before = write.size
        write.fields.update(values)
        self._size += write.size - before

    def _put(self, key: str, write: HashWrite) -> None:
        old = self.hashes.get(key)
        self.hashes[key] = write
        self._size += write.size - (0 if old is None else old.size)

    def __len__(self) -> int:
        return self._size


class RedisSink(Service):
    """Queues the worker's Redis writes; a background task flushes them.

    Started and stopped with the Faust app (a dependency of it, so it stops after the
    agents). ``resync`` is called when Redis may have lost what was written before."""

    def __init__(self, url: str, prefix: str, **kwargs: Any) -> None:
        # One immediate retry hides a connection dropped by a Redis restart; longer
        # outages are this service's own backoff.
        self.redis = aioredis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
        self._apply = self.redis.register_script(APPLY_SCRIPT)
        self.prefix = prefix
        self.pending = PendingWrites()
        self.resync: Callable[[], None] | None = None
        self._in_flight = 0
        self._generation = 0  # bumped by replace_all: older in-flight writes are not restored
        self._dirty = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._marker = f"{prefix}sink:{uuid4().hex}"
        self._marked = False
        super().__init__(**kwargs)

    async def write_days(self, days: Mapping[tuple[str, date], Mapping[str, Any]]) -> None:
        """Set each (student, local date) breakdown: the API's per-day and today-so-far.
        Queued, never waits for Redis (as are the other writes)."""
        for (sid, day), value in days.items():
            self.pending.set(days_key(self.prefix, sid), {day.isoformat(): json.dumps(value)})
        self._queued()

    async def forget_days(self, student_ids: Iterable[str], day: date) -> None:
        """Drop a date that has fallen out of every window (storage limitation)."""
        for sid in student_ids:
            self.pending.delete(days_key(self.prefix, sid), [day.isoformat()])
        self._queued()

    async def write_indicators(self, states: Mapping[str, Mapping[str, str]]) -> None:
        for sid, state in states.items():
            self.pending.set(indicator_key(self.prefix, sid), state)
        self._queued()

    async def write_cohort(self, cohort: tuple[str, str, Mapping[str, str]]) -> None:
        """A cohort's distribution as of its newest banded day (aggregates only)."""
        course, year, values = cohort
        self.pending.replace(cohort_key(self.prefix, course, int(year)), values)
        self._queued()

    def replace_all(self, hashes: Mapping[str, Mapping[str, str]]) -> None:
        """Forget every pending write and make each of ``hashes`` exactly its value.

        For a resync from the tables after a rebalance: what was pending for partitions
        this worker no longer owns must not overwrite their new owner's newer writes."""
        self.pending = PendingWrites()
        self._generation += 1
        for key, values in hashes.items():
            self.pending.replace(key, values)
        self._queued()

    def _queued(self) -> None:
        REDIS_PENDING_WRITES.set(len(self.pending) + self._in_flight)
        self._dirty.set()

    @Service.task
    async def _flush_forever(self) -> None:
        failures, down_since, last_flush = 0, 0.0, 0.0
        while not self.should_stop:
            if not failures:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), PROBE_SECONDS)
                pause = last_flush + FLUSH_EVERY_SECONDS - time.monotonic()
                if pause > 0:
                    await self.sleep(pause)
            self._dirty.clear()
            last_flush = time.monotonic()
            try:
                lost = await self.flush()
            except (RedisError, OSError) as exc:
                REDIS_ERRORS.inc()
                if not failures:
                    down_since = time.monotonic()
                    log.warning("Redis writes failing, queueing them: %r", exc)
                failures += 1
                await self.sleep(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1)))
                continue
            if failures:
                log.warning(
                    "Redis back after %.1f s and %d failed attempts",
                    time.monotonic() - down_since,
                    failures,
                )
            if (failures or lost) and self.resync is not None:
                self.resync()  # Redis may have come back without what it held
            failures = 0

    async def flush(self) -> bool:
        """Send every pending write; True if Redis had lost this sink's marker (so,
        probably, what was written before). Raises if Redis fails; nothing is lost then."""
        async with self._flushing:
            generation = self._generation
            self._in_flight = len(self.pending)
            batch = list(self.pending.take().items())
            sent, lost = 0, False
            try:
                # At least one transaction, even with nothing to write: it probes the marker.
                for start in range(0, max(len(batch), 1), CHUNK_HASHES):
                    chunk = batch[start : start + CHUNK_HASHES]
                    created = await self._send(chunk, marker=start == 0)
                    if start == 0:
                        lost, self._marked = created and self._marked, True
                    sent = start + len(chunk)
                    self._in_flight -= sum(write.size for _, write in chunk)
                    REDIS_PENDING_WRITES.set(len(self.pending) + self._in_flight)
            except BaseException:
                if generation == self._generation:
                    self.pending.restore(dict(batch[sent:]))
                raise
            finally:
                self._in_flight = 0
                REDIS_PENDING_WRITES.set(len(self.pending))
            return lost

    async def _send(self, chunk: list[tuple[str, HashWrite]], *, marker: bool) -> bool:
        """One atomic script call (so the API never reads a hash half replaced); returns
        whether the marker had to be created."""
        writes = []
        for _, write in chunk:
            values = [x for f, v in write.fields.items() if v is not None for x in (f, v)]
            deleted = [] if write.replace else [f for f, v in write.fields.items() if v is None]
            writes.append((int(write.replace), values, deleted))
        with REDIS_WRITE_SECONDS.time():
            created = await self._apply(
                keys=[self._marker, *(key for key, _ in chunk)],
                args=[MARKER_TTL_SECONDS if marker else 0, orjson.dumps(writes)],
            )
        return marker and bool(created)

    async def on_stop(self) -> None:
        """Flush what can be flushed in a few seconds; the tables hold the rest."""
        try:
            async with asyncio.timeout(STOP_FLUSH_SECONDS):
                await self.flush()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("Stopping with %d Redis writes unsent: %r", len(self.pending), exc)
        await self.redis.aclose()
