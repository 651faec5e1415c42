"""IMS Caliper 1.1/1.2 envelopes, validated and mapped to ActivityEvents (no I/O here).

A whole envelope is validated before anything of it is used, so a sensor gets every
problem at once and a half-good envelope publishes nothing. Each valid event then either
becomes an ActivityEvent, is *rejected* (``unmapped_user``: its actor is not in the
identity map, never guessed; or a codec reason) for the dead-letter topic, or is
*ignored* (``ignored_event``): valid Caliper that is not student engagement LEAP counts.

=======================  ==========================  ====================================
Caliper type             actions                     ActivityEvent source / action
=======================  ==========================  ====================================
NavigationEvent          NavigatedTo                 moodle / navigatedto
ViewEvent                Viewed                      moodle / viewed
ForumEvent               Subscribed                  moodle / subscribed
MessageEvent             Posted                      moodle / posted
AssessmentEvent          Started, Submitted          moodle / started, submitted
AssessmentItemEvent      Started, Completed          moodle / started, completed
ToolUseEvent             Used                        moodle / used
AssignableEvent          Submitted                   submission / submitted
MediaEvent               Paused, Ended               lecture_capture / watched, quantity =
                                                     minutes of ``target.currentTime``
SessionEvent             LoggedIn                    computer_login / logged_in
anything else            (e.g. GradeEvent: staff)    ignored
=======================  ==========================  ====================================

A MediaEvent without a usable ``target.currentTime`` (an ISO-8601 duration) is ignored:
the playhead position is the only viewing time Caliper reliably sends.

``event_id`` is ``caliper:{event uuid}``, so a re-sent event is deduplicated downstream.
The student is looked up by the actor's whole IRI, then by its last path segment
(``https://example.edu/users/554433`` -> ``554433``). ``course_id`` is the event's
``group.courseNumber`` or ``group.id``. Attributes keep only the Caliper type, action and
object id: never names or e-mail addresses.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from connectors.identity import IdentityMap
from connectors.publisher import Rejected
from schemas.codec import ACTIVITY_EVENT, InvalidRecord

__all__ = [
    "DATA_VERSIONS",
    "MAX_EVENTS",
    "ROUTES",
    "CaliperError",
    "Ignored",
    "parse_envelope",
    "to_activity",
]

DATA_VERSIONS = frozenset(
    {
        "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "http://purl.imsglobal.org/ctx/caliper/v1p2",
    }
)
#: Events one envelope may carry: bounds the work (and the wait) of one request.
MAX_EVENTS = 1000

_MOODLE = {
    "NavigationEvent": ("NavigatedTo",),
    "ViewEvent": ("Viewed",),
    "ForumEvent": ("Subscribed",),
    "MessageEvent": ("Posted",),
    "AssessmentEvent": ("Started", "Submitted"),
    "AssessmentItemEvent": ("Started", "Completed"),
    "ToolUseEvent": ("Used",),
}
#: (Caliper type, action) -> (ActivityEvent source, action).
ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    **{(t, a): ("moodle", a.lower()) for t, actions in _MOODLE.items() for a in actions},
    ("AssignableEvent", "Submitted"): ("submission", "submitted"),
    ("MediaEvent", "Paused"): ("lecture_capture", "watched"),
    ("MediaEvent", "Ended"): ("lecture_capture", "watched"),
    ("SessionEvent", "LoggedIn"): ("computer_login", "logged_in"),
}

_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


class CaliperError(ValueError):
    """The envelope is not valid Caliper; ``reasons`` name each bad field, never its value."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Ignored:
    """A valid event LEAP does not count; ``reason`` is for the response's counts."""

    reason: str


def parse_envelope(body: object) -> list[Mapping[str, Any]]:
    """The envelope's events if the envelope and every event are valid; else CaliperError."""
    if not isinstance(body, Mapping):
        raise CaliperError(["envelope: must be a JSON object"])
    reasons: list[str] = []
    if not _is_iri(body.get("sensor")):
        reasons.append("sensor: must be an IRI string")
    if _instant(body.get("sendTime")) is None:
        reasons.append("sendTime: must be an ISO-8601 time with a UTC offset or Z")
    if body.get("dataVersion") not in DATA_VERSIONS:
        reasons.append(f"dataVersion: must be one of {', '.join(sorted(DATA_VERSIONS))}")
    data = body.get("data")
    if not isinstance(data, list) or not data:
        reasons.append("data: must be a non-empty array of events")
    elif len(data) > MAX_EVENTS:
        reasons.append(f"data: at most {MAX_EVENTS} events per envelope")
    else:
        for index, event in enumerate(data):
            reasons.extend(f"data[{index}].{r}" for r in _event_problems(event))
    if reasons:
        raise CaliperError(reasons)
    assert isinstance(data, list)
    return data


def _event_problems(event: object) -> list[str]:
    if not isinstance(event, Mapping):
        return ["event: must be a JSON object"]
    problems = []
    if _event_uuid(event.get("id")) is None:
        problems.append("id: must be a urn:uuid: IRI")
    for name in ("type", "action"):
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name}: must be a non-empty string")
    for name in ("actor", "object"):
        if _entity_id(event.get(name)) is None:
            problems.append(f"{name}: must be an IRI or an object with an IRI id")
    if _instant(event.get("eventTime")) is None:
        problems.append("eventTime: must be an ISO-8601 time with a UTC offset or Z")
    return problems


def to_activity(
    event: Mapping[str, Any], identities: IdentityMap, received_at: datetime, origin: str
) -> dict[str, Any] | Rejected | Ignored:
    """The ActivityEvent of one event that :func:`parse_envelope` accepted."""
    kind, action = event["type"], event["action"]
    route = ROUTES.get((kind, action))
    if route is None:
        return Ignored("ignored_event")
    quantity = 1.0
    if kind == "MediaEvent":
        minutes = _media_minutes(event)
        if minutes is None:
            return Ignored("ignored_event")
        quantity = minutes
    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    actor = _entity_id(event["actor"])
    assert actor is not None
    student = _student(actor, identities)
    if student is None:
        return Rejected(origin, raw, "unmapped_user", "actor is not in the identity map")
    occurred_at = _instant(event["eventTime"])
    assert occurred_at is not None
    record = {
        "event_id": f"caliper:{_event_uuid(event['id'])}",
        "student_id": student,
        "source": route[0],
        "action": route[1],
        "occurred_at": _millis(occurred_at),
        "quantity": quantity,
        "course_id": _course(event.get("group")),
        "received_at": _millis(received_at),
        "attributes": {"type": kind, "action": action, "object": _entity_id(event["object"])},
    }
    try:
        ACTIVITY_EVENT.validate(record)
    except InvalidRecord as exc:
        return Rejected(origin, raw, exc.reason, exc.message)
    return record


def _student(actor: str, identities: IdentityMap) -> str | None:
    segment = urlsplit(actor).path.rstrip("/").rsplit("/", 1)[-1]
    for key in (actor, segment):
        student = identities.students.get(key.strip().casefold()) if key else None
        if student is not None:
            return student
    return identities.resolve(actor)  # None, and remembered as unmapped


def _course(group: object) -> str | None:
    if not isinstance(group, Mapping):
        return None
    for name in ("courseNumber", "id"):
        value = group.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _media_minutes(event: Mapping[str, Any]) -> float | None:
    target = event.get("target")
    position = target.get("currentTime") if isinstance(target, Mapping) else None
    if not isinstance(position, str):
        return None
    match = _DURATION.fullmatch(position)
    if match is None or position in ("P", "PT") or position.endswith("T"):
        return None
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 1440 + parts["h"] * 60 + parts["m"] + parts["s"] / 60


def _entity_id(entity: object) -> str | None:
    value = entity.get("id") if isinstance(entity, Mapping) else entity
    return value if isinstance(value, str) and _is_iri(value) else None


def _is_iri(value: object) -> bool:
    return isinstance(value, str) and _IRI.fullmatch(value) is not None


def _event_uuid(value: object) -> str | None:
    if not isinstance(value, str) or not value.lower().startswith("urn:uuid:"):
        return None
    try:
        return str(uuid.UUID(value[len("urn:uuid:") :]))
    except ValueError:
        return None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.utcoffset() is not None else None
    except (ValueError, OverflowError):
        return None


def _millis(instant: datetime) -> datetime:
    """The schema keeps milliseconds: truncating here keeps what Kafka carries exact."""
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)
