"""A student's contact preference: may staff contact them as a result of LEAP?

``GET`` is for anyone who may read the student's record (staff reads audited). ``PUT``
(``{"contact_allowed": false}``) is for the student, or an admin recording a request that
arrived another way; it publishes ``leap.contact.contact_record`` to the compacted topic
and answers once Kafka has acknowledged it. The API's own follower of that topic (like
every worker's) then applies it, so a GET reflects a PUT within about a second.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.access import Role, can_set_contact
from api.auth import authorize
from api.params import student_id_param
from api.preference_publisher import PreferenceNotPublished, PreferencePublisher
from api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_type
from leap.contact import RequestedBy, contact_record

__all__ = ["MAX_BODY_BYTES", "contact_preference", "parse_preference"]

#: A preference is one boolean; anything much larger is not one.
MAX_BODY_BYTES = 1024

log = logging.getLogger(__name__)


def _invalid_body(status: int, detail: str) -> ProblemError:
    return ProblemError(
        status, "Invalid preference", detail, type_=problem_type("invalid-preference")
    )


def parse_preference(body: bytes) -> bool:
    """``contact_allowed`` of a ``{"contact_allowed": true|false}`` body: 400 if it is not
    JSON, 422 if it is JSON of another shape (extra fields too, so typos are not ignored)."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _invalid_body(400, "The body is not JSON.") from None
    if (
        not isinstance(document, dict)
        or set(document) != {"contact_allowed"}
        or not isinstance(document["contact_allowed"], bool)
    ):
        raise _invalid_body(422, 'The body must be {"contact_allowed": true} or false.')
    return document["contact_allowed"]


async def _body(request: Request) -> bytes:
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:
            raise ProblemError(
                413,
                "Body too large",
                f"A preference body is at most {MAX_BODY_BYTES} bytes.",
                type_=problem_type("body-too-large"),
            )
    return bytes(received)


async def contact_preference(request: Request) -> JSONResponse:
    """GET and PUT /v1/students/{student_id}/contact-preference."""
    if request.method == "PUT":
        return await _put(request)
    return await _get(request)


async def _get(request: Request) -> JSONResponse:
    student_id = student_id_param(request)
    await authorize(request, student_id)
    allowed = request.app.state.preferences.allows(student_id)
    body = {"student_id": student_id, "contact_allowed": allowed}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _put(request: Request) -> JSONResponse:
    student_id = student_id_param(request)
    contact_allowed = parse_preference(await _body(request))
    principal = await authorize(request, student_id, may=can_set_contact)
    requested_by: RequestedBy = "student" if principal.role is Role.STUDENT else "admin"
    record = contact_record(student_id, contact_allowed, requested_by, datetime.now(UTC))
    publisher: PreferencePublisher = request.app.state.publisher
    try:
        await publisher.publish(student_id, record)
    except PreferenceNotPublished as exc:
        log.warning("Contact preference of %s not published: %s", student_id, exc)
        raise ProblemError(
            503,
            "Preference not recorded",
            "Kafka did not acknowledge the preference, so it may not be recorded; retry "
            "shortly (repeating it is harmless).",
            type_=problem_type("preference-not-recorded"),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    return JSONResponse(record, headers={"Cache-Control": "no-store"})
