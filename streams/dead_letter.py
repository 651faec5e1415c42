"""Parking records the worker cannot use, with why and where they came from."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from faust.types import Message, TopicT

from streams.metrics import DEAD_LETTERS

__all__ = ["DeadLetters", "header"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Sends the original bytes untouched, with headers a person can act on."""

    def __init__(self, topic: TopicT) -> None:
        self.topic = topic

    async def send(self, message: Message, reason: str, error: str) -> None:
        DEAD_LETTERS.labels(reason).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s (%s)",
            message.topic,
            message.partition,
            message.offset,
            reason,
            error,
        )
        headers: list[tuple[str, bytes]] = [
            ("leap-reason", reason.encode()),
            ("leap-error", error[:1000].encode()),
            ("leap-original-topic", message.topic.encode()),
            ("leap-original-partition", str(message.partition).encode()),
            ("leap-original-offset", str(message.offset).encode()),
            ("leap-dead-lettered-at", datetime.now(UTC).isoformat().encode()),
        ]
        await self.topic.send(key=message.key, value=message.value, headers=headers)


def header(message: Message, name: str) -> bytes | None:
    """One header's value, whichever shape (list or mapping) the client gave."""
    headers: Any = message.headers or ()
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return bytes(value) if value is not None else b""
    return None
