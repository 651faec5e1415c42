"""No-engagement alerts end to end (issue 5): raised once, cleared on activity, paused by
holidays and never raised for a student who opted out of contact.

Eight local days of a synthetic cohort go through ``leap import events --ticks`` into a
``leap worker`` (clock=event) configured to alert after 3 inactive days, with a two-day
holiday on days 4-5. Chosen students are made silent:

- A: silent all along: one alert, as of day 3, never repeated;
- B: silent until day 7 (and active on it): raised as of day 3, cleared as of day 7;
- C: active on day 2, silent after: the holiday days don't count, so raised as of day 7
  (day 3, then 6 and 7), not day 5;
- D: silent all along but opted out of contact: no alert.

Every other alert on the topic must agree with ``leap replay``'s daily totals.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from leap.contact import contact_record
from leap.institution import load_institution
from leap.policy import load_policy
from leap.replay import DailyTotalsBook
from leap.scoring import daily_engagement, local_date
from schemas.codec import activity_from_json, engagement_alert_codec
from tests.integration.leap_process import leap_running
from tests.integration.test_pipeline import (
    ZONE,
    build_pipeline,
    import_until_closed,
    read_topic,
    replay,
    services,
    wait_all_closed,
)

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name

START = date(2026, 10, 19)
DAYS = 8
LAST = START + timedelta(days=DAYS - 1)
HOLIDAY = (START + timedelta(days=3), START + timedelta(days=4))

INSTITUTION = f"""
[scope]
cohorts = ["EBS-BSC-BM:1", "BA-ENGLIT:1-3", "BSC-MARBIO:1-3", "BSC-BIOSCI:1-3"]
[alerts]
no_engagement_days = 3
[[holidays]]
name = "Reading days"
start = {HOLIDAY[0].isoformat()}
end = {HOLIDAY[1].isoformat()}
"""


def day(n: int) -> date:
    """Day ``n`` of the term, counting from 1."""
    return START + timedelta(days=n - 1)


def silent(group: str, on: date) -> bool:
    if group in ("A", "D"):
        return True
    if group == "B":
        return on < day(7)
    if group == "C":
        return on > day(2)
    return False


async def _opt_out(settings: Any, student_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        record = contact_record(student_id, False, "student", datetime.now(UTC))
        await producer.send_and_wait(
            settings.contact_preferences_topic, json.dumps(record).encode(), student_id.encode()
        )
    finally:
        await producer.stop()


def test_no_engagement_alerts(tmp_path: Path, services: dict[str, str], topic_prefix: str) -> None:
    p = build_pipeline(tmp_path, services, topic_prefix, "event", START, DAYS, False)
    institution_file = tmp_path / "institution.toml"
    institution_file.write_text(INSTITUTION)
    p.env["LEAP_INSTITUTION"] = str(institution_file)
    settings = p.settings
    students = sorted(replay(p, START))
    events = [
        activity_from_json(json.loads(line)) for line in p.events_file.read_text().splitlines()
    ]
    active_on: dict[date, set[str]] = {}
    for event in events:
        active_on.setdefault(local_date(event["occurred_at"], ZONE), set()).add(event["student_id"])
    # B must resume on day 7 and C be active on day 2 (a Sunday and a Tuesday).
    b = next(sid for sid in students if sid in active_on[day(7)])
    c = next(sid for sid in students if sid in active_on[day(2)] and sid != b)
    a, d = [sid for sid in students if sid not in (b, c)][:2]
    groups = {a: "A", b: "B", c: "C", d: "D"}
    kept = []
    for line, event in zip(p.events_file.read_text().splitlines(), events, strict=True):
        group = groups.get(event["student_id"])
        if group is None or not silent(group, local_date(event["occurred_at"], ZONE)):
            kept.append(line)
    p.events_file.write_text("".join(f"{line}\n" for line in kept))
    by_group = {g: sid for sid, g in groups.items()}

    asyncio.run(_ensure_topics_and_opt_out(p, by_group["D"]))
    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        import_until_closed(p, p.events_file, LAST)
        wait_all_closed(p, LAST, len(students))
        messages = asyncio.run(read_topic(settings, settings.alerts_topic))

    codec = engagement_alert_codec()
    alerts: dict[str, list[tuple[str, date, int]]] = {}
    for message in messages:
        alert = codec.decode(message.value)
        assert message.key == alert["student_id"].encode()
        alerts.setdefault(alert["student_id"], []).append(
            (alert["state"], alert["as_of"], alert["inactive_days"])
        )

    assert alerts[by_group["A"]] == [("raised", day(3), 3)]
    assert alerts[by_group["B"]] == [("raised", day(3), 3), ("cleared", day(7), 0)]
    assert alerts[by_group["C"]] == [("raised", day(7), 3)]
    assert by_group["D"] not in alerts

    # Every other alert is one the daily totals justify: 3 inactive term days, once.
    book = DailyTotalsBook(ZONE)
    book.add_all(activity_from_json(json.loads(line)) for line in kept)
    policy = load_policy()
    inst = load_institution(Path(institution_file))

    def active(sid: str, on: date) -> bool:
        totals = book.totals.get(sid, {}).get(on)
        return bool(totals) and daily_engagement(totals, policy) > 0

    for sid, history in alerts.items():
        if sid in groups:
            continue
        state, as_of, inactive = history[0]
        assert (state, inactive) == ("raised", 3), sid
        term_days = [
            d for d in (as_of - timedelta(days=n) for n in range(6)) if not inst.holiday_on(d)
        ]
        assert not any(active(sid, d) for d in term_days[:3]), (sid, as_of)
        assert inst.holiday_on(as_of) is None, (sid, as_of)
        if len(history) > 1:
            assert history[1][0] == "cleared" and active(sid, history[1][1]), sid


async def _ensure_topics_and_opt_out(p: Any, student_id: str) -> None:
    from streams.topics import ensure_topics

    await ensure_topics(p.settings)
    await _opt_out(p.settings, student_id)
