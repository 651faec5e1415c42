"""The synthetic cohort and term used by the demo and the benchmarks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.publisher import Tick
from connectors.synthetic import COHORTS, SyntheticTerm, make_students
from leap.scoring import day_end, local_date
from schemas.codec import activity_codec
from schemas.ids import is_valid_student_id
from streams.clock import last_closable_day

LONDON = ZoneInfo("Europe/London")
GRACE = timedelta(hours=2)


def term(start: date, days: int = 14, students: int = 30, seed: int = 7) -> SyntheticTerm:
    return SyntheticTerm(make_students(students, seed), start, days, LONDON, GRACE, seed)


#: Two weeks starting on the 25-hour day the clocks go back (2026-10-25).
TERM = term(date(2026, 10, 25))
ITEMS = list(TERM.items())
EVENTS: list[dict[str, Any]] = [item for item in ITEMS if not isinstance(item, Tick)]


# --- make_students ----------------------------------------------------------------------


def test_make_students_is_deterministic_for_a_seed() -> None:
    assert make_students(300, seed=3) == make_students(300, seed=3)


def test_make_students_covers_all_ten_cohorts() -> None:
    students = make_students(200)
    expected = {f"{course}|{year}" for course, years, _, _ in COHORTS for year in years}
    assert len(expected) == 10
    assert {s.cohort for s in students} == expected
    departments = {course: department for course, _, department, _ in COHORTS}
    assert all(s.department == departments[s.course] for s in students)


def test_make_students_gives_about_the_requested_count_with_unique_valid_ids() -> None:
    students = make_students(1000)
    assert abs(len(students) - 1000) <= 10
    ids = [s.student_id for s in students]
    assert len(set(ids)) == len(ids)
    assert all(is_valid_student_id(sid) for sid in ids)


def test_about_one_student_in_ten_is_part_time() -> None:
    students = make_students(3000)
    modes = Counter(s.mode for s in students)
    assert set(modes) == {"full-time", "part-time"}
    assert 0.08 <= modes["part-time"] / len(students) <= 0.12


def test_no_tutor_has_more_than_twenty_students() -> None:
    tutees = Counter(s.tutor_id for s in make_students(1000))
    assert max(tutees.values()) <= 20


# --- SyntheticTerm ----------------------------------------------------------------------


def test_a_term_is_deterministic() -> None:
    assert list(TERM.items()) == ITEMS
    assert list(term(date(2026, 10, 25)).items()) == ITEMS


def test_a_term_has_activity() -> None:
    assert len(EVENTS) > 30 * 14
    assert {e["source"] for e in EVENTS} >= {"attendance", "moodle", "submission"}


def test_every_event_is_a_valid_activity_event() -> None:
    codec = activity_codec()
    for event in EVENTS:
        assert codec.decode(codec.encode(event)) == event


def test_event_ids_are_unique() -> None:
    ids = [e["event_id"] for e in EVENTS]
    assert len(set(ids)) == len(ids)


def test_events_happen_between_seven_and_eleven_pm_local_on_a_day_of_the_term() -> None:
    for event in EVENTS:
        local = event["occurred_at"].astimezone(LONDON)
        assert TERM.start <= local.date() <= TERM.last_day
        assert time(7) <= local.time() < time(23)


def test_each_days_events_come_between_the_tick_before_it_and_the_tick_after_it() -> None:
    day_number = -1
    for item in ITEMS:
        if isinstance(item, Tick):
            day_number += 1
            continue
        assert local_date(item["occurred_at"], LONDON) == TERM.start + timedelta(days=day_number)
    assert day_number == TERM.days  # one opening tick, then one after every day


def test_the_tick_after_each_day_is_its_next_local_midnight_plus_grace() -> None:
    """Includes the 25-hour 2026-10-25, whose tick is 02:00 GMT on the 26th."""
    after_days = [item.watermark_ms for item in ITEMS if isinstance(item, Tick)][1:]
    ends = [day_end(TERM.start + timedelta(days=n), LONDON) for n in range(TERM.days)]
    assert after_days == [int((end.astimezone(UTC) + GRACE).timestamp()) * 1000 for end in ends]
    assert after_days[0] == int(datetime(2026, 10, 26, 2, 0, tzinfo=UTC).timestamp()) * 1000


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(date(2026, 1, 5), id="winter"),
        pytest.param(date(2026, 7, 6), id="summer"),
        pytest.param(date(2026, 10, 26), id="after-the-clocks-go-back"),
        pytest.param(date(2026, 3, 26), id="spans-spring-forward"),
        pytest.param(date(2026, 10, 20), id="spans-fall-back"),
        pytest.param(date(2026, 10, 25), id="opens-as-clocks-go-back"),
    ],
)
def test_each_tick_closes_exactly_the_day_before_it(start: date) -> None:
    """Every tick (the opening one too) is the first instant streams.clock may close its day."""
    synthetic = term(start, days=7, students=3)
    ticks = [item.watermark_ms for item in synthetic.items() if isinstance(item, Tick)]
    closed = [
        (last_closable_day(tick - 1, LONDON, GRACE), last_closable_day(tick, LONDON, GRACE))
        for tick in ticks
    ]
    expected = [(start + timedelta(days=n - 1), start + timedelta(days=n)) for n in range(-1, 7)]
    assert closed == expected
