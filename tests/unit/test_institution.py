"""Who gets an indicator (``leap.institution``) and the roster that applies it (``leap.roster``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leap.institution import Institution, institution_from_mapping, load_institution
from leap.policy import load_policy
from leap.reference import Student, partition_for
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.roster import Roster

POLICY = load_policy()


def student(sid: str, course: str = "BA-ENGLIT", year: int = 1, **kw: str) -> Student:
    return Student(sid, course, year, kw.pop("mode", "full-time"), "LiFTS", "T1", **kw)


def test_the_shipped_pilot_scope_is_the_four_seed_courses() -> None:
    pilot = load_institution()
    assert pilot.in_scope(student("S1000001", "EBS-BSC-BM", 1))
    assert not pilot.in_scope(student("S1000002", "EBS-BSC-BM", 2))
    for course in ("BA-ENGLIT", "BSC-MARBIO", "BSC-BIOSCI"):
        assert all(pilot.in_scope(student("S1000003", course, y)) for y in (1, 2, 3))
        assert not pilot.in_scope(student("S1000003", course, 4))
    assert not pilot.in_scope(student("S1000004", "BSC-CS", 1))
    assert pilot.no_engagement_days == 7


@pytest.mark.parametrize("status", ["research_postgraduate", "placement", "interrupted"])
def test_exempt_statuses_get_no_indicator_even_in_scope(status: str) -> None:
    assert not load_institution().in_scope(student("S1000001", status=status))


def test_cohort_windows_override_the_policy_by_mode() -> None:
    inst = institution_from_mapping({"windows": {"BA-ENGLIT:2-3": 14}})
    assert inst.window_days(student("S1000001", year=1), POLICY) == 7
    assert inst.window_days(student("S1000001", year=1, mode="part-time"), POLICY) == 21
    assert inst.window_days(student("S1000001", year=3), POLICY) == 14
    assert institution_from_mapping({"windows": {"X:1": 30}}).longest_window_days(POLICY) == 30


def test_holidays_are_inclusive_periods() -> None:
    pilot = load_institution()
    assert pilot.holiday_on(date(2026, 12, 11)) is None
    holiday = pilot.holiday_on(date(2026, 12, 12))
    assert holiday is not None and holiday.name == "Christmas vacation"
    assert pilot.holiday_on(date(2027, 1, 10)) == holiday
    assert pilot.holiday_on(date(2027, 1, 11)) is None


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ({"scope": {"cohorts": ["BA-ENGLIT"]}}, "COURSE:YEAR"),
        ({"scope": {"cohorts": ["BA-ENGLIT:3-1"]}}, "backwards"),
        ({"alerts": {"no_engagement_days": 0}}, "at least 1"),
        ({"windows": {"BA-ENGLIT:1": 0}}, "at least 1"),
        ({"holidays": [{"name": "x", "start": "2027-01-02", "end": "2027-01-01"}]}, "before"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(raw: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        institution_from_mapping(raw)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "inst.toml"
    bad.write_text("[scope]\ncohorts = ['nope']\n")
    with pytest.raises(ValueError, match=str(bad)):
        load_institution(bad)


def test_the_roster_holds_students_in_scope_indexed_by_partition() -> None:
    pilot = load_institution()
    inside, outside = student("S1000001"), student("S1000002", "BSC-CS")
    roster = Roster(pilot, POLICY, 4, [inside, outside])
    assert set(roster) == {"S1000001"}
    assert roster.on_partition(partition_for("S1000001", 4)) == [inside]
    assert roster.cohorts() == ["BA-ENGLIT|1"]
    roster.put(student("S1000001", status="interrupted"))  # leaves scope
    assert len(roster) == 0 and roster.cohorts() == []
    assert all(roster.on_partition(p) == [] for p in range(4))


def test_replay_scores_only_students_in_scope() -> None:
    students = {s.student_id: s for s in [student("S1000001"), student("S1000002", "BSC-CS")]}
    book = DailyTotalsBook(ZoneInfo("Europe/London"))
    everyone = indicators_as_of(book, students, POLICY, date(2026, 10, 20))
    scoped = indicators_as_of(book, students, POLICY, date(2026, 10, 20), load_institution())
    assert [r["student_id"] for r in everyone] == ["S1000001", "S1000002"]
    assert [r["student_id"] for r in scoped] == ["S1000001"]
    assert Institution().in_scope(students["S1000002"])
