"""Publishing contact preferences to their compacted topic, for the API's PUT.

The topic is the only record of a choice: the API answers 200 only once Kafka has
acknowledged the record on every in-sync replica (``acks=all``). The producer is started
on the first PUT, not at start-up, so a broker that is down when the API starts costs
only the PUTs made while it is down (503s), never the reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from leap.settings import Settings

__all__ = ["PUBLISH_TIMEOUT", "PreferenceNotPublished", "PreferencePublisher"]

#: Seconds a PUT may wait for Kafka (start-up included) before it answers 503.
PUBLISH_TIMEOUT = 5.0


class PreferenceNotPublished(RuntimeError):
    """Kafka did not acknowledge the record (in time): the choice is not recorded."""


class PreferencePublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    acks="all",
                    enable_idempotence=self.settings.producer_idempotence,
                    max_batch_size=self.settings.producer_max_batch_size,
                    request_timeout_ms=int(PUBLISH_TIMEOUT * 1000),
                    client_id="leap-api",
                )
                try:
                    await producer.start()
                except BaseException:
                    with contextlib.suppress(KafkaError):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, student_id: str, record: dict[str, Any]) -> None:
        """Send ``record`` keyed by ``student_id`` and wait for the acknowledgement."""
        value = json.dumps(record, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                producer = await self._started()
                await producer.send_and_wait(
                    self.settings.contact_preferences_topic, value=value, key=student_id.encode()
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise PreferenceNotPublished(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
