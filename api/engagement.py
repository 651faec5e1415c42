"""A student's engagement record: read from Redis in one round trip, shaped for widgets.

The worker owns the layout (see ``leap.state_keys``; read by ``api.state_reads``). A corrupt
day is treated as an absent one (logged), because one bad field must not hide the rest of
the record; a corrupt indicator hash cannot be shown at all without misleading.

Old data is never passed off as current: every record says whether it is ``stale``, i.e.
older than the last day that should have closed by now (the worker is behind, or Redis is
being caught up after an outage), so a widget can say "as of <date>" rather than "today".

Parsing the stored values was the largest part of a read's own CPU (bench/api.py), and a
widget polls a record that changes a few times a day: so parsed values are remembered by
their exact stored bytes (:data:`DAY_CACHE_SIZE`, :data:`INDICATOR_CACHE_SIZE`). A changed
value is other bytes, so it is parsed afresh; a corrupt one is never remembered (it is
refused, and logged, on every read).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authorize, unknown_student
from api.closable import ClosableDay
from api.params import student_id_param
from api.problems import ProblemError, problem_type
from api.state_reads import Hash, StateReads
from leap.institution import Holiday
from streams.clock import last_closable_day

__all__ = [
    "DAY_CACHE_SIZE",
    "INDICATOR_CACHE_SIZE",
    "LEVELS",
    "MAX_WINDOW_DAYS",
    "CorruptIndicatorError",
    "engagement",
    "holiday_json",
    "newest_closable",
    "parse_indicator",
    "shape_record",
]

LEVELS = ("high", "good", "partial", "low", "very_low")
# Bounds the days list a (corrupt) window_days could make us build; a year is plenty.
MAX_WINDOW_DAYS = 366
#: Parsed day values remembered, ~0.6 KB each with their key (~10 MB): the windows (9
#: days) of ~1,800 students.
DAY_CACHE_SIZE = 16_384
#: Parsed indicator hashes remembered, ~2.4 KB each with their key (~10 MB).
INDICATOR_CACHE_SIZE = 4_096

log = logging.getLogger(__name__)

JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store"}

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


#: JSON numbers as orjson decodes them (exact types: a bool is not a number here). Its JSON
#: is strict, with no NaN or infinities, so every float it returns is finite.
_NUMBERS = (int, float)
_DAY_SHAPE = "expected {'engagement': number, 'sources': {source: number}}"


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


_INDICATOR_KEYS = [(field, field.encode(), parse) for field, parse in _INDICATOR_FIELDS.items()]


def parse_indicator(raw: Hash) -> dict[str, Any]:
    """The indicator hash's fields, typed; CorruptIndicatorError if it breaks the contract."""
    parsed: dict[str, Any] = {}
    for field, key, parse in _INDICATOR_KEYS:
        value = raw.get(key)
        if value is None:
            raise CorruptIndicatorError(f"missing field {field!r}")
        try:
            parsed[field] = parse(value.decode())
        except ValueError as exc:  # UnicodeDecodeError is one too
            raise CorruptIndicatorError(f"field {field!r}: {exc}") from exc
    return parsed


@lru_cache(maxsize=INDICATOR_CACHE_SIZE)
def _remembered_indicator(items: tuple[tuple[bytes, bytes], ...]) -> dict[str, Any]:
    """:func:`parse_indicator` of the hash with these items; shared, so never mutated."""
    return parse_indicator(dict(items))


@lru_cache(maxsize=DAY_CACHE_SIZE)
def _day_value(raw: bytes) -> tuple[float, dict[str, int | float]]:
    """A stored day's engagement and sources; the sources are shared, so never mutated."""
    doc = orjson.loads(raw)
    try:
        engagement, sources = doc["engagement"], doc["sources"]
    except (TypeError, KeyError):  # not an object, or a field missing
        raise ValueError(_DAY_SHAPE) from None
    if (
        type(engagement) not in _NUMBERS
        or type(sources) is not dict
        or not all(type(total) in _NUMBERS for total in sources.values())
    ):
        raise ValueError(_DAY_SHAPE)
    return float(engagement), sources


def _day(student_id: str, day: str, raw: bytes | None) -> dict[str, Any] | None:
    """The entry for ``day`` (YYYY-MM-DD) stored as ``raw``, or None when absent or
    unreadable (which is logged)."""
    if raw is None:
        return None
    try:
        engagement, sources = _day_value(raw)
    except (ValueError, OverflowError, RecursionError) as exc:
        log.warning("Skipping corrupt day %s of student %s: %s", day, student_id, exc)
        return None
    return {"date": day, "engagement": engagement, "sources": sources}


def newest_closable(now: datetime, zone: ZoneInfo, grace: timedelta) -> date:
    """The last local day that should have closed by ``now``: the worker's own rule (its
    end + ``grace`` has passed)."""
    return last_closable_day(int(now.timestamp() * 1000), zone, grace)


@lru_cache(maxsize=64)
def _window_dates(as_of: date, window_days: int) -> tuple[tuple[str, bytes], ...]:
    """The window's days as YYYY-MM-DD, oldest first, then the day after it (today so far),
    each also as the days hash's field."""
    last = as_of.toordinal()
    days = [date.fromordinal(n).isoformat() for n in range(last - window_days + 1, last + 2)]
    return tuple((day, day.encode()) for day in days)


def shape_record(student_id: str, indicator: Hash, days: Hash, closable: date) -> dict[str, Any]:
    """The response body: the indicator plus every day of its window, oldest first; stale
    if older than ``closable``, the last day that should have closed by now."""
    fields = _remembered_indicator(tuple(indicator.items()))
    as_of: date = fields["as_of"]
    dates = _window_dates(as_of, fields["window_days"])
    entries = [_day(student_id, day, days.get(key)) for day, key in dates]
    today_so_far = entries.pop()
    return {
        "student_id": student_id,
        **fields,
        "as_of": dates[-2][0],
        "days": [
            entry or {"date": day, "engagement": 0.0, "sources": {}}
            for (day, _), entry in zip(dates, entries, strict=False)  # all but today
        ],
        "today_so_far": today_so_far,
        "stale": as_of < closable,
    }


def holiday_json(holiday: Holiday | None) -> dict[str, str] | None:
    if holiday is None:
        return None
    return {
        "name": holiday.name,
        "start": holiday.start.isoformat(),
        "end": holiday.end.isoformat(),
    }


async def engagement(request: Request) -> Response:
    """GET /v1/students/{student_id}/engagement."""
    student_id = student_id_param(request)
    await authorize(request, student_id)
    state = request.app.state
    reads: StateReads = state.state_reads
    indicator, days = await reads.read(student_id)
    if not indicator:
        raise unknown_student(student_id)
    closable_day: ClosableDay = state.closable_day
    closable = closable_day.now()
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
    body["contact_allowed"] = state.preferences.allows(student_id)
    holiday = state.institution.holiday_on(date.fromisoformat(body["as_of"]))
    body["holiday"] = holiday_json(holiday)
    # orjson: a fifth of the cost of JSONResponse's json.dumps; shape_record leaves only
    # finite numbers and strings, which both write as the same JSON values.
    return Response(orjson.dumps(body), media_type=JSON, headers=NO_STORE)
