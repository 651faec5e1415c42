"""Publishing canonical ActivityEvents (and clock ticks) to ``leap.activity``.

Events are keyed by student id with Kafka's default partitioner, so the worker needs
no repartition. Every send is awaited before ``publish`` returns: when it returns,
the broker has acknowledged everything (acks=all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from connectors.metrics import record_acknowledged
from leap.settings import Settings
from schemas.codec import AvroCodec, activity_codec
from streams.clock import CLOCK_HEADER

__all__ = ["ActivityPublisher", "Rejected", "Tick"]

#: Sends in flight before waiting for acknowledgements: bounds memory on big imports.
IN_FLIGHT = 5000


@dataclass(frozen=True)
class Tick:
    """Event time has reached ``watermark_ms`` on every partition (clock=event)."""

    watermark_ms: int


@dataclass(frozen=True)
class Rejected:
    """Input that is not a valid event: parked on the dead-letter topic, never dropped."""

    origin: str  # where it came from, e.g. "events.jsonl:12"
    raw: bytes
    reason: str
    error: str


class ActivityPublisher:
    """``connector`` names the connector kind in ``leap_connector_*`` metrics (published,
    rejected by reason, source lag), recorded as the broker acknowledges; None: none."""

    def __init__(
        self, settings: Settings, codec: AvroCodec | None = None, *, connector: str | None = None
    ) -> None:
        self.settings = settings
        self.connector = connector
        self.codec = codec or activity_codec(settings.schema_registry_url, settings.activity_topic)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            acks="all",
            enable_idempotence=settings.producer_idempotence,
            linger_ms=10,
            max_batch_size=64 * 1024,
            request_timeout_ms=30_000,
        )
        self.partitions: list[int] = []

    async def __aenter__(self) -> ActivityPublisher:
        await self.producer.start()
        found = await self.producer.partitions_for(self.settings.activity_topic)
        self.partitions = sorted(found)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def publish(
        self,
        items: Iterable[dict[str, Any] | Tick | Rejected]
        | AsyncIterator[dict[str, Any] | Tick | Rejected],
        on_sent: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Send events and ticks in order; returns the number of events sent."""
        pending: list[asyncio.Future[Any]] = []
        sent = acknowledged = 0
        unacknowledged: list[dict[str, Any] | Rejected] = []

        async def drain() -> None:
            nonlocal acknowledged
            await asyncio.gather(*pending)
            pending.clear()
            on_sent(sent - acknowledged)
            acknowledged = sent
            if self.connector is not None:
                record_acknowledged(self.connector, unacknowledged)
            unacknowledged.clear()

        async for item in _aiter(items):
            if isinstance(item, Tick):
                pending.extend(await self._tick(item))
            elif isinstance(item, Rejected):
                pending.append(await self._dead_letter(item))
            else:
                pending.append(await self.send_event(item))
                sent += 1
            if self.connector is not None and not isinstance(item, Tick):
                unacknowledged.append(item)
            if len(pending) >= IN_FLIGHT:
                await drain()
        await drain()
        return sent

    async def send_event(self, record: dict[str, Any]) -> asyncio.Future[Any]:
        return await self.producer.send(
            self.settings.activity_topic,
            key=record["student_id"].encode(),
            value=self.codec.encode(record),
        )

    async def _dead_letter(self, rejected: Rejected) -> asyncio.Future[Any]:
        headers = [
            ("leap-reason", rejected.reason.encode()),
            ("leap-error", rejected.error[:1000].encode()),
            ("leap-origin", rejected.origin.encode()),
            ("leap-dead-lettered-at", datetime.now(UTC).isoformat().encode()),
        ]
        return await self.producer.send(
            self.settings.dead_letter_topic, value=rejected.raw, headers=headers
        )

    async def _tick(self, tick: Tick) -> list[asyncio.Future[Any]]:
        header = [(CLOCK_HEADER, str(tick.watermark_ms).encode())]
        return [
            await self.producer.send(
                self.settings.activity_topic, key=b"", value=b"", partition=p, headers=header
            )
            for p in self.partitions
        ]


async def _aiter(items: Any) -> AsyncIterator[Any]:
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
