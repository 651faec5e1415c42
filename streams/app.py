"""The Faust application: topics, tables and two thin agents. Rules live elsewhere."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

import faust
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from leap.contact import ContactPreferences
from leap.gc_settings import relax_gc
from leap.roster import Roster
from leap.scoring import Policy
from leap.settings import Settings
from schemas.codec import activity_codec, engagement_alert_codec, indicator_change_codec
from streams.activity import ActivityProcessor
from streams.alerting import NoEngagementAlerts
from streams.clock import CLOCK_HEADER
from streams.cohort_banding import CohortBanding
from streams.day_close import DayCloser
from streams.dead_letter import DeadLetters
from streams.history_sink import HistorySink
from streams.metrics import CONSUMER_LAG, TABLE_RECOVERY_SECONDS
from streams.redis_resync import RedisResync
from streams.redis_sink import RedisSink
from streams.sequence import InSequence

__all__ = ["create_app", "report_consumer_lag_of"]

#: Seconds between refreshes of leap_worker_consumer_lag_records.
CONSUMER_LAG_INTERVAL = 15.0


def create_app(
    settings: Settings, roster: Roster, policy: Policy, preferences: ContactPreferences
) -> faust.App:
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
    alert_states = app.Table("alerts", **table)
    activity_positions = app.Table("activity_positions", **table)
    banding_positions = app.Table("banding_positions", **table)

    # Started and stopped with the app; agents only queue writes, so never wait on Redis.
    sink = RedisSink(settings.redis_url, settings.redis_prefix)
    app.add_dependency(sink)
    resync = RedisResync(
        app,
        policy,
        roster,
        daily_totals,
        partition_clocks,
        indicators,
        sink,
        settings.redis_prefix,
        n,
    )
    sink.resync = resync.on_redis_lost
    # History is for trends and term reports: written when PostgreSQL is configured.
    history = HistorySink(settings.postgres_dsn) if settings.postgres_dsn else None
    if history is not None:
        app.add_dependency(history)
    processor = ActivityProcessor(
        settings,
        policy,
        roster,
        activity_codec(
            settings.schema_registry_url,
            settings.activity_topic,
            max_bytes=settings.max_event_bytes,
        ),
        daily_totals,
        partition_clocks,
        DeadLetters(app.topic(settings.dead_letter_topic, **raw)),
        DayCloser(
            settings,
            policy,
            roster,
            daily_totals,
            cohort_topic,
            sink,
            NoEngagementAlerts(
                roster,
                preferences,
                daily_totals,
                alert_states,
                app.topic(settings.alerts_topic, **raw),
                engagement_alert_codec(settings.schema_registry_url, settings.alerts_topic),
            ),
        ),
        sink,
        InSequence(activity_positions, "activity"),
    )
    banding = CohortBanding(
        policy,
        roster,
        rounds,
        indicators,
        app.topic(settings.indicator_changes_topic, **raw),
        indicator_change_codec(settings.schema_registry_url, settings.indicator_changes_topic),
        sink,
        settings.lateness_horizon_days,
        preferences,
        history,
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
        # In batches, as the activity agent: the positions are made durable once per batch
        # (one flush and one changelog round trip), not once per report. A day close sends
        # a report per cohort and partition, and each commit cost two produce requests.
        reports = InSequence(banding_positions, "cohort-banding")
        batches = stream.take_events(  # type: ignore[attr-defined]  # missing from StreamT
            settings.batch_size, settings.batch_within
        )
        async for events in batches:
            for report in await reports.admit(events):
                value = cast(Mapping[str, Any], report.value)  # JSON, from the topic
                await banding.on_report(value, report.message.partition)
            await banding.commit()  # the rounds the reports wrote, then their positions
            await reports.commit()

    if settings.clock == "wall":

        @app.timer(settings.tick_interval, on_leader=True)
        async def tick_wall_clock() -> None:
            """Idle partitions must close their days too: tick every partition."""
            now = str(int(time.time() * 1000)).encode()
            for partition in range(n):
                await activity_topic.send(
                    key=b"", value=b"", partition=partition, headers=[(CLOCK_HEADER, now)]
                )

    @app.task
    async def collect_less() -> None:
        """Once started: start-up's objects (roster, reference data, Faust's services)
        frozen and the young generation collected less often, as the API does."""
        relax_gc()

    @app.timer(CONSUMER_LAG_INTERVAL)
    async def report_consumer_lag() -> None:
        report_consumer_lag_of(app, settings.activity_topic)

    # Table recovery is timed from the rebalance that starts it (partitions revoked, or
    # assigned if no revoke was seen) to faust's recovery sending on_rebalance_complete,
    # once the tables' active partitions are restored and streams resume.
    recovery_started: list[float] = []

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        recovery_started[:] = [time.monotonic()]

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if not recovery_started:
            recovery_started.append(time.monotonic())

    @app.on_rebalance_complete.connect
    async def on_recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if recovery_started:
            TABLE_RECOVERY_SECONDS.set(time.monotonic() - recovery_started.pop())
        resync.run()  # the tables are recovered: make Redis match them

    @app.page("/metrics")
    async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # In a header: aiohttp refuses a content_type argument that carries a charset.
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok"})

    return app


_lag_partitions: set[str] = set()


def report_consumer_lag_of(app: faust.App, topic: str) -> None:
    """Set leap_worker_consumer_lag_records for the ``topic`` partitions assigned here.

    The end offset is the consumer's highwater (from its last fetch); the committed offset
    is faust's own record of what it committed (``Consumer._committed_offset``: faust has
    no public accessor, and asking the broker every 15 s would cost a round trip)."""
    consumer = app.consumer
    committed_offsets: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    seen: set[str] = set()
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        end = consumer.highwater(tp)
        committed = committed_offsets.get(tp)
        if end is None or committed is None:
            continue  # not fetched from, or never committed, yet
        label = str(tp.partition)
        CONSUMER_LAG.labels(label).set(max(0, end - committed))
        seen.add(label)
    for gone in _lag_partitions - seen:
        CONSUMER_LAG.remove(gone)
    _lag_partitions.clear()
    _lag_partitions.update(seen)
