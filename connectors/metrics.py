"""Prometheus metrics shared by the connectors (Moodle, feeds, xAPI, Caliper).

``connector`` is the connector's kind (``moodle``, ``feed``, ``xapi``, ``caliper``), a
handful of values; ``reason`` is a rejection reason from the connector's own fixed set.
Never a student or user id.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CHECKPOINT_AGE",
    "LAG_RECORDS",
    "PUBLISHED",
    "READ",
    "REJECTED",
    "SOURCE_LAG",
    "CheckpointClock",
    "metrics_endpoint",
    "record_acknowledged",
]

READ = Counter(
    "leap_connector_records_read_total", "Source records read, by connector.", ["connector"]
)
PUBLISHED = Counter(
    "leap_connector_published_total",
    "ActivityEvents acknowledged by Kafka, by connector.",
    ["connector"],
)
REJECTED = Counter(
    "leap_connector_rejected_total",
    "Source records refused (dead-lettered), by connector and reason.",
    ["connector", "reason"],
)
LAG_RECORDS = Gauge(
    "leap_connector_lag_records",
    "Source records not yet read (Moodle: max log id minus the checkpoint).",
    ["connector"],
)
SOURCE_LAG = Gauge(
    "leap_connector_source_lag_seconds",
    "Now minus the time of the newest source record published.",
    ["connector"],
)
CHECKPOINT_AGE = Gauge(
    "leap_connector_checkpoint_age_seconds",
    "Now minus the last checkpoint write (Moodle).",
    ["connector"],
)


def record_acknowledged(connector: str, items: Iterable[Mapping[str, Any] | object]) -> None:
    """After Kafka acknowledged ``items``: count the events, the rejections by reason (any
    item with a ``reason``: ``connectors.publisher.Rejected``), and set the source lag from
    the newest ``occurred_at`` among the events."""
    published = 0
    newest: datetime | None = None
    for item in items:
        if not isinstance(item, Mapping):
            reason = getattr(item, "reason", None)
            if isinstance(reason, str):
                REJECTED.labels(connector, reason).inc()
            continue
        published += 1
        occurred = item.get("occurred_at")
        if isinstance(occurred, datetime) and (newest is None or occurred > newest):
            newest = occurred
    PUBLISHED.labels(connector).inc(published)
    if newest is not None:
        SOURCE_LAG.labels(connector).set(max(0.0, time.time() - newest.timestamp()))


class CheckpointClock:
    """``leap_connector_checkpoint_age_seconds``, computed at scrape time from the last write."""

    def __init__(self, connector: str) -> None:
        self.written_at = time.time()
        CHECKPOINT_AGE.labels(connector).set_function(lambda: time.time() - self.written_at)

    def written(self) -> None:
        self.written_at = time.time()


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: this process's metrics in the Prometheus text exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
