"""A kept window is one array of doubles (``streams.student_windows``): its per-source
totals, integers in thousandths, must stay exact however large, and its days' engagement
must come back for the right dates, slid however far."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from leap.policy import load_policy
from leap.scoring import SOURCES, Totals, daily_engagement
from streams.student_windows import StudentWindows, read_summary

POLICY = load_policy()
START = date(2026, 10, 5)
#: A day's totals: up to 10**12 thousandths a source (a sum over 21 days stays below 2**53).
day_st = st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 10**12), max_size=4)


@given(days=st.lists(day_st, min_size=8, max_size=40), window=st.sampled_from([7, 21]))
def test_a_slid_window_keeps_exact_totals_and_each_days_engagement(
    days: list[Totals], window: int
) -> None:
    book = {START + timedelta(days=n): totals for n, totals in enumerate(days)}
    windows = StudentWindows(POLICY)
    for n in range(len(days)):
        as_of = START + timedelta(days=n)
        got = windows.close(3, as_of, [("S1", window)], lambda sid: book.get)["S1"]
        inside = [as_of - timedelta(days=back) for back in range(window)]
        assert got == read_summary(book.get, as_of, window, POLICY)
        assert got.units == tuple(sum(book.get(d, {}).get(s, 0) for d in inside) for s in SOURCES)
        assert got.active_days == sum(1 for d in inside if any(book.get(d, {}).values()))
        for day in inside:
            totals = book.get(day)
            want = daily_engagement(totals, POLICY) if totals else 0.0
            assert windows.engagement_on(3, "S1", day) == want
        assert windows.engagement_on(3, "S1", as_of + timedelta(days=1)) is None
        assert windows.engagement_on(3, "S1", as_of - timedelta(days=window)) is None
        assert windows.engagement_on(2, "S1", as_of) is None  # another partition's
