"""The xAPI endpoint in-process against real Kafka: what a 200 promises, and what a 4xx doesn't."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from starlette.applications import Starlette

from connectors.identity import IdentityMap
from connectors.xapi_app import create_xapi_app
from leap.settings import Settings
from schemas.codec import activity_codec

pytestmark = pytest.mark.integration

ADL = "http://adlnet.gov/expapi/verbs/"
HOME = "https://moodle.example.ac.uk"
AUTH = "Basic " + base64.b64encode(b"moodle:s3cret").decode()
HEADERS = {"Authorization": AUTH, "X-Experience-API-Version": "1.0.3"}
IDS = [
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "33333333-3333-4333-8333-333333333333",
    "44444444-4444-4444-8444-444444444444",
]


def statement(statement_id: str, user: str, verb: str) -> dict[str, Any]:
    return {
        "id": statement_id,
        "actor": {"account": {"homePage": HOME, "name": user}},
        "verb": {"id": verb},
        "object": {"id": f"{HOME}/mod/page/view.php?id=42"},
        "timestamp": "2026-10-26T09:00:00Z",
    }


BATCH = [
    statement(IDS[0], "ajones", f"{ADL}attended"),
    statement(IDS[1], "bsmith", "http://id.tincanapi.com/verb/viewed"),
    statement(IDS[2], "dmurphy", f"{ADL}attended"),  # not in the identity map
    statement(IDS[3], "ajones", f"{ADL}voided"),  # not an engagement verb
]


class Lrs:
    """The app, a client to it, and the topics it writes."""

    def __init__(self, app: Starlette, client: httpx.AsyncClient, settings: Settings) -> None:
        self.app = app
        self.client = client
        self.settings = settings

    async def end_offsets(self, topic: str) -> int:
        """Records ever written to ``topic``: exact, since a response follows the acks."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
            return sum((await consumer.end_offsets(parts)).values())
        finally:
            await consumer.stop()

    async def consume(self, topic: str, expected: int) -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.settings.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        records: list[Any] = []
        try:
            async with asyncio.timeout(30):
                while len(records) < expected:
                    for batch in (await consumer.getmany(timeout_ms=1000)).values():
                        records.extend(batch)
        finally:
            await consumer.stop()
        return records


@pytest.fixture
async def lrs(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[Lrs]:
    ids = tmp_path / "ids.csv"
    ids.write_text("source_id,student_id\najones,S1000001\nbsmith,S1000002\n")
    settings = Settings(  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap,
        activity_topic=f"{topic_prefix}leap.activity",
        dead_letter_topic=f"{topic_prefix}leap.dead-letter",
        indicator_changes_topic=f"{topic_prefix}leap.indicator-changes",
        cohort_scores_topic=f"{topic_prefix}leap.cohort-scores",
        partitions=3,
    )
    app = create_xapi_app(settings, IdentityMap.load(ids), {"moodle": "s3cret"})
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://lrs") as client,
    ):
        yield Lrs(app, client, settings)


async def test_batch_is_published_once(lrs: Lrs) -> None:
    response = await lrs.client.post("/xAPI/statements", json=BATCH, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert response.json() == IDS
    assert response.headers["X-Experience-API-Version"] == "1.0.3"

    codec = activity_codec()
    messages = await lrs.consume(lrs.settings.activity_topic, 2)
    events = sorted((codec.decode(m.value) for m in messages), key=lambda e: e["event_id"])
    assert [m.key.decode() for m in messages] == [
        codec.decode(m.value)["student_id"] for m in messages
    ]
    assert [(e["event_id"], e["student_id"], e["source"], e["action"]) for e in events] == [
        (f"xapi:{IDS[0]}", "S1000001", "attendance", "attended"),
        (f"xapi:{IDS[1]}", "S1000002", "moodle", "viewed"),
    ]
    assert events[0]["attributes"]["system"] == "moodle"
    (dead,) = await lrs.consume(lrs.settings.dead_letter_topic, 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["leap-reason"] == "unmapped_user"
    assert headers["leap-origin"] == f"xapi:moodle:{IDS[2]}"
    assert json.loads(dead.value)["id"] == IDS[2]

    again = await lrs.client.post("/xAPI/statements", json=BATCH, headers=HEADERS)
    assert again.status_code == 200
    assert again.json() == IDS
    assert await lrs.end_offsets(lrs.settings.activity_topic) == 2
    assert await lrs.end_offsets(lrs.settings.dead_letter_topic) == 1
    counts = lrs.app.state.counts
    assert (counts["published"], counts["unmapped_user"], counts["ignored_verb"]) == (2, 1, 1)
    assert counts["duplicate"] == 4


async def test_put_stores_one_statement(lrs: Lrs) -> None:
    body = statement(IDS[0], "ajones", f"{ADL}attended")
    del body["id"]
    url = f"/xAPI/statements?statementId={IDS[0]}"
    response = await lrs.client.put(url, json=body, headers=HEADERS)
    assert response.status_code == 204, response.text
    (message,) = await lrs.consume(lrs.settings.activity_topic, 1)
    assert activity_codec().decode(message.value)["event_id"] == f"xapi:{IDS[0]}"

    other = statement(IDS[1], "ajones", f"{ADL}attended")
    mismatch = await lrs.client.put(url, json=other, headers=HEADERS)
    assert mismatch.status_code == 400
    assert "differs from statementId" in mismatch.json()["detail"]
    no_id = await lrs.client.put("/xAPI/statements", json=body, headers=HEADERS)
    assert no_id.status_code == 400
    assert await lrs.end_offsets(lrs.settings.activity_topic) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": AUTH}, 400),
        ({**HEADERS, "X-Experience-API-Version": "0.95"}, 400),
        ({"X-Experience-API-Version": "1.0.3"}, 401),
        ({**HEADERS, "Authorization": "Basic " + base64.b64encode(b"moodle:guess").decode()}, 401),
        ({**HEADERS, "Authorization": "Basic %%%"}, 401),
    ],
)
async def test_version_and_credentials_are_required(
    lrs: Lrs, headers: dict[str, str], status: int
) -> None:
    response = await lrs.client.post("/xAPI/statements", json=BATCH[0], headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert await lrs.end_offsets(lrs.settings.activity_topic) == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ([*BATCH[:2], {**BATCH[0], "id": "nope"}], "statement 2: id must be a UUID"),
        ([BATCH[0], BATCH[0]], "two statements with the same id"),
        ("{not json", "not JSON"),
    ],
)
async def test_one_bad_statement_refuses_the_batch(lrs: Lrs, body: Any, detail: str) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = await lrs.client.post("/xAPI/statements", content=content, headers=HEADERS)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert await lrs.end_offsets(lrs.settings.activity_topic) == 0
    assert await lrs.end_offsets(lrs.settings.dead_letter_topic) == 0
