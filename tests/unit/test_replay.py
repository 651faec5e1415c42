"""The batch oracle (``leap.replay``) and the students' reference data (``leap.reference``)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from leap.policy import load_policy
from leap.reference import REQUIRED_COLUMNS, Student, load_students, partition_for
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.scoring import SOURCES, Policy, day_end, to_milli
from schemas.ids import STUDENT_ID_PATTERN

LONDON = ZoneInfo("Europe/London")
POLICY = load_policy()
#: The same rules with tiny cohorts compared by their median, not the absolute fallback.
SMALL_COHORTS = dataclasses.replace(POLICY, min_cohort_size=2)

STUDENTS = {
    s.student_id: s
    for s in [
        Student("S1000001", "BA-ENGLIT", 1, "full-time", "LiFTS", "T1"),
        Student("S1000002", "BA-ENGLIT", 1, "full-time", "LiFTS", "T1"),
        Student("S1000003", "BA-ENGLIT", 1, "full-time", "LiFTS", "T1"),
        Student("S1000004", "BA-ENGLIT", 1, "part-time", "LiFTS", "T1"),
        Student("S1000005", "BSC-MARBIO", 2, "full-time", "LS", "T2"),
        Student("S1000006", "BSC-MARBIO", 2, "part-time", "LS", "T2"),
    ]
}
#: Activity of someone who is not in the reference data must change nothing.
STRANGER = "S9999999"

#: ~12 days of event time across the end of BST (2026-10-25 is 25 hours long).
START = datetime(2026, 10, 19, tzinfo=UTC)
SPAN_MINUTES = 12 * 24 * 60
FIRST_DAY = date(2026, 10, 19)
#: Minutes either side of each local midnight, where DST mistakes would show.
EDGES = sorted(
    {
        int((day_end(FIRST_DAY + timedelta(days=n), LONDON) - START).total_seconds() // 60) + d
        for n in range(12)
        for d in (-1, 0, 1)
    }
)

event_st = st.tuples(
    st.sampled_from([*STUDENTS, STRANGER]),
    st.sampled_from(SOURCES),
    st.integers(0, 120).map(lambda n: n / 2),  # multiples of 0.5
    st.one_of(st.integers(0, SPAN_MINUTES), st.sampled_from(EDGES)),
)
as_of_st = st.integers(-1, 13).map(lambda n: FIRST_DAY + timedelta(days=n))
policy_st = st.sampled_from([POLICY, SMALL_COHORTS])


def make_events(
    specs: list[tuple[str, str, float, int]], prefix: str = "e", origin: datetime = START
) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}{n}",
            "student_id": sid,
            "source": source,
            "action": "did",
            "occurred_at": origin + timedelta(minutes=minutes),
            "quantity": quantity,
            "course_id": None,
            "received_at": None,
            "attributes": {},
        }
        for n, (sid, source, quantity, minutes) in enumerate(specs)
    ]


def indicators(events: list[dict[str, Any]], policy: Policy, as_of: date) -> list[dict[str, Any]]:
    book = DailyTotalsBook(LONDON)
    book.add_all(events)
    return indicators_as_of(book, STUDENTS, policy, as_of)


# --- indicators_as_of -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    specs=st.lists(event_st, max_size=80),
    as_of=as_of_st,
    policy=policy_st,
    data=st.data(),
)
def test_any_arrival_order_with_duplicates_gives_exactly_the_same_indicators(
    specs: list[tuple[str, str, float, int]], as_of: date, policy: Policy, data: st.DataObject
) -> None:
    events = make_events(specs)
    resent = data.draw(st.lists(st.sampled_from(events), max_size=20)) if events else []
    arrivals = data.draw(st.permutations(events + [dict(e) for e in resent]))

    oracle = DailyTotalsBook(LONDON)
    oracle.add_all(sorted(events, key=lambda e: e["occurred_at"]))
    live = DailyTotalsBook(LONDON)
    live.add_all(arrivals)

    assert live.duplicates == len(resent)
    assert live.totals == oracle.totals
    assert indicators_as_of(live, STUDENTS, policy, as_of) == indicators_as_of(
        oracle, STUDENTS, policy, as_of
    )


@settings(max_examples=40, deadline=None)
@given(specs=st.lists(event_st, max_size=60), as_of=as_of_st, policy=policy_st)
def test_resending_every_event_changes_nothing(
    specs: list[tuple[str, str, float, int]], as_of: date, policy: Policy
) -> None:
    events = make_events(specs)
    assert indicators(events + [dict(e) for e in events], policy, as_of) == indicators(
        events, policy, as_of
    )


@settings(max_examples=40, deadline=None)
@given(
    specs=st.lists(event_st, max_size=60),
    later=st.lists(event_st, min_size=1, max_size=30),
    as_of=as_of_st,
    policy=policy_st,
)
def test_events_after_the_as_of_day_change_nothing(
    specs: list[tuple[str, str, float, int]],
    later: list[tuple[str, str, float, int]],
    as_of: date,
    policy: Policy,
) -> None:
    events = make_events(specs)
    # From the instant as_of's local day ends, up to ~12 days on.
    after = make_events(later, prefix="later", origin=day_end(as_of, LONDON).astimezone(UTC))
    assert indicators(events + after, policy, as_of) == indicators(events, policy, as_of)


@settings(max_examples=40, deadline=None)
@given(
    specs=st.lists(event_st, max_size=60),
    earlier=st.lists(event_st, min_size=1, max_size=30),
    as_of=as_of_st,
    policy=policy_st,
)
def test_events_before_the_longest_window_change_nothing(
    specs: list[tuple[str, str, float, int]],
    earlier: list[tuple[str, str, float, int]],
    as_of: date,
    policy: Policy,
) -> None:
    events = make_events(specs)
    window_start = day_end(as_of - timedelta(days=policy.longest_window_days), LONDON)
    # At least a minute before the first local day of the window.
    before = [
        {
            **e,
            "occurred_at": window_start.astimezone(UTC)
            - timedelta(minutes=1)
            - (e["occurred_at"] - START),
        }
        for e in make_events(earlier, prefix="early")
    ]
    assert indicators(events + before, policy, as_of) == indicators(events, policy, as_of)


def test_events_count_on_their_local_date_across_the_end_of_bst() -> None:
    sid = "S1000005"  # full-time: a 7-day window
    events = make_events(
        [
            (sid, "attendance", 1.0, 0),  # 2026-10-24 23:30 UTC = 00:30 BST on the 25th
            (sid, "attendance", 1.0, 24 * 60),  # 2026-10-25 23:30 UTC = 23:30 GMT on the 25th
            (sid, "attendance", 1.0, 25 * 60),  # 2026-10-26 00:30 UTC = 00:30 GMT on the 26th
        ],
        origin=datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
    )

    def score(as_of: date) -> float:
        (row,) = [r for r in indicators(events, POLICY, as_of) if r["student_id"] == sid]
        return row["score"]

    assert score(date(2026, 10, 24)) == 0.0
    assert score(date(2026, 10, 25)) == pytest.approx(20 / 7)
    assert score(date(2026, 10, 26)) == pytest.approx(30 / 7)


def test_there_is_one_result_per_reference_student_sorted_by_id() -> None:
    events = make_events([(STRANGER, "attendance", 1.0, 60), ("S1000004", "moodle", 8.0, 60)])
    rows = indicators(events, POLICY, FIRST_DAY)
    assert [r["student_id"] for r in rows] == sorted(STUDENTS)
    part_timer = next(r for r in rows if r["student_id"] == "S1000004")
    assert part_timer["window_days"] == 21
    assert part_timer["score"] == pytest.approx(0.25 * 8 / 21)
    assert part_timer["reference_score"] == POLICY.absolute_reference
    assert part_timer["indicator"] == "very_low"
    assert part_timer["label"] == "Very Low"
    assert part_timer["course"] == "BA-ENGLIT"
    assert part_timer["year"] == 1
    assert part_timer["as_of"] == "2026-10-19"
    assert part_timer["policy_version"] == "2026.1"


# --- DailyTotalsBook --------------------------------------------------------------------


def test_a_repeated_event_id_is_refused_and_counted_as_a_duplicate() -> None:
    (event,) = make_events([("S1000001", "lecture_capture", 1.5, 60)])
    book = DailyTotalsBook(LONDON)
    assert book.add(event) is True
    assert book.add(dict(event)) is False
    assert book.add({**event, "quantity": 99.0}) is False  # same id: still the same event
    assert book.duplicates == 2
    assert book.totals["S1000001"][FIRST_DAY] == {"lecture_capture": 1_500}


def test_distinct_event_ids_are_all_counted() -> None:
    events = make_events([("S1000001", "moodle", 0.5, 60)] * 3)
    book = DailyTotalsBook(LONDON)
    assert [book.add(e) for e in events] == [True, True, True]
    assert book.duplicates == 0
    assert book.totals["S1000001"][FIRST_DAY]["moodle"] == 1_500


QUANTITIES = st.one_of(
    st.floats(0, 1e12),
    st.sampled_from([1.0, 0.0, -0.0, 2.5]),
    st.integers(0, 2**60),
    st.sampled_from([2**53 - 1, float(2**53 - 1), True]),  # equal values, rounded apart
)


@settings(max_examples=300, deadline=None)
@given(st.lists(QUANTITIES, min_size=1, max_size=30))
def test_each_quantity_counts_its_own_thousandths(quantities: list[float]) -> None:
    # The book remembers to_milli per float quantity: an int of the same value (and True,
    # which equals 1) must still count as to_milli says.
    book = DailyTotalsBook(LONDON)
    for n, quantity in enumerate(quantities):
        (event,) = make_events([("S1000001", "moodle", quantity, 60)])
        book.add({**event, "event_id": f"e{n}"})
    assert book.totals["S1000001"][FIRST_DAY]["moodle"] == sum(to_milli(q) for q in quantities)


# --- load_students ----------------------------------------------------------------------

HEADER = ",".join(REQUIRED_COLUMNS)
GOOD_ROW = "S1000001,BA-ENGLIT,2,full-time,LiFTS,T1"


def write_csv(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "students.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_students_reads_a_good_file(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, HEADER, GOOD_ROW, " S1000002 , BSC-MARBIO , 3 , part-time , LS , T9 "
    )
    students = load_students(path)
    assert students == {
        "S1000001": Student("S1000001", "BA-ENGLIT", 2, "full-time", "LiFTS", "T1"),
        "S1000002": Student("S1000002", "BSC-MARBIO", 3, "part-time", "LS", "T9"),
    }
    assert students["S1000001"].cohort == "BA-ENGLIT|2"


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        pytest.param("bob smith,BA-ENGLIT,2,full-time,LiFTS,T1", "student_id", id="bad-id"),
        pytest.param(",BA-ENGLIT,2,full-time,LiFTS,T1", "student_id", id="empty-id"),
        pytest.param("S1000002,BA-ENGLIT,two,full-time,LiFTS,T1", "year", id="bad-year"),
        pytest.param("S1000002,BA-ENGLIT,2,sandwich,LiFTS,T1", "mode", id="bad-mode"),
        pytest.param(
            "S1000002,BA-ENGLIT,2",
            "",
            id="short-row",
        ),
        pytest.param(
            "S1000002,BA-ENGLIT",
            "",
            id="short-row-without-year",
        ),
    ],
)
def test_a_bad_row_stops_the_load_naming_file_and_line(
    tmp_path: Path, row: str, complaint: str
) -> None:
    path = write_csv(tmp_path, HEADER, GOOD_ROW, row)
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: ") + ".*" + complaint):
        load_students(path)


def test_the_line_number_counts_blank_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, GOOD_ROW, "", "S1000002,BA-ENGLIT,2,sandwich,LiFTS,T1")
    with pytest.raises(ValueError, match=re.escape(f"{path}:4: ")):
        load_students(path)


def test_a_missing_column_is_named_with_the_file(tmp_path: Path) -> None:
    header = ",".join(c for c in REQUIRED_COLUMNS if c != "mode")
    path = write_csv(tmp_path, header, "S1000001,BA-ENGLIT,2,LiFTS,T1")
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*missing columns.*'mode'"):
        load_students(path)


def test_an_unreadable_students_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_students(path)


# --- partition_for ----------------------------------------------------------------------


@given(
    student_id=st.from_regex(STUDENT_ID_PATTERN, fullmatch=True),
    partitions=st.integers(1, 128),
)
def test_partition_for_matches_aiokafkas_default_partitioner(
    student_id: str, partitions: int
) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(student_id.encode(), all_partitions, all_partitions)
    assert partition_for(student_id, partitions) == expected
