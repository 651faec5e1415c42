"""xAPI statements: what the LRS refuses, and how each recipe verb becomes an event."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.identity import IdentityMap
from connectors.publisher import Rejected
from connectors.xapi import (
    VERBS,
    Ignored,
    StatementError,
    duration_minutes,
    map_statement,
    validate_statement,
)
from schemas.codec import activity_codec

STORED = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
ADL = "http://adlnet.gov/expapi/verbs/"
VIDEO = "https://w3id.org/xapi/video/verbs/"
STATEMENT_ID = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"


def statement(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": STATEMENT_ID,
        "actor": {
            "objectType": "Agent",
            "name": "Alice Jones",
            "account": {"homePage": "https://moodle.example.ac.uk", "name": "ajones"},
        },
        "verb": {"id": f"{ADL}attended"},
        "object": {"id": "https://timetable.example.ac.uk/LEC-BS101-W5-1"},
        "timestamp": "2026-10-26T09:00:00+00:00",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


RECIPES = [
    (f"{ADL}attended", "attendance", "attended"),
    ("http://id.tincanapi.com/verb/viewed", "moodle", "viewed"),
    *[
        (f"{ADL}{verb}", "moodle", verb)
        for verb in (
            "experienced",
            "launched",
            "interacted",
            "answered",
            "attempted",
            "completed",
            "commented",
        )
    ],
    ("http://activitystrea.ms/schema/1.0/submit", "submission", "submitted"),
    (f"{ADL}submitted", "submission", "submitted"),
    ("https://w3id.org/xapi/dod-isd/verbs/submitted", "submission", "submitted"),
    ("https://brindlewaye.com/xAPITerms/verbs/loggedin/", "computer_login", "logged_in"),
]


@pytest.fixture
def people(tmp_path: Path) -> IdentityMap:
    ids = tmp_path / "ids.csv"
    ids.write_text("source_id,student_id\najones,S1000001\nbsmith@example.ac.uk,S1000002\n")
    return IdentityMap.load(ids)


def mapped(people: IdentityMap, **changes: Any) -> Any:
    return map_statement(validate_statement(statement(**changes), STORED), people, "lms", STORED)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"actor": None}, "actor is missing"),
        (
            {"actor": {"mbox": "mailto:a@example.ac.uk", "openid": "https://id.example/a"}},
            "exactly one inverse functional identifier, has 2",
        ),
        ({"actor": {"name": "Alice"}}, "exactly one inverse functional identifier, has 0"),
        ({"actor": {"mbox": "a@example.ac.uk"}}, "actor.mbox is malformed"),
        ({"actor": {"account": {"name": "ajones"}}}, "actor.account is malformed"),
        ({"verb": {"id": "attended"}}, "verb.id must be an absolute IRI"),
        ({"verb": {"display": {"en": "attended"}}}, "verb.id must be an absolute IRI"),
        ({"object": None}, "object is missing"),
        ({"object": {"id": "not an iri"}}, "object.id must be an absolute IRI"),
        ({"id": "not-a-uuid"}, "id must be a UUID"),
        ({"timestamp": "26/10/2026 09:00"}, "timestamp must be ISO 8601"),
        ({"timestamp": "2026-10-26T09:00:00"}, "timestamp must be ISO 8601"),
        ({"result": {"duration": "12 minutes"}}, "result.duration must be an ISO 8601"),
    ],
)
def test_invalid_statements_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(StatementError, match=message):
        validate_statement(statement(**changes), STORED)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(StatementError, match="JSON object"):
        validate_statement(["a statement"], STORED)


def test_missing_id_and_timestamp_are_assigned() -> None:
    valid = validate_statement(statement(id=None, timestamp=None), STORED)
    assert valid["timestamp"] == STORED.isoformat()
    assert len(valid["id"]) == 36
    assert valid["id"] != validate_statement(statement(id=None), STORED)["id"]


def test_uuid_is_canonicalised() -> None:
    assert validate_statement(statement(id=STATEMENT_ID.upper()), STORED)["id"] == STATEMENT_ID


@pytest.mark.parametrize(("verb", "source", "action"), RECIPES)
def test_recipe_verbs_map_to_sources(
    people: IdentityMap, verb: str, source: str, action: str
) -> None:
    event = mapped(people, verb={"id": verb})
    assert (event["source"], event["action"], event["quantity"]) == (source, action, 1.0)
    assert event["event_id"] == f"xapi:{STATEMENT_ID}"
    assert event["student_id"] == "S1000001"
    assert event["occurred_at"] == datetime(2026, 10, 26, 9, tzinfo=UTC)
    assert event["received_at"] == STORED
    activity_codec().encode(event)


def test_every_table_verb_is_covered() -> None:
    videos = {f"{VIDEO}played", f"{VIDEO}watched"}
    assert set(VERBS) == {verb for verb, _, _ in RECIPES} | videos


@pytest.mark.parametrize("verb", ["played", "watched"])
def test_video_duration_becomes_minutes(people: IdentityMap, verb: str) -> None:
    event = mapped(people, verb={"id": f"{VIDEO}{verb}"}, result={"duration": "PT12M30S"})
    assert (event["source"], event["action"], event["quantity"]) == (
        "lecture_capture",
        "watched",
        12.5,
    )


def test_video_without_duration_is_ignored(people: IdentityMap) -> None:
    assert mapped(people, verb={"id": f"{VIDEO}played"}) == Ignored("no_duration")


@pytest.mark.parametrize(
    ("duration", "minutes"),
    [("PT1H", 60), ("PT90S", 1.5), ("P1DT1M", 1441), ("PT0.5M", 0.5), ("P1W", 10080)],
)
def test_durations(duration: str, minutes: float) -> None:
    assert duration_minutes(duration) == pytest.approx(minutes)


@pytest.mark.parametrize("duration", ["P", "PT", "1H", "PT1H30", 90])
def test_bad_durations(duration: object) -> None:
    with pytest.raises(StatementError):
        duration_minutes(duration)


def test_missing_timestamp_uses_stored_time(people: IdentityMap) -> None:
    assert mapped(people, timestamp=None)["occurred_at"] == STORED


def test_offset_timestamp_is_the_same_instant(people: IdentityMap) -> None:
    event = mapped(people, timestamp="2026-10-26T10:00:00+01:00")
    assert event["occurred_at"] == datetime(2026, 10, 26, 9, tzinfo=UTC)


def test_mbox_actor_maps_without_mailto(people: IdentityMap) -> None:
    event = mapped(people, actor={"mbox": "mailto:BSmith@example.ac.uk"})
    assert event["student_id"] == "S1000002"


@pytest.mark.parametrize(
    "actor",
    [
        {"account": {"homePage": "https://moodle.example.ac.uk", "name": "dmurphy"}},
        {"mbox_sha1sum": "a" * 40},
        {"openid": "https://id.example.ac.uk/ajones"},
    ],
)
def test_unmapped_actor_is_dead_lettered(people: IdentityMap, actor: dict[str, Any]) -> None:
    outcome = mapped(people, actor=actor)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "unmapped_user"
    assert outcome.origin == f"xapi:lms:{STATEMENT_ID}"


def test_unknown_verb_is_ignored(people: IdentityMap) -> None:
    assert mapped(people, verb={"id": f"{ADL}voided"}) == Ignored("ignored_verb")


def test_course_from_parent_then_grouping(people: IdentityMap) -> None:
    grouping = {"id": "https://moodle.example.ac.uk/course/view.php?id=7"}
    parent = {"id": "https://moodle.example.ac.uk/course/view.php?id=9"}
    only_grouping = {"contextActivities": {"grouping": [grouping]}}
    both = {"contextActivities": {"grouping": [grouping], "parent": parent}}
    assert mapped(people, context=only_grouping)["course_id"] == grouping["id"]
    assert mapped(people, context=both)["course_id"] == parent["id"]
    assert mapped(people)["course_id"] is None


def test_attributes_carry_ids_not_personal_data(people: IdentityMap) -> None:
    event = mapped(people, actor={"name": "Bob Smith", "mbox": "mailto:bsmith@example.ac.uk"})
    assert event["attributes"] == {
        "statement_id": STATEMENT_ID,
        "verb": f"{ADL}attended",
        "object": "https://timetable.example.ac.uk/LEC-BS101-W5-1",
        "system": "lms",
    }
    agent_object = {"objectType": "Agent", "mbox": "mailto:cwu@example.ac.uk", "name": "C Wu"}
    event = mapped(people, verb={"id": f"{ADL}interacted"}, object=agent_object)
    flat = " ".join(event["attributes"].values())
    assert "@" not in flat
    assert "Smith" not in flat
    assert "Wu" not in flat
