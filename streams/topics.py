"""The Kafka topics LEAP owns, declared once and created before anything runs."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from leap.settings import Settings

__all__ = ["TopicSpec", "ensure_topics", "topic_specs"]

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """leap.activity's partition count decides which worker owns which student."""
    n = settings.partitions
    return [
        TopicSpec(settings.activity_topic, n),
        TopicSpec(settings.dead_letter_topic, n, {"retention.ms": str(30 * 86_400_000)}),
        TopicSpec(settings.indicator_changes_topic, n),
        TopicSpec(settings.cohort_scores_topic, n, {"retention.ms": str(7 * 86_400_000)}),
        TopicSpec(settings.alerts_topic, n),
        # Reference data: the latest value per student, kept for ever (until a tombstone).
        TopicSpec(settings.reference_students_topic, 1, COMPACTED),
        TopicSpec(settings.contact_preferences_topic, 1, COMPACTED),
    ]


async def ensure_topics(settings: Settings, wait_seconds: float = 60.0) -> None:
    """Create missing topics; refuse to run on a leap.activity with another partition count."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=15_000
    )
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"no Kafka broker answers at {settings.kafka_bootstrap}: start one "
                    "(`leap broker`) or set LEAP_KAFKA_BOOTSTRAP"
                ) from None
            await asyncio.sleep(1)
    try:
        specs = topic_specs(settings)
        existing = await _partition_counts(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(
                    [
                        NewTopic(
                            s.name,
                            num_partitions=s.partitions,
                            replication_factor=settings.replication_factor,
                            topic_configs=s.config,
                        )
                        for s in missing
                    ]
                )
            await _until_listed(admin, [s.name for s in missing], wait_seconds)
        have = existing.get(settings.activity_topic)
        if have is not None and have != settings.partitions:
            raise RuntimeError(
                f"{settings.activity_topic} has {have} partitions but LEAP_PARTITIONS="
                f"{settings.partitions}; set LEAP_PARTITIONS={have} (students are mapped to "
                "partitions by count, so it must match the topic)"
            )
    finally:
        await admin.close()


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str], seconds: float) -> None:
    """Wait until the broker's metadata lists the topics just created: a loaded broker
    acknowledges CreateTopics first, and a reader started at once finds no partitions."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (listed := await _partition_counts(admin, names)).keys() < set(names):
        if loop.time() > deadline:
            unlisted = ", ".join(sorted(set(names) - listed.keys()))
            raise RuntimeError(
                f"created {unlisted}, but the broker's metadata still has no partitions for "
                f"them after {seconds:.0f} s: check the broker's log, then start again"
            )
        await asyncio.sleep(0.2)


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition counts of the topics that exist (listed first: describing a missing
    topic can auto-create it with the broker's default partition count)."""
    existing = [name for name in names if name in set(await admin.list_topics())]
    if not existing:
        return {}
    counts = {}
    for meta in await admin.describe_topics(existing):
        if meta.get("error_code", 0) == 0 and meta.get("partitions"):
            counts[meta["topic"]] = len(meta["partitions"])
    return counts
