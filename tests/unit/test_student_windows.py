"""Windows slid one day per close (``streams.student_windows``) against a full recompute.

A slid window must give bit for bit the score and breakdown that reading every window day
again gives (``leap.scoring.student_score`` and ``window_breakdown``, what ``leap replay``
calls), whatever arrives late, across the end of British Summer Time, through rebalances,
roster changes and a student's window changing length.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leap.policy import load_policy
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.scoring import (
    SOURCES,
    Policy,
    SourceRule,
    daily_engagement,
    local_date,
    student_score,
    window_breakdown,
)
from streams.student_windows import StudentWindows, WindowSummary, read_summary
from tests.unit.test_replay import EDGES, FIRST_DAY, LONDON, SPAN_MINUTES, STUDENTS, make_events

POLICY = load_policy()
#: Weights no sum of which is exact, so adding a window's days in another order than a
#: full recompute's would show in the last bits.
ODD_WEIGHTS = dataclasses.replace(
    POLICY,
    min_cohort_size=2,
    sources={s: SourceRule(w, 1e6) for s, w in zip(SOURCES, (0.1, 0.7, 0.3, 1.1, 2.3, 0.9))},
)
event_st = st.tuples(
    st.sampled_from([*STUDENTS, "S9999999"]),
    st.sampled_from(SOURCES),
    st.integers(0, 20_000).map(lambda n: n / 1000),
    st.one_of(st.integers(0, SPAN_MINUTES), st.sampled_from(EDGES)),  # midnights across BST
)
WINDOWS = {sid: POLICY.window_days(s.mode) for sid, s in STUDENTS.items()}
ONE_DAY = timedelta(days=1)

#: What may happen before an event arrives: the clock moves on a few days (closing them),
#: the partition is revoked and assigned again, a student leaves or rejoins the roster, or
#: a student's window switches between 7 and 21 days.
happening_st = st.tuples(
    st.integers(0, 3),
    st.booleans(),
    st.none() | st.sampled_from(sorted(STUDENTS)),
    st.none() | st.sampled_from(sorted(STUDENTS)),
)


class Closer:
    """The day closer's use of the windows, on one partition, over a book of totals."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.book = DailyTotalsBook(LONDON)
        self.windows = StudentWindows(policy)
        self.closed = FIRST_DAY - ONE_DAY
        self.roster = dict(WINDOWS)
        self.closes = 0

    def totals_of(self, sid: str):  # type: ignore[no-untyped-def]
        return self.book.totals.get(sid, {}).get

    def close_through(self, day: date) -> None:
        while self.closed < day:
            self.closed += ONE_DAY
            got = self.windows.close(0, self.closed, sorted(self.roster.items()), self.totals_of)
            self.closes += 1
            assert set(got) == set(self.roster)
            for sid, window in self.roster.items():
                self.check(sid, window, got[sid])

    def check(self, sid: str, window: int, got: WindowSummary) -> None:
        totals_on = self.totals_of(sid)
        want = (
            student_score(totals_on, self.closed, window, self.policy),
            window,
            window_breakdown(totals_on, self.closed, window),
        )
        assert (got.score, got.window_days, got.breakdown) == want, (sid, self.closed)
        assert read_summary(totals_on, self.closed, window, self.policy) == got
        for back in range(window):
            day = self.closed - timedelta(days=back)
            totals = totals_on(day)
            engagement = daily_engagement(totals, self.policy) if totals else 0.0
            assert self.windows.engagement_on(0, sid, day) == engagement
        assert self.windows.engagement_on(0, sid, self.closed - timedelta(days=window)) is None

    def arrive(self, event: dict) -> None:  # type: ignore[type-arg]
        self.book.add(event)
        if local_date(event["occurred_at"], LONDON) <= self.closed:  # late: as rescore does
            self.windows.forget(0, [event["student_id"]])


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(event_st, max_size=80),
    policy=st.sampled_from([POLICY, ODD_WEIGHTS]),
    data=st.data(),
)
def test_slid_windows_equal_a_full_recompute_whatever_happens(
    specs: list[tuple[str, str, float, int]], policy: Policy, data: st.DataObject
) -> None:
    events = make_events(specs)
    arrivals = data.draw(st.permutations(events))
    happenings = data.draw(st.lists(happening_st, min_size=len(events), max_size=len(events)))
    closer = Closer(policy)
    for event, (step, rebalance, toggle, switch) in zip(arrivals, happenings, strict=True):
        closer.close_through(closer.closed + timedelta(days=step))
        if rebalance:
            closer.windows.clear()
        # a student leaves the roster, or comes back
        if toggle is not None and closer.roster.pop(toggle, None) is None:
            closer.roster[toggle] = WINDOWS[toggle]
        if switch is not None and switch in closer.roster:
            closer.roster[switch] = 28 - closer.roster[switch]  # 7 <-> 21
        closer.arrive(event)
    closer.close_through(FIRST_DAY + timedelta(days=14))  # past the events' last day

    # ... and the last day's scores are replay's.
    closer.roster = dict(WINDOWS)
    last = closer.windows.close(
        0, closer.closed + ONE_DAY, sorted(WINDOWS.items()), closer.totals_of
    )
    replayed = indicators_as_of(closer.book, STUDENTS, policy, closer.closed + ONE_DAY)
    assert {sid: s.score for sid, s in last.items()} == {
        r["student_id"]: r["score"] for r in replayed
    }


def test_a_close_reads_two_day_records_a_student_once_the_window_is_kept() -> None:
    closer = Closer(POLICY)
    closer.book.add_all(
        make_events([("S1000001", "attendance", 1.0, 60 * 24 * n) for n in range(9)])
    )
    asked: list[date] = []

    def totals_of(sid: str):  # type: ignore[no-untyped-def]
        def totals_on(day: date):  # type: ignore[no-untyped-def]
            asked.append(day)
            return closer.book.totals.get(sid, {}).get(day)

        return totals_on

    windows = StudentWindows(POLICY)
    day = FIRST_DAY + timedelta(days=7)
    windows.close(0, day, [("S1000001", 7)], totals_of)
    assert len(asked) == 7  # the first close reads the window whole
    asked.clear()
    got = windows.close(0, day + ONE_DAY, [("S1000001", 7)], totals_of)
    assert sorted(asked) == [day + ONE_DAY - timedelta(days=7), day + ONE_DAY]
    assert got["S1000001"].breakdown == {"sources": {"attendance": 7.0}, "active_days": 7}


def test_a_window_not_slid_from_the_day_before_is_read_whole() -> None:
    windows = StudentWindows(POLICY)
    asked: list[date] = []

    def totals_of(sid: str):  # type: ignore[no-untyped-def]
        return lambda day: asked.append(day)

    windows.close(0, FIRST_DAY, [("S1000001", 7)], totals_of)
    asked.clear()
    windows.close(0, FIRST_DAY + timedelta(days=2), [("S1000001", 7)], totals_of)  # a day skipped
    assert len(asked) == 7


def test_a_slid_score_adds_the_days_oldest_first_as_a_recompute_does() -> None:
    # 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1 in floats: the order shows in the last bit.
    days = {FIRST_DAY + timedelta(days=n): {"moodle": 1000 * (n + 1)} for n in range(3)}
    windows = StudentWindows(ODD_WEIGHTS)
    windows.close(0, FIRST_DAY - ONE_DAY, [("S1000001", 3)], lambda sid: days.get)
    for n in range(3):
        got = windows.close(
            0, FIRST_DAY + timedelta(days=n), [("S1000001", 3)], lambda sid: days.get
        )
    assert got["S1000001"].score == student_score(
        days.get, FIRST_DAY + timedelta(days=2), 3, ODD_WEIGHTS
    )
    engagement = [daily_engagement(days[day], ODD_WEIGHTS) for day in sorted(days)]
    assert got["S1000001"].score == sum(engagement) / 3 != sum(reversed(engagement)) / 3
