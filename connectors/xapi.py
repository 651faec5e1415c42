"""xAPI 1.0.3 statements: the required parts validated, then mapped to an ActivityEvent.

Pure functions, so the endpoint (``connectors.xapi_app``) only does HTTP. A statement that
breaks the spec is a :class:`StatementError` (the LRS answers 400 and stores nothing). A
valid statement is always accepted, as an LRS must, and becomes one of: an event; a
:class:`Rejected` (``unmapped_user``: no identity-map row, parked on the dead-letter topic,
never guessed); or an :class:`Ignored` (a verb that is not engagement, counted only).

Verbs (Jisc's xAPI recipes and Moodle's logstore_xapi plugin):

=====================================================  ================  ==================
verb id                                                source            action
=====================================================  ================  ==================
http://adlnet.gov/expapi/verbs/attended                attendance        attended
http://id.tincanapi.com/verb/viewed                    moodle            viewed
http://adlnet.gov/expapi/verbs/{experienced,launched,  moodle            the verb's last
interacted,answered,attempted,completed,commented}                       path segment
http://activitystrea.ms/schema/1.0/submit,             submission        submitted
http://adlnet.gov/expapi/verbs/submitted,
https://w3id.org/xapi/dod-isd/verbs/submitted
https://brindlewaye.com/xAPITerms/verbs/loggedin/      computer_login    logged_in
https://w3id.org/xapi/video/verbs/{played,watched}     lecture_capture   watched, quantity =
                                                                         result.duration in
                                                                         minutes
=====================================================  ================  ==================

A video statement without ``result.duration`` says nothing about minutes: ignored
(``no_duration``). The student is ``actor.account.name`` or the ``mbox`` address; the
``mbox_sha1sum`` and ``openid`` forms cannot be mapped. The course is the first
``context.contextActivities`` parent (else grouping) id. Attributes carry the statement,
verb and activity ids and the feeding system, never names or e-mail addresses.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from connectors.identity import IdentityMap
from connectors.publisher import Rejected
from schemas.codec import ACTIVITY_EVENT, InvalidRecord

__all__ = [
    "VERBS",
    "Ignored",
    "StatementError",
    "duration_minutes",
    "map_statement",
    "validate_statement",
]

_ADL = "http://adlnet.gov/expapi/verbs/"
_VIDEO = "https://w3id.org/xapi/video/verbs/"
_VLE_VERBS = ("experienced", "launched", "interacted", "answered", "attempted", "completed")

#: verb id -> (source, action); the video verbs also take their quantity from the duration.
VERBS: dict[str, tuple[str, str]] = {
    f"{_ADL}attended": ("attendance", "attended"),
    "http://id.tincanapi.com/verb/viewed": ("moodle", "viewed"),
    **{f"{_ADL}{verb}": ("moodle", verb) for verb in (*_VLE_VERBS, "commented")},
    "http://activitystrea.ms/schema/1.0/submit": ("submission", "submitted"),
    f"{_ADL}submitted": ("submission", "submitted"),
    "https://w3id.org/xapi/dod-isd/verbs/submitted": ("submission", "submitted"),
    "https://brindlewaye.com/xAPITerms/verbs/loggedin/": ("computer_login", "logged_in"),
    f"{_VIDEO}played": ("lecture_capture", "watched"),
    f"{_VIDEO}watched": ("lecture_capture", "watched"),
}
_TIMED_SOURCES = frozenset({"lecture_capture"})

_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<Y>\d+(?:\.\d+)?)Y)?(?:(?P<Mo>\d+(?:\.\d+)?)M)?(?:(?P<W>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<D>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<H>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<M>\d+(?:\.\d+)?)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?$"
)
# Minutes per unit; years and months are calendar-dependent, so approximated.
_MINUTES = {"Y": 525_600, "Mo": 43_200, "W": 10_080, "D": 1_440, "H": 60, "M": 1, "S": 1 / 60}
_OBJECT_TYPES = frozenset({"Activity", "Agent", "Group", "StatementRef", "SubStatement"})


class StatementError(ValueError):
    """The statement breaks xAPI 1.0.3: the whole request is refused with 400."""


@dataclass(frozen=True)
class Ignored:
    """A valid statement that is not engagement LEAP counts; ``reason`` is counted."""

    reason: str


def validate_statement(obj: object, stored: datetime) -> dict[str, Any]:
    """Check the required parts; returns a copy with ``id`` and ``timestamp`` filled in.

    A missing id gets a fresh UUID and a missing timestamp the stored time, as the LRS
    is told to do, so every accepted statement has both.
    """
    if not isinstance(obj, Mapping):
        raise StatementError("a statement must be a JSON object")
    statement = dict(obj)
    statement["id"] = _uuid(statement.get("id", str(uuid4())), "id")
    _check_actor(statement.get("actor"))
    verb = statement.get("verb")
    if not isinstance(verb, Mapping) or not _is_iri(verb.get("id")):
        raise StatementError("verb.id must be an absolute IRI")
    _check_object(statement.get("object"))
    if "timestamp" in statement:
        _timestamp(statement["timestamp"])
    else:
        statement["timestamp"] = stored.isoformat()
    result = statement.get("result")
    if isinstance(result, Mapping) and "duration" in result:
        duration_minutes(result["duration"])
    return statement


def map_statement(
    statement: Mapping[str, Any], identities: IdentityMap, system: str, received: datetime
) -> dict[str, Any] | Rejected | Ignored:
    """A validated statement as an ActivityEvent, a dead-letter record, or ignored."""
    verb_id = statement["verb"]["id"]
    if verb_id not in VERBS:
        return Ignored("ignored_verb")
    source, action = VERBS[verb_id]
    quantity = 1.0
    if source in _TIMED_SOURCES:
        duration = (statement.get("result") or {}).get("duration")
        if duration is None:
            return Ignored("no_duration")
        quantity = duration_minutes(duration)
    origin = f"xapi:{system}:{statement['id']}"
    raw = json.dumps(statement, separators=(",", ":")).encode()
    user = _source_user(statement["actor"])
    student = identities.resolve(user) if user else None
    if student is None:
        return Rejected(origin, raw, "unmapped_user", "actor not in the identity map")
    event: dict[str, Any] = {
        "event_id": f"xapi:{statement['id']}",
        "student_id": student,
        "source": source,
        "action": action,
        "occurred_at": _timestamp(statement["timestamp"]),
        "quantity": quantity,
        "course_id": _course(statement.get("context")),
        "received_at": received,
        "attributes": _attributes(statement, system),
    }
    try:
        ACTIVITY_EVENT.validate(event)
    except InvalidRecord as exc:
        return Rejected(origin, raw, exc.reason, exc.message)
    return event


def duration_minutes(value: object) -> float:
    """An ISO 8601 duration (``PT12M30S``) in minutes."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise StatementError("result.duration must be an ISO 8601 duration")
    return sum(float(n) * _MINUTES[unit] for unit, n in match.groupdict().items() if n)


def _uuid(value: object, what: str) -> str:
    """The canonical form, so one statement sent with two spellings dedupes."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return str(UUID(value))
    raise StatementError(f"{what} must be a UUID")


def _is_iri(value: object) -> bool:
    return isinstance(value, str) and bool(_SCHEME.match(value))


def _check_actor(actor: object) -> None:
    if not isinstance(actor, Mapping):
        raise StatementError("actor is missing")
    if actor.get("objectType", "Agent") != "Agent":
        raise StatementError("actor must be an Agent")
    ifis = [name for name in _IFIS if name in actor]
    if len(ifis) != 1:
        raise StatementError(
            f"actor must have exactly one inverse functional identifier, has {len(ifis)}"
        )
    if not _ifi_ok(ifis[0], actor[ifis[0]]):
        raise StatementError(f"actor.{ifis[0]} is malformed")


def _ifi_ok(name: str, value: Any) -> bool:
    if name == "mbox":
        return isinstance(value, str) and value.startswith("mailto:") and "@" in value
    if name == "mbox_sha1sum":
        return isinstance(value, str) and bool(_SHA1.match(value))
    if name == "openid":
        return _is_iri(value)
    return (
        isinstance(value, Mapping)
        and _is_iri(value.get("homePage"))
        and isinstance(value.get("name"), str)
        and bool(value["name"])
    )


def _check_object(obj: object) -> None:
    if not isinstance(obj, Mapping):
        raise StatementError("object is missing")
    kind = obj.get("objectType", "Activity")
    if kind not in _OBJECT_TYPES:
        raise StatementError(f"object.objectType must be one of {', '.join(sorted(_OBJECT_TYPES))}")
    if kind == "Activity" and not _is_iri(obj.get("id")):
        raise StatementError("object.id must be an absolute IRI")
    if kind == "StatementRef":
        _uuid(obj.get("id"), "object.id")


def _timestamp(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise StatementError("timestamp must be ISO 8601 with a UTC offset or Z")
    return parsed


def _source_user(actor: Mapping[str, Any]) -> str | None:
    if "account" in actor:
        return str(actor["account"]["name"])
    if "mbox" in actor:
        return str(actor["mbox"]).removeprefix("mailto:")
    return None


def _course(context: object) -> str | None:
    activities = context.get("contextActivities") if isinstance(context, Mapping) else None
    if not isinstance(activities, Mapping):
        return None
    for kind in ("parent", "grouping"):
        found = activities.get(kind)
        for activity in found if isinstance(found, list) else [found]:
            if isinstance(activity, Mapping) and isinstance(activity.get("id"), str):
                return str(activity["id"])
    return None


def _attributes(statement: Mapping[str, Any], system: str) -> dict[str, str]:
    attributes = {
        "statement_id": statement["id"],
        "verb": statement["verb"]["id"],
        "system": system,
    }
    obj = statement["object"]
    if obj.get("objectType", "Activity") in ("Activity", "StatementRef"):
        attributes["object"] = obj["id"]  # an agent object's id would be personal data
    return attributes
