"""Idempotent writes of indicator state to Redis (HSET/HDEL only, safe to repeat).

A Redis outage must not lose state or crash the worker: writes retry with backoff,
holding the agent (and so its offsets) until Redis answers again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from leap.state_keys import days_key, indicator_key
from streams.metrics import REDIS_ERRORS, REDIS_WRITE_SECONDS

__all__ = ["RedisSink"]

log = logging.getLogger(__name__)


class RedisSink:
    def __init__(self, url: str, prefix: str) -> None:
        self.redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    async def write_days(self, days: Mapping[tuple[str, date], Mapping[str, Any]]) -> None:
        """Set each (student, local date) breakdown: the API's per-day and today-so-far."""
        if not days:
            return

        async def write() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for (sid, day), value in days.items():
                pipe.hset(days_key(self.prefix, sid), day.isoformat(), json.dumps(value))
            await pipe.execute()

        await self._retrying(write)

    async def forget_days(self, student_ids: Iterable[str], day: date) -> None:
        """Drop a date that has fallen out of every window (storage limitation)."""
        keys = [days_key(self.prefix, sid) for sid in student_ids]

        async def write() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hdel(key, day.isoformat())
            await pipe.execute()

        await self._retrying(write)

    async def write_indicators(self, states: Mapping[str, Mapping[str, str]]) -> None:
        async def write() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for sid, state in states.items():
                pipe.hset(indicator_key(self.prefix, sid), mapping=cast(Mapping[Any, Any], state))
            await pipe.execute()

        await self._retrying(write)

    async def _retrying(self, write: Any) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((RedisConnectionError, RedisTimeoutError, OSError)),
            wait=wait_exponential(multiplier=0.2, max=10),
            before_sleep=self._on_retry,
            reraise=True,
        ):
            with attempt, REDIS_WRITE_SECONDS.time():
                await write()

    @staticmethod
    def _on_retry(state: Any) -> None:
        REDIS_ERRORS.inc()
        before_sleep_log(log, logging.WARNING)(state)

    async def close(self) -> None:
        await self.redis.aclose()
