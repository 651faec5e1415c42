"""A student's engagement record: read from Redis in one round trip, shaped for widgets.

The worker owns the layout (see ``leap.state_keys``); this module only reads it. A corrupt
day is treated as an absent one (logged), because one bad field must not hide the rest of
the record; a corrupt indicator hash cannot be shown at all without misleading.

Old data is never passed off as current: every record says whether it is ``stale``, i.e.
older than the last day that should have closed by now (the worker is behind, or Redis is
being caught up after an outage), so a widget can say "as of <date>" rather than "today".
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import authorize, unknown_student
from api.params import student_id_param
from api.problems import ProblemError, problem_type
from leap.institution import Holiday
from leap.state_keys import days_key, indicator_key
from streams.clock import last_closable_day

__all__ = [
    "LEVELS",
    "MAX_WINDOW_DAYS",
    "CorruptIndicatorError",
    "engagement",
    "holiday_json",
    "newest_closable",
    "parse_indicator",
    "read_state",
    "shape_record",
]

LEVELS = ("high", "good", "partial", "low", "very_low")
# Bounds the days list a (corrupt) window_days could make us build; a year is plenty.
MAX_WINDOW_DAYS = 366

log = logging.getLogger(__name__)

Hash = Mapping[bytes, bytes]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CorruptIndicatorError(ValueError):
    """The indicator hash breaks the ``leap.state_keys`` contract."""


def _as_of(text: str) -> date:
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"not YYYY-MM-DD: {text!r}")
    day = date.fromisoformat(text)
    if day.year in (date.min.year, date.max.year):  # the window or tomorrow would overflow
        raise ValueError(f"out of range: {text!r}")
    return day


def _finite(number: float) -> float:
    """NaN and infinities cannot be serialised to JSON, so they count as corrupt."""
    if not math.isfinite(number):
        raise ValueError(f"not finite: {number!r}")
    return number


def _float(text: str) -> float:
    return _finite(float(text))


def _json_number(value: object) -> int | float:
    """A number as the worker wrote it; bools and numeric strings are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number: {value!r}")
    return _finite(value) if isinstance(value, float) else value


def _level(text: str) -> str:
    if text not in LEVELS:
        raise ValueError(f"unknown indicator: {text!r}")
    return text


def _label(text: str) -> str:
    if not text:
        raise ValueError("empty label")
    return text


def _window(text: str) -> int:
    days = int(text)
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days out of range: {days}")
    return days


_INDICATOR_FIELDS: dict[str, Callable[[str], Any]] = {
    "indicator": _level,
    "label": _label,
    "score": _float,
    "reference_score": _float,
    "as_of": _as_of,
    "window_days": _window,
    "policy_version": str,
    "course": str,
    "year": int,
    "updated_at": str,
}


def parse_indicator(raw: Hash) -> dict[str, Any]:
    """The indicator hash's fields, typed; CorruptIndicatorError if it breaks the contract."""
    parsed: dict[str, Any] = {}
    for field, parse in _INDICATOR_FIELDS.items():
        value = raw.get(field.encode())
        if value is None:
            raise CorruptIndicatorError(f"missing field {field!r}")
        try:
            parsed[field] = parse(value.decode())
        except ValueError as exc:  # UnicodeDecodeError is one too
            raise CorruptIndicatorError(f"field {field!r}: {exc}") from exc
    return parsed


def _day_value(raw: bytes) -> tuple[float, dict[str, int | float]]:
    doc = json.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict):
        raise ValueError("expected {'engagement': number, 'sources': {source: total}}")
    sources = {source: _json_number(total) for source, total in doc["sources"].items()}
    return float(_json_number(doc.get("engagement"))), sources


def _day(student_id: str, days: Hash, day: date) -> dict[str, Any] | None:
    """The day's entry, or None when absent or unreadable (which is logged)."""
    raw = days.get(day.isoformat().encode())
    if raw is None:
        return None
    try:
        engagement, sources = _day_value(raw)
    except (ValueError, OverflowError, RecursionError) as exc:
        log.warning("Skipping corrupt day %s of student %s: %s", day, student_id, exc)
        return None
    return {"date": day.isoformat(), "engagement": engagement, "sources": sources}


def newest_closable(now: datetime, zone: ZoneInfo, grace: timedelta) -> date:
    """The last local day that should have closed by ``now``: the worker's own rule (its
    end + ``grace`` has passed)."""
    return last_closable_day(int(now.timestamp() * 1000), zone, grace)


def shape_record(student_id: str, indicator: Hash, days: Hash, closable: date) -> dict[str, Any]:
    """The response body: the indicator plus every day of its window, oldest first; stale
    if older than ``closable``, the last day that should have closed by now."""
    fields = parse_indicator(indicator)
    as_of: date = fields["as_of"]
    window: int = fields["window_days"]
    first = as_of - timedelta(days=window - 1)
    window_days = []
    for offset in range(window):
        day = first + timedelta(days=offset)
        entry = _day(student_id, days, day)
        window_days.append(entry or {"date": day.isoformat(), "engagement": 0.0, "sources": {}})
    return {
        "student_id": student_id,
        **fields,
        "as_of": as_of.isoformat(),
        "days": window_days,
        "today_so_far": _day(student_id, days, as_of + timedelta(days=1)),
        "stale": as_of < closable,
    }


async def read_state(redis: Redis, prefix: str, student_id: str) -> tuple[Hash, Hash]:
    """Both hashes in one MULTI round trip, so the days always match the indicator."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(indicator_key(prefix, student_id))
        pipe.hgetall(days_key(prefix, student_id))
        indicator, days = await pipe.execute()
    return indicator, days


def holiday_json(holiday: Holiday | None) -> dict[str, str] | None:
    if holiday is None:
        return None
    return {
        "name": holiday.name,
        "start": holiday.start.isoformat(),
        "end": holiday.end.isoformat(),
    }


async def engagement(request: Request) -> JSONResponse:
    """GET /v1/students/{student_id}/engagement."""
    student_id = student_id_param(request)
    await authorize(request, student_id)
    prefix: str = request.app.state.settings.redis_prefix
    indicator, days = await read_state(request.app.state.redis, prefix, student_id)
    if not indicator:
        raise unknown_student(student_id)
    settings = request.app.state.settings
    closable = newest_closable(datetime.now(UTC), settings.zone, settings.day_close_grace)
    try:
        body = shape_record(student_id, indicator, days, closable)
    except CorruptIndicatorError as exc:
        log.error("Corrupt indicator for student %s: %s", student_id, exc)
        raise ProblemError(
            500,
            "Indicator unreadable",
            "The stored indicator for this student cannot be read; this has been logged.",
            type_=problem_type("corrupt-indicator"),
        ) from exc
    # Staff pages mark "do not contact"; a holiday's indicators are computed as usual, but
    # say so, since a quiet week then means little.
    body["contact_allowed"] = request.app.state.preferences.allows(student_id)
    holiday = request.app.state.institution.holiday_on(date.fromisoformat(body["as_of"]))
    body["holiday"] = holiday_json(holiday)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
