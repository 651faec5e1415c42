"""``leap reference load``: publish a students export to the compacted reference topic.

Idempotent: the topic's current state is read first, and only what differs is sent (new
and changed students; a tombstone for each student no longer in the file), so reloading
the same export sends nothing and a removed student disappears from every worker and API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from leap.compacted import CompactedTopic
from leap.reference import load_students, student_to_record
from leap.settings import Settings
from streams.topics import ensure_topics

__all__ = ["ReferenceLoad", "load_reference"]


@dataclass
class ReferenceLoad:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0


async def load_reference(settings: Settings, path: Path) -> ReferenceLoad:
    """Make the topic hold exactly the students in ``path`` (a bad row stops everything)."""
    students = load_students(path)
    await ensure_topics(settings)
    current: dict[str, dict[str, Any]] = {}

    def keep(student_id: str, record: dict[str, Any] | None) -> None:
        if record is None:
            current.pop(student_id, None)
        else:
            current[student_id] = record

    await CompactedTopic(settings.bootstrap_servers, settings.reference_students_topic, keep).load()
    summary = ReferenceLoad()
    topic = settings.reference_students_topic
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=settings.producer_idempotence,
        max_batch_size=settings.producer_max_batch_size,
    )
    await producer.start()
    try:
        sent = []
        for sid, student in sorted(students.items()):
            record = student_to_record(student)
            if current.get(sid) == record:
                summary.unchanged += 1
                continue
            if sid in current:
                summary.changed += 1
            else:
                summary.added += 1
            value = json.dumps(record).encode()
            sent.append(await producer.send(topic, value, sid.encode()))
        for sid in sorted(current.keys() - students.keys()):
            summary.removed += 1
            sent.append(await producer.send(topic, None, sid.encode()))  # a tombstone
        for future in sent:
            await future
    finally:
        await producer.stop()
    return summary
