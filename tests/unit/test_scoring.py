"""The pure scoring rules: daily engagement, windows, cohort reference, bands, DST, policy."""

from __future__ import annotations

import copy
import math
import re
import tomllib
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leap.policy import DEFAULT_POLICY_NAME, load_policy
from leap.scoring import (
    INDICATORS,
    SOURCES,
    band,
    cohort_reference,
    daily_engagement,
    day_end,
    local_date,
    policy_from_mapping,
    score_cohort,
    student_score,
    to_milli,
    window_dates,
    window_score,
)

LONDON = ZoneInfo("Europe/London")
POLICY = load_policy()
AS_OF = date(2026, 10, 31)


def raw_policy() -> dict[str, Any]:
    """A fresh, mutable copy of the built-in policy's parsed TOML."""
    text = resources.files("leap.policies").joinpath(DEFAULT_POLICY_NAME).read_text()
    return copy.deepcopy(tomllib.loads(text))


def rank(indicator: str) -> int:
    """0 for high ... 4 for very_low."""
    return INDICATORS.index(indicator)


totals_st = st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 300_000))


# --- daily engagement -------------------------------------------------------------------


def test_daily_engagement_is_the_weighted_sum_of_totals_in_thousandths() -> None:
    totals = {"attendance": 2_000, "moodle": 10_000, "submission": 1_000}
    assert daily_engagement(totals, POLICY) == 10.0 * 2 + 0.25 * 10 + 6.0 * 1


def test_fractional_totals_count_in_thousandths() -> None:
    # 90.5 minutes of lecture capture at 0.1 per minute.
    assert daily_engagement({"lecture_capture": 90_500}, POLICY) == pytest.approx(9.05)


def test_no_activity_is_zero_engagement() -> None:
    assert daily_engagement({}, POLICY) == 0.0


def test_ten_thousand_moodle_actions_score_the_same_as_the_cap_of_forty() -> None:
    capped = daily_engagement({"moodle": 40_000}, POLICY)
    assert capped == 0.25 * 40
    assert daily_engagement({"moodle": 10_000_000}, POLICY) == capped


@given(source=st.sampled_from(SOURCES), beyond=st.integers(0, 10**9))
def test_volume_beyond_a_sources_cap_adds_nothing(source: str, beyond: int) -> None:
    at_cap = round(POLICY.sources[source].cap * 1000)
    assert daily_engagement({source: at_cap + beyond}, POLICY) == daily_engagement(
        {source: at_cap}, POLICY
    )


def test_unknown_sources_are_ignored() -> None:
    known = {"moodle": 4_000, "attendance": 1_000}
    assert daily_engagement({**known, "teleport": 99_000}, POLICY) == daily_engagement(
        known, POLICY
    )


@given(
    events=st.lists(
        st.tuples(st.sampled_from(SOURCES), st.integers(0, 400).map(lambda n: n / 4)),
        max_size=40,
    ),
    data=st.data(),
)
def test_totals_and_engagement_do_not_depend_on_event_order(
    events: list[tuple[str, float]], data: st.DataObject
) -> None:
    def totals_of(ordered: list[tuple[str, float]]) -> dict[str, int]:
        totals: dict[str, int] = {}
        for source, quantity in ordered:
            totals[source] = totals.get(source, 0) + to_milli(quantity)
        return totals

    in_order = totals_of(events)
    shuffled = totals_of(data.draw(st.permutations(events)))
    assert shuffled == in_order
    # Same totals, different dict insertion order: the engagement is bit-for-bit equal.
    assert daily_engagement(shuffled, POLICY) == daily_engagement(in_order, POLICY)


@given(lower=totals_st, extra=totals_st)
def test_more_of_any_source_never_lowers_daily_engagement(
    lower: dict[str, int], extra: dict[str, int]
) -> None:
    higher = {s: lower.get(s, 0) + extra.get(s, 0) for s in set(lower) | set(extra)}
    assert daily_engagement(higher, POLICY) >= daily_engagement(lower, POLICY)


def test_to_milli_rounds_to_whole_thousandths() -> None:
    assert to_milli(1.5) == 1_500
    assert to_milli(0.1) == 100
    assert to_milli(2.0004) == 2_000


# --- windows ----------------------------------------------------------------------------


def test_window_dates_end_with_as_of_oldest_first() -> None:
    assert window_dates(AS_OF, 3) == (date(2026, 10, 29), date(2026, 10, 30), AS_OF)
    assert len(window_dates(AS_OF, 21)) == 21


def test_days_outside_the_window_do_not_count() -> None:
    daily = {
        AS_OF: 7.0,
        AS_OF - timedelta(days=7): 1000.0,  # one day too old for a 7-day window
        AS_OF + timedelta(days=1): 1000.0,  # after as_of
    }
    assert window_score(daily, AS_OF, 7) == 1.0


def test_missing_days_count_as_zero() -> None:
    assert window_score({AS_OF: 70.0}, AS_OF, 7) == 10.0
    assert window_score({}, AS_OF, 7) == 0.0


def test_window_of_7_and_of_21_days_average_over_their_own_length() -> None:
    daily = {AS_OF: 21.0, AS_OF - timedelta(days=10): 21.0}
    assert window_score(daily, AS_OF, 7) == 3.0
    assert window_score(daily, AS_OF, 21) == 2.0


def test_student_score_reads_only_the_window_days() -> None:
    asked: list[date] = []

    def totals_on(day: date) -> dict[str, int] | None:
        asked.append(day)
        return {"attendance": 1_000}

    student_score(totals_on, AS_OF, 7, POLICY)
    assert asked == list(window_dates(AS_OF, 7))


def test_student_score_is_the_window_average_of_daily_engagement() -> None:
    days = {
        AS_OF: {"attendance": 2_000},  # 20
        AS_OF - timedelta(days=1): {},  # no activity
        AS_OF - timedelta(days=3): {"moodle": 1_000_000},  # capped at 10
        AS_OF - timedelta(days=8): {"attendance": 4_000},  # outside a 7-day window
    }
    assert student_score(days.get, AS_OF, 7, POLICY) == pytest.approx(30 / 7)
    assert student_score(days.get, AS_OF, 21, POLICY) == pytest.approx(70 / 21)


# --- bands ------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", [1e-300, 1e-9, 1.0, 12.0, 1e9])
def test_a_score_of_zero_is_always_very_low(reference: float) -> None:
    assert band(0.0, reference, POLICY) == "very_low"


@given(
    a=st.floats(0, 1e6, allow_nan=False),
    b=st.floats(0, 1e6, allow_nan=False),
    reference=st.floats(1e-6, 1e6, allow_nan=False),
)
def test_band_is_monotone_in_score_for_a_fixed_reference(
    a: float, b: float, reference: float
) -> None:
    low, high = sorted((a, b))
    assert rank(band(high, reference, POLICY)) <= rank(band(low, reference, POLICY))


@pytest.mark.parametrize(
    ("score", "at", "below"),
    [
        (15.0, "high", "good"),
        (8.0, "good", "partial"),
        (4.5, "partial", "low"),
        (1.5, "low", "very_low"),
    ],
)
def test_a_ratio_exactly_at_min_ratio_reaches_the_band(score: float, at: str, below: str) -> None:
    # Reference 10: score / 10 is exactly the band's min_ratio (1.5, 0.8, 0.45, 0.15).
    assert band(score, 10.0, POLICY) == at
    assert band(math.nextafter(score, 0), 10.0, POLICY) == below


def test_band_thresholds_are_the_policys() -> None:
    assert [(b.indicator, b.min_ratio) for b in POLICY.bands] == [
        ("high", 1.5),
        ("good", 0.8),
        ("partial", 0.45),
        ("low", 0.15),
        ("very_low", 0.0),
    ]


# --- cohort reference -------------------------------------------------------------------


def test_cohort_reference_is_the_median_of_a_large_enough_cohort() -> None:
    assert POLICY.min_cohort_size == 20
    assert cohort_reference([float(n) for n in range(1, 21)], POLICY) == 10.5
    assert cohort_reference([float(n) for n in range(21, 0, -1)], POLICY) == 11.0


def test_a_cohort_smaller_than_min_size_uses_the_absolute_reference() -> None:
    assert cohort_reference([float(n) for n in range(1, 20)], POLICY) == 12.0
    assert cohort_reference([], POLICY) == 12.0


def test_a_cohort_with_a_zero_median_uses_the_absolute_reference() -> None:
    scores = [0.0] * 15 + [50.0] * 10
    assert cohort_reference(scores, POLICY) == POLICY.absolute_reference


def test_score_cohort_bands_everyone_against_one_reference() -> None:
    scores = {f"S{n}": float(n) for n in range(1, 21)}  # median 10.5
    result = score_cohort(scores, POLICY)
    assert result.reference_score == 10.5
    assert result.indicators["S20"] == "high"  # 20 / 10.5 >= 1.5
    assert result.indicators["S10"] == "good"
    assert result.indicators["S5"] == "partial"
    assert result.indicators["S2"] == "low"
    assert result.indicators["S1"] == "very_low"


@settings(max_examples=80)
@given(
    window=st.sampled_from([7, 21]),
    lower=st.dictionaries(st.integers(0, 30), totals_st, max_size=10),
    extra=st.dictionaries(st.integers(0, 30), totals_st, max_size=10),
    others=st.lists(st.floats(0, 500, allow_nan=False), max_size=30),
)
def test_a_student_who_does_at_least_as_much_every_day_never_gets_a_lower_indicator(
    window: int,
    lower: dict[int, dict[str, int]],
    extra: dict[int, dict[str, int]],
    others: list[float],
) -> None:
    """Day offsets run past 21 so some activity falls outside the window."""
    low_days = {AS_OF - timedelta(days=n): totals for n, totals in lower.items()}
    high_days = {}
    for n in set(lower) | set(extra):
        a, b = lower.get(n, {}), extra.get(n, {})
        high_days[AS_OF - timedelta(days=n)] = {s: a.get(s, 0) + b.get(s, 0) for s in {*a, *b}}
    scores = {f"S{i}": score for i, score in enumerate(others)}
    scores["more"] = student_score(high_days.get, AS_OF, window, POLICY)
    scores["less"] = student_score(low_days.get, AS_OF, window, POLICY)
    indicators = score_cohort(scores, POLICY).indicators
    assert rank(indicators["more"]) <= rank(indicators["less"])


# --- local dates across DST (Europe/London) ---------------------------------------------


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), date(2026, 3, 29)),  # 00:30 GMT
        (datetime(2026, 3, 29, 23, 30, tzinfo=UTC), date(2026, 3, 30)),  # 00:30 BST
        (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), date(2026, 10, 25)),  # 00:30 BST
        (datetime(2026, 10, 25, 23, 30, tzinfo=UTC), date(2026, 10, 25)),  # 23:30 GMT
        (datetime(2026, 10, 26, 0, 0, tzinfo=UTC), date(2026, 10, 26)),  # midnight GMT
    ],
)
def test_local_date_follows_the_institutions_clock(instant: datetime, expected: date) -> None:
    assert local_date(instant, LONDON) == expected


def test_local_date_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2026, 10, 25, 12, 0), LONDON)


def _hours_long(day: date) -> float:
    # Timestamps, not aware subtraction: Python subtracts same-tzinfo datetimes as wall time.
    start = day_end(day - timedelta(days=1), LONDON)
    return (day_end(day, LONDON).timestamp() - start.timestamp()) / 3600


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 29), 23),
        (date(2026, 10, 25), 25),
        (date(2026, 10, 26), 24),
        (date(2026, 6, 1), 24),
    ],
)
def test_a_local_day_lasts_from_midnight_to_midnight(day: date, hours: int) -> None:
    assert _hours_long(day) == hours


@pytest.mark.parametrize(
    ("day", "end_utc"),
    [
        (date(2026, 3, 29), datetime(2026, 3, 29, 23, 0, tzinfo=UTC)),
        (date(2026, 10, 25), datetime(2026, 10, 26, 0, 0, tzinfo=UTC)),
        (date(2026, 10, 24), datetime(2026, 10, 24, 23, 0, tzinfo=UTC)),
    ],
)
def test_day_end_is_the_next_local_midnight(day: date, end_utc: datetime) -> None:
    assert day_end(day, LONDON) == end_utc


@given(day=st.dates(date(2025, 1, 1), date(2027, 12, 31)))
def test_day_end_is_the_instant_the_local_date_changes(day: date) -> None:
    end = day_end(day, LONDON).astimezone(UTC)
    assert local_date(end - timedelta(microseconds=1), LONDON) == day
    assert local_date(end, LONDON) == day + timedelta(days=1)


# --- policy -----------------------------------------------------------------------------


def test_the_built_in_policy_loads() -> None:
    policy = load_policy()
    assert policy.version == "2026.1"
    assert set(policy.sources) == set(SOURCES)
    assert policy.window_days("full-time") == 7
    assert policy.window_days("part-time") == 21
    assert policy.window_days("no-such-mode") == policy.default_window_days == 7
    assert policy.longest_window_days == 21
    assert policy.min_cohort_size == 20
    assert policy.absolute_reference == 12.0
    assert policy_from_mapping(raw_policy()) == policy


def _with(change: Any) -> dict[str, Any]:
    data = raw_policy()
    change(data)
    return data


def _swap_band_ratios(data: dict[str, Any]) -> None:
    bands = data["bands"]
    bands[0]["min_ratio"], bands[1]["min_ratio"] = bands[1]["min_ratio"], bands[0]["min_ratio"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["sources"].update(teleport={"weight": 1, "cap": 1}), "unknown sources"),
        (lambda d: d["sources"]["moodle"].update(weight=-0.25), ">= 0"),
        (lambda d: d["sources"]["moodle"].update(cap=-1), ">= 0"),
        (_swap_band_ratios, "must fall"),
        (lambda d: d["bands"].reverse(), "bands must be exactly"),
        (lambda d: d["bands"].pop(2), "bands must be exactly"),
        (lambda d: d["bands"][1].update(indicator="fine"), "bands must be exactly"),
        (lambda d: d["bands"][-1].update(min_ratio=0.05), "ending at 0"),
        (lambda d: d["cohort"].update(absolute_reference=0), "absolute_reference"),
        (lambda d: d["cohort"].update(absolute_reference=-3), "absolute_reference"),
        (lambda d: d["window"].update(default_days=0), "window days"),
        (lambda d: d["window"]["by_mode"].update({"part-time": 0}), "window days"),
        (lambda d: d.pop("cohort"), "missing"),
        (lambda d: d["sources"]["moodle"].pop("cap"), "missing"),
    ],
    ids=[
        "unknown-source",
        "negative-weight",
        "negative-cap",
        "bands-out-of-order",
        "bands-reversed",
        "four-bands",
        "renamed-band",
        "lowest-band-not-zero",
        "zero-absolute-reference",
        "negative-absolute-reference",
        "zero-default-window",
        "zero-mode-window",
        "missing-table",
        "missing-cap",
    ],
)
def test_policy_from_mapping_rejects_a_bad_policy(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        policy_from_mapping(_with(change))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda d: d["sources"]["moodle"].update(weight=math.nan),
            id="nan-weight",
        ),
        pytest.param(
            lambda d: d["cohort"].update(absolute_reference=math.nan),
            id="nan-absolute-reference",
        ),
        pytest.param(
            lambda d: d["bands"][1].update(min_ratio=math.nan),
            id="nan-min-ratio",
        ),
    ],
)
def test_policy_from_mapping_rejects_nan(change: Any) -> None:
    with pytest.raises(ValueError):
        policy_from_mapping(_with(change))


def test_load_policy_names_a_missing_file(tmp_path: Any) -> None:
    path = tmp_path / "no-such-policy.toml"
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_policy(path)


def test_load_policy_names_a_file_that_is_not_toml(tmp_path: Any) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("version = \n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_policy(path)


def test_load_policy_names_a_file_with_a_bad_rule(tmp_path: Any) -> None:
    path = tmp_path / "bad.toml"
    text = resources.files("leap.policies").joinpath(DEFAULT_POLICY_NAME).read_text()
    path.write_text(text.replace("absolute_reference = 12.0", "absolute_reference = 0.0"))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*absolute_reference"):
        load_policy(path)


def test_load_policy_reads_a_policy_file(tmp_path: Any) -> None:
    path = tmp_path / "custom.toml"
    text = resources.files("leap.policies").joinpath(DEFAULT_POLICY_NAME).read_text()
    path.write_text(text.replace('version = "2026.1"', 'version = "test.1"'))
    assert load_policy(path).version == "test.1"
