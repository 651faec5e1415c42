"""Prototype: LEAP's per-event work on a plain aiokafka loop, without Faust's stream.

Per batch of up to 2,000 records it does what ``streams.activity`` does per batch:
decode and check each event (key, partition), dedupe it by fingerprint into its
(student, local date) day record, then write each touched record once to a changelog
topic (acks awaited) and its breakdown to Redis (one pipelined round trip), then commit
offsets. Day closes are left out (they are per day, not per event: bench/day_close.py).
It measures what the stream's per-record machinery costs on top of LEAP's own work.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from leap.policy import load_policy
from leap.reference import partition_for
from leap.scoring import local_date, to_milli
from leap.settings import Settings
from leap.state_keys import days_key
from schemas.codec import InvalidRecord, activity_codec
from streams.day_record import DayRecord, day_breakdown, event_fingerprint, totals_key

__all__ = ["light_loop"]

BATCH = 2000


async def light_loop(settings: Settings, expected: int) -> float:
    """Seconds to count ``expected`` events (consumer start and group join included)."""
    started = time.perf_counter()
    changelog = f"{settings.app_id}-light-daily_totals-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog, settings.partitions, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        settings.activity_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"bench-light-{uuid.uuid4().hex[:6]}",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5
    )
    redis = aioredis.Redis.from_url(settings.redis_url)
    codec = activity_codec(topic=settings.activity_topic)
    policy = load_policy(settings.policy)
    table: dict[str, Any] = {}
    counted = 0
    await consumer.start()
    await producer.start()
    try:
        while counted < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            touched: dict[str, tuple[DayRecord, int, str, str]] = {}
            for tp, messages in batch.items():
                for message in messages:
                    if not message.value:
                        continue  # a clock tick
                    try:
                        record = codec.decode(message.value)
                    except InvalidRecord:
                        continue
                    sid = record["student_id"]
                    if (
                        message.key != sid.encode()
                        or partition_for(sid, settings.partitions) != tp.partition
                    ):
                        continue
                    day = local_date(record["occurred_at"], settings.zone)
                    key = totals_key(sid, day)
                    entry = touched.get(key)
                    day_record = entry[0] if entry else DayRecord.from_table(table.get(key))
                    fingerprint = event_fingerprint(record["event_id"])
                    if fingerprint not in day_record.counted:
                        day_record.counted.add(fingerprint)
                        source = record["source"]
                        day_record.sources[source] = day_record.sources.get(source, 0) + to_milli(
                            record["quantity"]
                        )
                    touched[key] = (day_record, tp.partition, sid, day.isoformat())
                    counted += 1
            sent = []
            pipe = redis.pipeline(transaction=False)
            for key, (day_record, partition, sid, iso_day) in touched.items():
                value = day_record.to_table()
                table[key] = value
                sent.append(
                    await producer.send(
                        changelog,
                        json.dumps(key).encode(),
                        json.dumps(value).encode(),
                        partition=partition,
                    )
                )
                pipe.hset(
                    days_key(settings.redis_prefix, sid),
                    iso_day,
                    json.dumps(day_breakdown(day_record.sources, policy)),
                )
            await pipe.execute()
            await asyncio.gather(*sent)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
        await redis.aclose()
    return time.perf_counter() - started
