"""The Caliper endpoint in-process against real Kafka: a 200 is durable, a 400 publishes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.caliper_app import create_caliper_app
from connectors.identity import IdentityMap
from leap.settings import Settings
from schemas.codec import activity_codec
from tests.integration.test_feed_import import consume

pytestmark = pytest.mark.integration

V1P2 = "http://purl.imsglobal.org/ctx/caliper/v1p2"
TOKEN = "s3cret-token"
NAVIGATED = "0f3a3f5e-1c1a-4a7e-9d59-8f0b6a1c0001"
SUBMITTED = "0f3a3f5e-1c1a-4a7e-9d59-8f0b6a1c0002"
UNMAPPED = "0f3a3f5e-1c1a-4a7e-9d59-8f0b6a1c0003"
GRADED = "0f3a3f5e-1c1a-4a7e-9d59-8f0b6a1c0004"
NEVER = "0f3a3f5e-1c1a-4a7e-9d59-8f0b6a1c0005"


def caliper_event(uuid: str, kind: str, action: str, actor: str) -> dict[str, Any]:
    return {
        "@context": V1P2,
        "id": f"urn:uuid:{uuid}",
        "type": kind,
        "actor": {"id": f"https://example.edu/users/{actor}", "type": "Person"},
        "action": action,
        "object": {"id": "https://example.edu/courses/7/assignments/1"},
        "eventTime": "2026-10-26T09:00:00.000Z",
        "group": {"id": "https://example.edu/courses/7", "courseNumber": "BS101"},
    }


def envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "sensor": "https://example.edu/sensors/lms",
        "sendTime": "2026-10-26T09:00:05.000Z",
        "dataVersion": V1P2,
        "data": list(events),
    }


ENVELOPE = envelope(
    caliper_event(NAVIGATED, "NavigationEvent", "NavigatedTo", "ajones"),
    caliper_event(SUBMITTED, "AssignableEvent", "Submitted", "bsmith"),
    caliper_event(UNMAPPED, "ViewEvent", "Viewed", "dmurphy"),
    caliper_event(GRADED, "GradeEvent", "Graded", "ajones"),
)
EXPECTED_EVENTS = [
    (f"caliper:{NAVIGATED}", "S1000001", "moodle", "navigatedto", "BS101"),
    (f"caliper:{SUBMITTED}", "S1000002", "submission", "submitted", "BS101"),
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_caliper_events_are_published_once(kafka_bootstrap: str, topic_prefix: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap,
        activity_topic=f"{topic_prefix}leap.activity",
        dead_letter_topic=f"{topic_prefix}leap.dead-letter",
        indicator_changes_topic=f"{topic_prefix}leap.indicator-changes",
        cohort_scores_topic=f"{topic_prefix}leap.cohort-scores",
        partitions=3,
    )
    identities = IdentityMap({"ajones": "S1000001", "https://example.edu/users/bsmith": "S1000002"})
    app = create_caliper_app(settings, identities, {"lms": TOKEN, "other": "another-token"})
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://caliper") as client,
    ):
        wrong = await client.post(
            "/caliper", json=ENVELOPE, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        assert (await client.post("/caliper", json=ENVELOPE)).status_code == 401

        invalid = caliper_event(NAVIGATED, "NavigationEvent", "NavigatedTo", "ajones")
        invalid["eventTime"] = "2026-10-26 09:00"
        bad = await client.post(
            "/caliper",
            json=envelope(caliper_event(NEVER, "ViewEvent", "Viewed", "ajones"), invalid),
            headers=AUTH,
        )
        assert bad.status_code == 400
        assert bad.json()["errors"] == [
            "data[1].eventTime: must be an ISO-8601 time with a UTC offset or Z"
        ]
        not_json = await client.post(
            "/caliper", content=b"{", headers={**AUTH, "Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        as_text = await client.post(
            "/caliper", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}
        )
        assert as_text.status_code == 415

        first = await client.post("/caliper", json=ENVELOPE, headers=AUTH)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "received": 4,
            "published": 2,
            "duplicate": 0,
            "ignored_event": 1,
            "unmapped_user": 1,
        }
        again = await client.post("/caliper", json=ENVELOPE, headers=AUTH)
        assert again.status_code == 200
        assert again.json() == {
            "received": 4,
            "published": 0,
            "duplicate": 3,
            "ignored_event": 1,
        }

    codec = activity_codec()
    messages = await consume(kafka_bootstrap, settings.activity_topic, len(EXPECTED_EVENTS))
    events = [codec.decode(m.value) for m in messages]
    assert [m.key.decode() for m in messages] == [e["student_id"] for e in events]
    assert (
        sorted(
            (e["event_id"], e["student_id"], e["source"], e["action"], e["course_id"])
            for e in events
        )
        == EXPECTED_EVENTS
    )
    assert {e["occurred_at"] for e in events} == {datetime(2026, 10, 26, 9, tzinfo=UTC)}

    dead = await consume(kafka_bootstrap, settings.dead_letter_topic, 1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["leap-reason"] == "unmapped_user"
    assert headers["leap-origin"] == f"caliper:lms:urn:uuid:{UNMAPPED}"
    assert b"users/dmurphy" in dead[0].value
