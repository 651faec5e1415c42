"""Every process's ``/metrics`` against real services: scraped, parsed, and sane.

The API and the xAPI, Caliper and Moodle connectors run in-process (their metrics are this
process's, so the tests compare before and after); the worker runs as ``leap worker``.
"""

from __future__ import annotations

import base64
import csv
import json
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from connectors.caliper_app import create_caliper_app
from connectors.identity import IdentityMap
from connectors.xapi_app import create_xapi_app
from leap.scoring import INDICATORS, day_end
from leap.settings import Settings
from tests.integration.api_client import serve
from tests.integration.leap_process import leap_running, wait_for
from tests.integration.test_moodle_connector import config as moodle_config
from tests.integration.test_moodle_connector import moodle, run_once
from tests.integration.test_moodle_connector import settings as moodle_settings
from tests.integration.test_pipeline import (
    GRACE,
    PARTITIONS,
    ZONE,
    build_pipeline,
    import_until_closed,
    redis_indicators,
    wait_all_closed,
)

pytestmark = pytest.mark.integration
__all__ = ["moodle", "moodle_settings"]  # fixtures, used by name

ENGAGEMENT = "/v1/students/{student_id}/engagement"


def parse(text: str) -> dict[str, list[Sample]]:
    """Samples by metric family name, from the text exposition format."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(
    metrics: Mapping[str, list[Sample]], family: str, sample: str | None = None, **labels: str
) -> float:
    """The sum of ``sample`` (default: the family's own name) over samples with ``labels``."""
    name = sample or family
    return sum(
        s.value
        for s in metrics.get(family, [])
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap,
        activity_topic=f"{topic_prefix}leap.activity",
        dead_letter_topic=f"{topic_prefix}leap.dead-letter",
        indicator_changes_topic=f"{topic_prefix}leap.indicator-changes",
        cohort_scores_topic=f"{topic_prefix}leap.cohort-scores",
        partitions=3,
    )


async def test_api_metrics_by_route_template(redis_url: str, redis_prefix: str) -> None:
    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix)  # type: ignore[call-arg]
    async with serve(settings) as client:
        before = parse((await client.get("/metrics")).text)
        assert (await client.get("/healthz")).status_code == 200
        for sid in ("S1000001", "S1000002"):  # unknown students: 404 on the matched route
            assert (await client.get(f"/v1/students/{sid}/engagement")).status_code == 404
        assert (await client.get("/no/such/path")).status_code == 404
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    after = parse(scrape.text)

    def delta(family: str, sample: str | None = None, **labels: str) -> float:
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)

    requests = "leap_api_requests"
    assert delta(requests, f"{requests}_total", route="/healthz", method="GET", status="200") == 1
    assert delta(requests, f"{requests}_total", route=ENGAGEMENT, method="GET", status="404") == 2
    assert delta(requests, f"{requests}_total", route="unmatched", method="GET", status="404") == 1
    # the first scrape was answered (and counted) before the second was rendered
    assert delta(requests, f"{requests}_total", route="/metrics", status="200") >= 1
    seconds = "leap_api_request_seconds"
    assert delta(seconds, f"{seconds}_count", route=ENGAGEMENT) == 2
    buckets = {s.labels["le"] for s in after[seconds] if s.name.endswith("_bucket")}
    assert {"0.001", "0.01", "0.1", "1.0", "2.5", "+Inf"} <= buckets
    assert not any("S100000" in v for s in after[requests] for v in s.labels.values())


async def test_xapi_and_caliper_metrics(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, topic_prefix)
    identities = IdentityMap({"ajones": "S1000001"})
    home = "https://moodle.example.ac.uk"
    statements = [
        {
            "id": f"11111111-1111-4111-8111-11111111111{n}",
            "actor": {"account": {"homePage": home, "name": user}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
            "object": {"id": f"{home}/mod/page/view.php?id=42"},
            "timestamp": "2026-10-26T09:00:00Z",
        }
        for n, user in enumerate(("ajones", "nobody"))
    ]
    auth = "Basic " + base64.b64encode(b"moodle:s3cret").decode()
    xapi = create_xapi_app(settings, identities, {"moodle": "s3cret"})
    async with (
        xapi.router.lifespan_context(xapi),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=xapi), base_url="http://x") as client,
    ):
        before = parse((await client.get("/metrics")).text)
        headers = {"Authorization": auth, "X-Experience-API-Version": "1.0.3"}
        response = await client.post("/xAPI/statements", json=statements, headers=headers)
        assert response.status_code == 200, response.text
        bad = await client.post("/xAPI/statements", json=[{"id": "x"}], headers=headers)
        assert bad.status_code == 400
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    after = parse(scrape.text)

    def delta(family: str, **labels: str) -> float:
        sample = (
            f"{family}_total" if family.endswith(("_read", "_published", "_rejected")) else None
        )
        return value(after, family, sample, **labels) - value(before, family, sample, **labels)

    read, published = "leap_connector_records_read", "leap_connector_published"
    rejected = "leap_connector_rejected"
    assert delta(read, connector="xapi") == 3
    assert delta(published, connector="xapi") == 1
    assert delta(rejected, connector="xapi", reason="unmapped_user") == 1
    assert delta(rejected, connector="xapi", reason="invalid_request") == 1
    lag = value(after, "leap_connector_source_lag_seconds", connector="xapi")
    assert lag > (datetime.now(ZONE) - datetime(2026, 10, 26, 10, tzinfo=ZONE)).total_seconds()

    caliper = create_caliper_app(settings, identities, {"lms": "token"})
    event = {
        "@context": "http://purl.imsglobal.org/ctx/caliper/v1p2",
        "id": "urn:uuid:0f3a3f5e-1c1a-4a7e-9d59-8f0b6a1c0001",
        "type": "NavigationEvent",
        "actor": {"id": "https://example.edu/users/ajones", "type": "Person"},
        "action": "NavigatedTo",
        "object": {"id": "https://example.edu/courses/7/assignments/1"},
        "eventTime": "2026-10-26T09:00:00.000Z",
    }
    envelope = {
        "sensor": "https://example.edu/sensors/lms",
        "sendTime": "2026-10-26T09:00:05.000Z",
        "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p2",
        "data": [event],
    }
    async with (
        caliper.router.lifespan_context(caliper),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=caliper), base_url="http://c"
        ) as client,
    ):
        before = parse((await client.get("/metrics")).text)
        auth_header = {"Authorization": "Bearer token"}
        response = await client.post("/caliper", json=envelope, headers=auth_header)
        assert response.status_code == 200, response.text
        bad = await client.post("/caliper", json={"data": 1}, headers=auth_header)
        assert bad.status_code == 400
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    after = parse(scrape.text)
    assert delta(read, connector="caliper") == 1
    assert delta(published, connector="caliper") == 1
    assert delta(rejected, connector="caliper", reason="invalid_envelope") == 1


def test_worker_metrics(
    tmp_path: Path, kafka_bootstrap: str, redis_url: str, redis_prefix: str, topic_prefix: str
) -> None:
    """Three local days through a worker on clock=event: its /metrics tells the story."""
    days = 3
    start = datetime.now(ZONE).date() - timedelta(days=days + 2)
    last = start + timedelta(days=days - 1)
    services = {"kafka_bootstrap": kafka_bootstrap, "redis_url": redis_url}
    p = build_pipeline(
        tmp_path,
        {**services, "redis_prefix": redis_prefix},
        topic_prefix,
        "event",
        start,
        days,
        False,
    )
    with p.events_file.open() as lines:
        events = [json.loads(line) for line in lines]
    with p.students_csv.open() as f:
        students = list(csv.DictReader(f))
    until = datetime.combine(last + timedelta(days=1), time(0), ZONE) + GRACE
    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        import_until_closed(p, p.events_file, last)
        wait_all_closed(p, last, len(students))
        url = f"http://127.0.0.1:{p.settings.worker_web_port}/metrics"
        # the banding agent sets the gauges just after its Redis write: allow it a moment
        metrics = wait_for(
            lambda: _scrape_when(url, len(students)),
            timeout=10,
            what="the indicator gauges",
            log=p.worker_log,
        )
        # the consumer-lag timer first runs 15 s after the worker started
        consumer_lag = wait_for(
            lambda: parse(httpx.get(url, timeout=5).text).get("leap_worker_consumer_lag_records"),
            timeout=20,
            what="the consumer lag gauges",
            log=p.worker_log,
        )

    counted = value(metrics, "leap_worker_events", "leap_worker_events_total", outcome="counted")
    assert counted == len(events)
    assert value(metrics, "leap_worker_events", "leap_worker_events_total", outcome="late") == 0
    closed = value(metrics, "leap_worker_days_closed", "leap_worker_days_closed_total")
    assert closed == days * PARTITIONS
    scored = value(metrics, "leap_worker_students_scored", "leap_worker_students_scored_total")
    assert scored == days * len(students)

    end_of_last = day_end(last, ZONE).timestamp()
    last_closed = metrics["leap_worker_last_closed_day_timestamp_seconds"]
    assert {s.labels["partition"]: s.value for s in last_closed} == {
        str(n): end_of_last for n in range(PARTITIONS)
    }

    cohorts = Counter((s["course"], s["year"]) for s in students)
    gauges = Counter[tuple[str, str]]()
    by_level = Counter[str]()
    for s in metrics["leap_worker_indicators"]:
        assert s.labels["indicator"] in INDICATORS
        gauges[(s.labels["course"], s.labels["year"])] += int(s.value)
        by_level[s.labels["indicator"]] += int(s.value)
    assert gauges == cohorts
    assert by_level == Counter(s["indicator"] for s in redis_indicators(p.settings).values())

    lag = "leap_worker_event_lag_seconds"
    assert value(metrics, lag, f"{lag}_count") == len(events)
    oldest = (datetime.now(ZONE) - datetime.combine(start, time(0), ZONE)).total_seconds()
    newest = (datetime.now(ZONE) - until).total_seconds()
    mean = value(metrics, lag, f"{lag}_sum") / len(events)
    assert newest < mean < oldest
    assert value(metrics, lag, f"{lag}_bucket", le="604800.0") == len(events)  # all within 7 d
    assert value(metrics, lag, f"{lag}_bucket", le="86400.0") == 0  # none newer than a day

    write = "leap_worker_redis_write_seconds"
    assert value(metrics, write, f"{write}_count") > 0
    assert value(metrics, "leap_worker_table_recovery_seconds") > 0
    # everything was consumed and committed: no lag on any partition
    assert {s.labels["partition"]: s.value for s in consumer_lag} == {
        str(n): 0 for n in range(PARTITIONS)
    }


def _scrape_when(url: str, students: int) -> dict[str, list[Sample]] | None:
    metrics = parse(httpx.get(url, timeout=5).text)
    banded = sum(s.value for s in metrics.get("leap_worker_indicators", []))
    return metrics if banded == students else None


async def test_moodle_connector_metrics(
    moodle: asyncpg.Connection, postgres_dsn: str, moodle_settings: Settings
) -> None:
    """The connector's metrics, rendered as a ``--metrics-port`` scrape would see them."""
    before = parse(generate_latest().decode())
    summary = await run_once(moodle_settings, moodle_config(postgres_dsn))
    after = parse(generate_latest().decode())

    def delta(family: str, **labels: str) -> float:
        total = f"{family}_total"
        return value(after, family, total, **labels) - value(before, family, total, **labels)

    assert delta("leap_connector_records_read", connector="moodle") == summary.read == 9
    assert delta("leap_connector_published", connector="moodle") == summary.published == 6
    rejected = delta("leap_connector_rejected", connector="moodle", reason="unmapped_user")
    assert rejected == 3
    assert value(after, "leap_connector_lag_records", connector="moodle") == 0
    assert 0 <= value(after, "leap_connector_checkpoint_age_seconds", connector="moodle") < 30
    assert value(after, "leap_connector_source_lag_seconds", connector="moodle") > 0
