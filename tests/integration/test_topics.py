"""LEAP's topics exist, with their partitions listed, once ``ensure_topics`` returns."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from leap.settings import Settings
from streams.topics import _until_listed, ensure_topics, topic_specs
from tests.integration.leap_process import isolated_worker

pytestmark = pytest.mark.integration


async def test_created_topics_are_listed_with_their_partitions_on_return(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, **isolated_worker(topic_prefix, tmp_path))
    await ensure_topics(settings)

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        specs = topic_specs(settings)
        described = await admin.describe_topics([s.name for s in specs])
    finally:
        await admin.close()
    partitions = {meta["topic"]: len(meta["partitions"]) for meta in described}
    assert partitions == {s.name: s.partitions for s in specs}


async def test_a_topic_the_broker_never_lists_fails_with_what_to_do(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    await admin.start()
    try:
        with pytest.raises(RuntimeError, match=f"{topic_prefix}never-created.*broker's log"):
            await _until_listed(admin, [f"{topic_prefix}never-created"], seconds=0.5)
    finally:
        await admin.close()
