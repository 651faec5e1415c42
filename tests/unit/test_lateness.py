"""Late events (``leap.lateness``): the rules alone, and a model of the stream using them.

The model closes days in arrival order as the worker does: a day's scores are taken when it
closes, an event for a closed day inside the horizon is counted and rescores the as-of dates
``amended_as_of_dates`` names, and one beyond it is refused. Whatever the arrival order,
duplicates, DST edges and closing moments, every closed day's indicators must then equal
``leap replay`` over the events the stream accepted.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leap.lateness import amended_as_of_dates, days_late, is_too_late
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.scoring import Policy, local_date, score_cohort, student_score
from tests.unit.test_replay import (
    FIRST_DAY,
    LONDON,
    SMALL_COHORTS,
    STUDENTS,
    event_st,
    make_events,
    policy_st,
)

D = date(2026, 10, 25)


def test_an_open_day_is_not_late() -> None:
    assert days_late(D, None) is None
    assert days_late(D, D - timedelta(days=1)) is None
    assert not is_too_late(D, None, 0)


def test_the_horizon_counts_days_since_the_day_closed() -> None:
    assert days_late(D, D) == 0
    assert not is_too_late(D, D, 1)
    assert is_too_late(D, D, 0)  # a zero horizon refuses every late event
    assert not is_too_late(D - timedelta(days=6), D, 7)
    assert is_too_late(D - timedelta(days=7), D, 7)


@pytest.mark.parametrize(
    ("first", "closed", "window", "expected"),
    [
        (D, D, 7, [D]),
        (D - timedelta(days=2), D, 7, [D - timedelta(days=2), D - timedelta(days=1), D]),
        (D - timedelta(days=9), D, 7, [D - timedelta(days=9 - n) for n in range(7)]),
        (D - timedelta(days=1), D, 1, [D - timedelta(days=1)]),
    ],
)
def test_amended_dates_are_the_closed_windows_holding_the_day(
    first: date, closed: date, window: int, expected: list[date]
) -> None:
    assert amended_as_of_dates(first, closed, window) == expected


class StreamModel:
    """The worker's day-closing and late-data rules over one clock, without Kafka."""

    def __init__(self, policy: Policy, horizon: int) -> None:
        self.policy = policy
        self.horizon = horizon
        self.book = DailyTotalsBook(LONDON)
        self.accepted: list[dict[str, Any]] = []
        self.closed: date | None = None
        self.scores: dict[date, dict[str, float]] = {}

    def _score(self, sid: str, as_of: date) -> float:
        window = self.policy.window_days(STUDENTS[sid].mode)
        return student_score(self.book.totals.get(sid, {}).get, as_of, window, self.policy)

    def close_through(self, day: date) -> None:
        start = FIRST_DAY - timedelta(days=1) if self.closed is None else self.closed
        for n in range(1, (day - start).days + 1):
            as_of = start + timedelta(days=n)
            self.scores[as_of] = {sid: self._score(sid, as_of) for sid in STUDENTS}
            self.closed = as_of

    def arrive(self, event: dict[str, Any]) -> None:
        day = local_date(event["occurred_at"], LONDON)
        if is_too_late(day, self.closed, self.horizon) and event["event_id"] not in self.book.seen:
            return
        if not self.book.add(event):
            return
        self.accepted.append(event)
        sid = event["student_id"]
        if days_late(day, self.closed) is None or sid not in STUDENTS:
            return
        assert self.closed is not None
        window = self.policy.window_days(STUDENTS[sid].mode)
        for as_of in amended_as_of_dates(day, self.closed, window):
            self.scores[as_of][sid] = self._score(sid, as_of)


@settings(max_examples=80, deadline=None)
@given(
    specs=st.lists(event_st, max_size=60),
    horizon=st.integers(0, 9),  # past a 7-day window too
    policy=policy_st,
    data=st.data(),
)
def test_closed_days_equal_replay_of_what_the_stream_accepted(
    specs: list[tuple[str, str, float, int]], horizon: int, policy: Policy, data: st.DataObject
) -> None:
    events = make_events(specs)
    resent = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    arrivals = data.draw(st.permutations(events + [dict(e) for e in resent]))
    # Before each arrival the clock may move on by a few days (never back).
    steps = data.draw(st.lists(st.integers(0, 3), min_size=len(arrivals), max_size=len(arrivals)))

    model = StreamModel(policy, horizon)
    clock = FIRST_DAY - timedelta(days=1)
    for event, step in zip(arrivals, steps, strict=True):
        if step:
            clock += timedelta(days=step)
            model.close_through(clock)
        model.arrive(event)

    oracle = DailyTotalsBook(LONDON)
    oracle.add_all(model.accepted)
    for as_of, scores in model.scores.items():
        banded = score_cohort_by_cohort(scores, policy)
        expected = indicators_as_of(oracle, STUDENTS, policy, as_of)
        assert banded == {r["student_id"]: (r["indicator"], r["score"]) for r in expected}, as_of


def score_cohort_by_cohort(
    scores: dict[str, float], policy: Policy
) -> dict[str, tuple[str, float]]:
    cohorts: dict[str, dict[str, float]] = {}
    for sid, score in scores.items():
        cohorts.setdefault(STUDENTS[sid].cohort, {})[sid] = score
    out = {}
    for members in cohorts.values():
        result = score_cohort(members, policy)
        out.update({sid: (result.indicators[sid], score) for sid, score in members.items()})
    return out


def test_an_event_a_week_late_amends_every_window_that_holds_its_day() -> None:
    """The far edge: with a nine-day horizon, day 1's event arrives after day 8 closed."""
    policy = SMALL_COHORTS
    model = StreamModel(policy, horizon=9)
    model.close_through(FIRST_DAY + timedelta(days=8))
    (event,) = make_events([("S1000001", "moodle", 10.0, 12 * 60)])  # noon on FIRST_DAY
    model.arrive(event)
    oracle = DailyTotalsBook(LONDON)
    oracle.add_all([event])
    for as_of in (FIRST_DAY + timedelta(days=n) for n in range(9)):
        expected = {
            r["student_id"]: (r["indicator"], r["score"])
            for r in indicators_as_of(oracle, STUDENTS, policy, as_of)
        }
        assert score_cohort_by_cohort(model.scores[as_of], policy) == expected, as_of
