"""The institution's configuration: who gets an indicator, over which window, and when staff
are prompted. Pure, read once at start; the scoring rules are ``leap.scoring``'s.

Out-of-scope cohorts and exempt statuses are still *processed* (their daily totals are
kept, so switching a cohort on later has history); they just get no indicator, no alert
and no place in the API.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from leap.packaged_files import read_config_text
from leap.reference import Student
from leap.scoring import Policy

__all__ = ["DEFAULT_INSTITUTION_NAME", "Holiday", "Institution", "load_institution"]

DEFAULT_INSTITUTION_NAME = "pilot-2026.toml"
_COHORT = re.compile(r"(?P<course>[^:\s]+):(?P<first>\d+)(?:-(?P<last>\d+))?")


@dataclass(frozen=True)
class Holiday:
    name: str
    start: date
    end: date  # inclusive


@dataclass(frozen=True)
class Institution:
    #: cohort keys (``Student.cohort``) that get indicators; None: every cohort
    cohorts_in_scope: frozenset[str] | None = None
    no_indicator_statuses: frozenset[str] = frozenset()
    #: cohort key -> window days, where it differs from the policy's by-mode window
    windows: Mapping[str, int] = field(default_factory=dict)
    no_engagement_days: int = 7
    holidays: tuple[Holiday, ...] = ()

    def in_scope(self, student: Student) -> bool:
        """Gets an indicator: an in-scope cohort and a status that is not exempt."""
        if student.status in self.no_indicator_statuses:
            return False
        return self.cohorts_in_scope is None or student.cohort in self.cohorts_in_scope

    def window_days(self, student: Student, policy: Policy) -> int:
        return self.windows.get(student.cohort) or policy.window_days(student.mode)

    def longest_window_days(self, policy: Policy) -> int:
        return max([policy.longest_window_days, *self.windows.values()])

    def holiday_on(self, day: date) -> Holiday | None:
        return next((h for h in self.holidays if h.start <= day <= h.end), None)


def load_institution(path: Path | None = None) -> Institution:
    """Load ``path``, or the configuration shipped with LEAP; errors name the file."""
    text, where = read_config_text(
        path, "leap.institutions", DEFAULT_INSTITUTION_NAME, "institution"
    )
    try:
        return institution_from_mapping(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"invalid institution file {where}: {exc}") from exc


def institution_from_mapping(raw: Mapping[str, Any]) -> Institution:
    scope = raw.get("scope", {})
    cohorts = scope.get("cohorts")
    holidays = tuple(
        Holiday(str(h["name"]), _date(h["start"]), _date(h["end"])) for h in raw.get("holidays", [])
    )
    for h in holidays:
        if h.end < h.start:
            raise ValueError(f"holiday {h.name!r} ends before it starts")
    alert_days = int(raw.get("alerts", {}).get("no_engagement_days", 7))
    if alert_days < 1:
        raise ValueError("alerts.no_engagement_days must be at least 1")
    windows = {c: int(v) for k, v in raw.get("windows", {}).items() for c in _cohorts([k])}
    if any(days < 1 for days in windows.values()):
        raise ValueError("window days must be at least 1")
    return Institution(
        cohorts_in_scope=None if cohorts is None else frozenset(_cohorts(cohorts)),
        no_indicator_statuses=frozenset(scope.get("no_indicator_statuses", [])),
        windows=windows,
        no_engagement_days=alert_days,
        holidays=holidays,
    )


def _cohorts(specs: Iterable[str]) -> Iterable[str]:
    for spec in specs:
        match = _COHORT.fullmatch(spec)
        if not match:
            raise ValueError(f"cohort {spec!r} is not COURSE:YEAR or COURSE:FIRST-LAST")
        first = int(match["first"])
        last = int(match["last"] or first)
        if last < first:
            raise ValueError(f"cohort {spec!r}: years run backwards")
        for year in range(first, last + 1):
            yield f"{match['course']}|{year}"


def _date(value: object) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
