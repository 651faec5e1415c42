"""The Faust application: topics, tables and two thin agents. Rules live elsewhere."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import faust
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from leap.reference import Student
from leap.scoring import Policy
from leap.settings import Settings
from schemas.codec import activity_codec, indicator_change_codec
from streams.activity import ActivityProcessor
from streams.clock import CLOCK_HEADER
from streams.cohort_banding import CohortBanding
from streams.day_close import DayCloser
from streams.dead_letter import DeadLetters
from streams.redis_sink import RedisSink

__all__ = ["create_app"]


def create_app(settings: Settings, students: Mapping[str, Student], policy: Policy) -> faust.App:
    n = settings.partitions
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        store=settings.table_store,
        datadir=str(settings.data_dir),
        topic_partitions=n,
        topic_replication_factor=settings.replication_factor,
        web_port=settings.worker_web_port,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
        consumer_auto_offset_reset="earliest",
        key_serializer="json",  # table keys: str and int; our topics set their own
        producer_acks=-1,
        producer_max_batch_size=settings.producer_max_batch_size,
        # A bug in an agent must restart the process, not leave it up with offsets stuck.
        agent_supervisor=CrashingSupervisor,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    activity_topic = app.topic(settings.activity_topic, partitions=n, **raw)
    cohort_topic = app.topic(
        settings.cohort_scores_topic, partitions=n, key_serializer="raw", value_serializer="json"
    )
    table: dict[str, Any] = {"partitions": n}
    daily_totals = app.Table("daily_totals", **table)
    partition_clocks = app.Table("partition_clocks", **table)
    rounds = app.Table("cohort_rounds", **table)
    indicators = app.Table("indicators", **table)

    sink = RedisSink(settings.redis_url, settings.redis_prefix)
    processor = ActivityProcessor(
        settings,
        policy,
        students,
        activity_codec(
            settings.schema_registry_url,
            settings.activity_topic,
            max_bytes=settings.max_event_bytes,
        ),
        daily_totals,
        partition_clocks,
        DeadLetters(app.topic(settings.dead_letter_topic, **raw)),
        DayCloser(settings, policy, students, daily_totals, cohort_topic, sink),
        sink,
    )
    banding = CohortBanding(
        policy,
        students,
        rounds,
        indicators,
        app.topic(settings.indicator_changes_topic, **raw),
        indicator_change_codec(settings.schema_registry_url, settings.indicator_changes_topic),
        sink,
    )

    @app.agent(activity_topic, name="activity")
    async def count_activity(stream: faust.StreamT) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]  # missing from StreamT
            settings.batch_size, settings.batch_within
        )
        async for events in batches:
            await processor.process(events)

    @app.agent(cohort_topic, name="cohort-banding")
    async def band_cohorts(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await banding.on_report(event.value, event.message.partition)

    if settings.clock == "wall":

        @app.timer(settings.tick_interval, on_leader=True)
        async def tick_wall_clock() -> None:
            """Idle partitions must close their days too: tick every partition."""
            now = str(int(time.time() * 1000)).encode()
            for partition in range(n):
                await activity_topic.send(
                    key=b"", value=b"", partition=partition, headers=[(CLOCK_HEADER, now)]
                )

    @app.page("/metrics")
    async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok"})

    return app
