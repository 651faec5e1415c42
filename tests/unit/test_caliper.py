"""Caliper envelopes: validation, the mapping table, unmapped actors, ignored events, privacy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.caliper import (
    MAX_EVENTS,
    ROUTES,
    CaliperError,
    Ignored,
    parse_envelope,
    to_activity,
)
from connectors.caliper_app import TokenError, load_tokens
from connectors.identity import IdentityMap
from connectors.publisher import Rejected
from schemas.codec import activity_codec

RECEIVED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
UUID = "c51570e4-f8ed-4c18-bb3a-dfe51b2cc594"
V1P2 = "http://purl.imsglobal.org/ctx/caliper/v1p2"


def caliper_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "@context": V1P2,
        "id": f"urn:uuid:{UUID}",
        "type": "NavigationEvent",
        "actor": {
            "id": "https://example.edu/users/554433",
            "type": "Person",
            "name": "Ann Jones",
            "email": "ann.jones@example.edu",
        },
        "action": "NavigatedTo",
        "object": {"id": "https://example.edu/terms/201801/courses/7/sections/1/pages/2"},
        "eventTime": "2026-10-26T09:15:00.123456+01:00",
        "group": {"id": "https://example.edu/terms/201801/courses/7", "courseNumber": "BS101"},
    }
    event.update(overrides)
    return event


def envelope(*events: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sensor": "https://example.edu/sensors/1",
        "sendTime": "2026-10-26T08:16:00.000Z",
        "dataVersion": V1P2,
        "data": list(events) or [caliper_event()],
    }
    body.update(overrides)
    return body


@pytest.fixture
def identities() -> IdentityMap:
    return IdentityMap({"554433": "S1000001", "https://example.edu/users/778899": "S1000002"})


def reasons(body: object) -> list[str]:
    with pytest.raises(CaliperError) as caught:
        parse_envelope(body)
    return caught.value.reasons


def test_a_valid_envelope_gives_its_events() -> None:
    assert parse_envelope(envelope()) == [caliper_event()]
    v1p1 = envelope(dataVersion="http://purl.imsglobal.org/ctx/caliper/v1p1")
    assert len(parse_envelope(v1p1)) == 1
    string_actor = caliper_event(actor="https://example.edu/users/554433", object="urn:x:1")
    assert parse_envelope(envelope(string_actor)) == [string_actor]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], ["envelope: must be a JSON object"]),
        (envelope(sensor="not an iri"), ["sensor: must be an IRI string"]),
        (envelope(sensor=7), ["sensor: must be an IRI string"]),
        (envelope(sendTime="yesterday"), ["sendTime: must be an ISO-8601 time"]),
        (envelope(dataVersion="http://purl.imsglobal.org/ctx/caliper/v1p0"), ["dataVersion"]),
        (envelope(data=[]), ["data: must be a non-empty array"]),
        (envelope(data={"id": 1}), ["data: must be a non-empty array"]),
        (envelope(data=[caliper_event()] * (MAX_EVENTS + 1)), ["data: at most"]),
    ],
)
def test_invalid_envelopes_are_refused(body: object, expected: list[str]) -> None:
    found = reasons(body)
    assert len(found) == len(expected)
    assert all(f.startswith(e) for f, e in zip(found, expected, strict=True))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"id": UUID}, "data[1].id: must be a urn:uuid: IRI"),
        ({"id": "urn:uuid:not-a-uuid"}, "data[1].id: must be a urn:uuid: IRI"),
        ({"type": ""}, "data[1].type: must be a non-empty string"),
        ({"action": None}, "data[1].action: must be a non-empty string"),
        ({"actor": {"name": "Ann"}}, "data[1].actor: must be an IRI or an object"),
        ({"actor": "ann jones"}, "data[1].actor: must be an IRI or an object"),
        ({"object": None}, "data[1].object: must be an IRI or an object"),
        ({"eventTime": "2026-10-26T09:15:00"}, "data[1].eventTime: must be an ISO-8601"),
        ({"eventTime": "26/10/2026"}, "data[1].eventTime: must be an ISO-8601"),
    ],
)
def test_an_invalid_event_refuses_the_envelope(overrides: dict[str, Any], expected: str) -> None:
    found = reasons(envelope(caliper_event(), caliper_event(**overrides)))
    assert len(found) == 1
    assert found[0].startswith(expected)


def test_every_problem_is_reported_and_no_values_are_echoed() -> None:
    bad = {"id": "x", "actor": {"id": "ann@example.edu secret"}, "eventTime": "never"}
    found = reasons(envelope(data=[bad, "not an event"], sensor=None))
    assert len(found) == 8
    assert "data[1].event: must be a JSON object" in found
    assert not any("secret" in reason or "never" in reason for reason in found)


@pytest.mark.parametrize(
    ("kind", "action", "source", "mapped"),
    [
        ("NavigationEvent", "NavigatedTo", "moodle", "navigatedto"),
        ("ViewEvent", "Viewed", "moodle", "viewed"),
        ("ForumEvent", "Subscribed", "moodle", "subscribed"),
        ("MessageEvent", "Posted", "moodle", "posted"),
        ("AssessmentEvent", "Started", "moodle", "started"),
        ("AssessmentEvent", "Submitted", "moodle", "submitted"),
        ("AssessmentItemEvent", "Completed", "moodle", "completed"),
        ("ToolUseEvent", "Used", "moodle", "used"),
        ("AssignableEvent", "Submitted", "submission", "submitted"),
        ("SessionEvent", "LoggedIn", "computer_login", "logged_in"),
    ],
)
def test_mapping_table(
    identities: IdentityMap, kind: str, action: str, source: str, mapped: str
) -> None:
    assert ROUTES[(kind, action)] == (source, mapped)
    record = to_activity(caliper_event(type=kind, action=action), identities, RECEIVED, "o")
    assert isinstance(record, dict)
    assert (record["source"], record["action"], record["quantity"]) == (source, mapped, 1.0)


def test_an_event_becomes_an_encodable_activity(identities: IdentityMap) -> None:
    record = to_activity(caliper_event(), identities, RECEIVED, "o")
    assert record == {
        "event_id": f"caliper:{UUID}",
        "student_id": "S1000001",
        "source": "moodle",
        "action": "navigatedto",
        "occurred_at": datetime(2026, 10, 26, 8, 15, 0, 123000, tzinfo=UTC),
        "quantity": 1.0,
        "course_id": "BS101",
        "received_at": RECEIVED,
        "attributes": {
            "type": "NavigationEvent",
            "action": "NavigatedTo",
            "object": "https://example.edu/terms/201801/courses/7/sections/1/pages/2",
        },
    }
    codec = activity_codec()
    assert codec.decode(codec.encode(record)) == record


def test_no_personal_data_in_the_activity(identities: IdentityMap) -> None:
    record = to_activity(caliper_event(), identities, RECEIVED, "o")
    assert isinstance(record, dict)
    assert set(record["attributes"]) == {"type", "action", "object"}
    flat = repr(record)
    assert "Ann" not in flat and "@" not in flat and "554433" not in flat


def test_actor_by_whole_iri_and_course_from_group_id(identities: IdentityMap) -> None:
    event = caliper_event(
        actor="https://example.edu/users/778899", group={"id": "https://example.edu/c/7"}
    )
    record = to_activity(event, identities, RECEIVED, "o")
    assert isinstance(record, dict)
    assert (record["student_id"], record["course_id"]) == ("S1000002", "https://example.edu/c/7")
    no_group = to_activity(caliper_event(group=None), identities, RECEIVED, "o")
    assert isinstance(no_group, dict) and no_group["course_id"] is None


def test_an_unmapped_actor_is_rejected_not_guessed(identities: IdentityMap) -> None:
    event = caliper_event(actor={"id": "https://example.edu/users/999"})
    rejected = to_activity(event, identities, RECEIVED, "caliper:lms:urn:uuid:x")
    assert isinstance(rejected, Rejected)
    assert (rejected.origin, rejected.reason) == ("caliper:lms:urn:uuid:x", "unmapped_user")
    assert b"https://example.edu/users/999" in rejected.raw
    assert identities.unmapped == {"https://example.edu/users/999"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "GradeEvent", "action": "Graded"},
        {"type": "NavigationEvent", "action": "Viewed"},
        {"type": "MediaEvent", "action": "Started"},
        {"type": "MediaEvent", "action": "Ended"},  # no target.currentTime
        {"type": "MediaEvent", "action": "Ended", "target": {"currentTime": "PT"}},
        {"type": "MediaEvent", "action": "Paused", "target": {"currentTime": 90}},
    ],
)
def test_other_events_are_ignored(identities: IdentityMap, overrides: dict[str, Any]) -> None:
    event = caliper_event(**overrides)
    assert to_activity(event, identities, RECEIVED, "o") == Ignored("ignored_event")


@pytest.mark.parametrize(
    ("position", "minutes"),
    [("PT30M", 30.0), ("PT1H2M30S", 62.5), ("PT90S", 1.5), ("P1DT1M", 1441.0)],
)
def test_media_minutes_from_the_playhead(
    identities: IdentityMap, position: str, minutes: float
) -> None:
    event = caliper_event(type="MediaEvent", action="Ended", target={"currentTime": position})
    record = to_activity(event, identities, RECEIVED, "o")
    assert isinstance(record, dict)
    assert (record["source"], record["action"]) == ("lecture_capture", "watched")
    assert record["quantity"] == pytest.approx(minutes)


def test_tokens_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# sensors\nlms: abc:def\n\ntool:xyz\n", "utf-8")
    assert load_tokens(tokens) == {"lms": "abc:def", "tool": "xyz"}
    for text in ("lms:\n", "lms:a\nlms:b\n", "# nothing\n"):
        tokens.write_text(text, "utf-8")
        with pytest.raises(TokenError):
            load_tokens(tokens)
