"""What staff pages read, over real Redis and PostgreSQL: history, tutee lists, cohort
distributions, and the engagement record's "do not contact" and holiday marks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from api.access import Principal, Role
from api.engagement import newest_closable
from leap.contact import ContactPreferences
from leap.db.history import HistoryRow, HistoryStore
from leap.reference import Student
from leap.scoring import LABELS
from leap.settings import Settings
from leap.state_keys import cohort_key, indicator_key
from tests.integration.api_client import bearer, serve
from tests.integration.leap_db import migrated_pool
from tests.integration.test_api import INDICATOR, free_port
from tests.integration.test_api_auth import DISTRIBUTION_HASH

pytestmark = pytest.mark.integration

AS_OF = date(2025, 3, 14)
WEEK_BEFORE = AS_OF - timedelta(days=7)
COURSE = "BSc Physics"
#: tutee -> (indicator now, indicator a week before or None: no history that day)
TUTEES = {
    "S1": ("very_low", "low"),
    "S2": ("very_low", "very_low"),
    "S3": ("very_low", None),
    "S4": ("partial", "high"),
    "S5": ("good", "good"),
}
UNSCORED = "S6"
ROSTER = {
    sid: Student(sid, COURSE, 1, "full-time", "Physics", "T1") for sid in (*TUTEES, UNSCORED)
} | {"S9": Student("S9", COURSE, 1, "full-time", "Physics", "T2")}
TUTOR = Principal(Role.TUTOR, "T1")


def history_row(sid: str, as_of: date, indicator: str) -> HistoryRow:
    return HistoryRow(
        student_id=sid,
        as_of=as_of,
        indicator=indicator,
        score=3.5,
        reference_score=12.0,
        window_days=7,
        breakdown={"sources": {"moodle": 14.0}, "active_days": 2},
        policy_version="2025.1",
        course=COURSE,
        year=1,
        contact_allowed=True,
    )


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


@pytest.fixture
async def settings(
    redis_url: str, redis_prefix: str, postgres_dsn: str, pool: asyncpg.Pool
) -> Settings:
    store = aioredis.Redis.from_url(redis_url)
    for sid, (now, _) in TUTEES.items():
        fields = {**INDICATOR, "student_id": sid, "indicator": now, "label": LABELS[now]}
        await store.hset(indicator_key(redis_prefix, sid), mapping=fields)
    await store.aclose()
    await HistoryStore(pool).upsert_days(
        history_row(sid, WEEK_BEFORE, before)
        for sid, (_, before) in TUTEES.items()
        if before is not None
    )
    return Settings(
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        postgres_dsn=postgres_dsn,
    )


def opted_out(*sids: str) -> ContactPreferences:
    preferences = ContactPreferences()
    for sid in sids:
        preferences.apply(sid, {"contact_allowed": False})
    return preferences


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings, roster=ROSTER, preferences=opted_out("S2")) as client:
        yield client


async def test_tutees_most_in_need_first(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    response = await client.get("/v1/tutors/T1/tutees", headers=bearer(TUTOR))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    listed = response.json()["tutees"]
    assert [(t["student_id"], t["indicator"], t["trend"]) for t in listed] == [
        ("S1", "very_low", -1),  # Very Low first, the one that fell before the steady one
        ("S2", "very_low", 0),
        ("S3", "very_low", None),  # no history a week ago: trend unknown, after known ones
        ("S4", "partial", -2),
        ("S5", "good", 0),
        (UNSCORED, None, None),  # no indicator yet: last
    ]
    assert [t["contact_allowed"] for t in listed] == [True, False, True, True, True, True]
    assert listed[0] == {
        "student_id": "S1",
        "indicator": "very_low",
        "label": "Very Low",
        "score": 41.5,
        "as_of": "2025-03-14",
        "trend": -1,
        "course": "BSc Physics",
        "year": 1,
        "contact_allowed": True,
    }
    rows = await pool.fetch("SELECT actor_sub, student_id, endpoint, allowed FROM leap.audit_log")
    assert sorted(tuple(r) for r in rows) == [
        ("T1", sid, "GET /v1/tutors/{tutor_id}/tutees", True)
        for sid in sorted(ROSTER)
        if sid != "S9"
    ]


async def test_tutees_fail_closed_without_audit(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await pool.execute("REVOKE INSERT ON leap.audit_log FROM CURRENT_USER")
    response = await client.get("/v1/tutors/T1/tutees", headers=bearer(TUTOR))
    assert response.status_code == 503
    assert "S1" not in response.text


async def test_history(client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings) -> None:
    latest = newest_closable(datetime.now(UTC), settings.zone, settings.day_close_grace)
    await HistoryStore(pool).upsert_days(
        [history_row("S1", AS_OF, "very_low"), history_row("S1", latest, "partial")]
    )
    own = bearer(Principal(Role.STUDENT, "S1"))
    path = "/v1/students/S1/history"

    response = await client.get(f"{path}?since=2025-03-01&until=2025-03-31", headers=own)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["since"], body["until"]) == ("2025-03-01", "2025-03-31")
    assert [(d["as_of"], d["indicator"], d["label"]) for d in body["days"]] == [
        ("2025-03-07", "low", "Low"),
        ("2025-03-14", "very_low", "Very Low"),
    ]
    assert body["days"][0]["breakdown"] == {"sources": {"moodle": 14.0}, "active_days": 2}

    default = (await client.get(path, headers=own)).json()  # the last 28 days
    assert default["until"] == latest.isoformat()
    assert default["since"] == (latest - timedelta(days=27)).isoformat()
    assert [d["as_of"] for d in default["days"]] == [latest.isoformat()]

    for query in (
        "since=2024-01-01&until=2025-03-01",  # 426 days
        "since=2025-03-02&until=2025-03-01",
        "since=2025-3-1",
        "since=0001-01-01",
        "from=2025-03-01",
        "since=2025-03-01&since=2025-03-02",
    ):
        refused = await client.get(f"{path}?{query}", headers=own)
        assert refused.status_code == 400, query
    span = await client.get(f"{path}?since=2024-02-05&until=2025-03-10", headers=own)
    assert span.status_code == 200  # exactly 400 days
    over = await client.get(f"{path}?since=2024-02-04&until=2025-03-10", headers=own)
    assert over.status_code == 400

    rows = await pool.fetch("SELECT actor_role FROM leap.audit_log")
    assert rows == []  # the student's own: not audited
    staff = await client.get(path, headers=bearer(TUTOR))
    assert staff.status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM leap.audit_log") == 1


async def test_history_without_a_database(settings: Settings) -> None:
    unconfigured = settings.model_copy(update={"postgres_dsn": None})
    async with serve(unconfigured, roster=ROSTER, audit_log=False) as client:
        response = await client.get(
            "/v1/students/S1/history", headers=bearer(Principal(Role.STUDENT, "S1"))
        )
    assert response.status_code == 503
    assert response.json()["type"] == "urn:leap:problem:history-not-configured"


async def test_cohort_distribution(
    client: httpx.AsyncClient, redis_url: str, redis_prefix: str
) -> None:
    store = aioredis.Redis.from_url(redis_url)
    await store.hset(cohort_key(redis_prefix, COURSE, 1), mapping=DISTRIBUTION_HASH)
    path = f"/v1/cohorts/{COURSE}/1/distribution"
    response = await client.get(path, headers=bearer(TUTOR))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "course": COURSE,
        "year": 1,
        "as_of": "2025-03-14",
        "reference_score": 12.0,
        "policy_version": "2025.1",
        "size": 10,
        "counts": {"high": 1, "good": 2, "partial": 3, "low": 2, "very_low": 2},
        "stale": True,
    }
    await store.hset(cohort_key(redis_prefix, COURSE, 1), "size", "11")  # counts disagree
    await store.aclose()
    corrupt = await client.get(path, headers=bearer(TUTOR))
    assert corrupt.status_code == 500
    assert corrupt.json()["type"] == "urn:leap:problem:corrupt-distribution"
    for bad in (
        "/v1/cohorts/BSc%7CPhysics/1/distribution",
        f"/v1/cohorts/{COURSE}/one/distribution",
    ):
        assert (await client.get(bad, headers=bearer(TUTOR))).status_code == 400


async def test_engagement_marks_opt_out_and_holiday(settings: Settings, tmp_path: Path) -> None:
    institution = tmp_path / "institution.toml"
    institution.write_text(
        '[[holidays]]\nname = "Spring vacation"\nstart = 2025-03-08\nend = 2025-03-23\n'
    )
    on_holiday = settings.model_copy(update={"institution": institution})
    async with serve(on_holiday, roster=ROSTER, preferences=opted_out("S1")) as client:
        first = (await client.get("/v1/students/S1/engagement")).json()
        second = (await client.get("/v1/students/S2/engagement")).json()
    assert first["contact_allowed"] is False and second["contact_allowed"] is True
    holiday = {"name": "Spring vacation", "start": "2025-03-08", "end": "2025-03-23"}
    assert first["holiday"] == second["holiday"] == holiday
    assert first["indicator"] == "very_low"  # still computed and shown
