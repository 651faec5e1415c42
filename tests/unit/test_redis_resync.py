"""What a resync rebuilds from the tables: this worker's active partitions, and the days the
worker itself would still hold in Redis (none it has already dropped)."""

from __future__ import annotations

import json
from datetime import date

from leap.policy import load_policy
from leap.reference import partition_for
from streams.day_record import day_breakdown
from streams.redis_resync import day_hashes, indicator_hashes, indicator_partition

POLICY = load_policy(None)
PARTITIONS = 4
WINDOW = 28  # an institution's longest window, longer than the policy's


def state(sid: str, course: str, year: int) -> dict[str, str]:
    return {"student_id": sid, "indicator": "good", "course": course, "year": str(year)}


def test_days_inside_the_longest_window_of_the_newest_closed_day() -> None:
    closed = date(2026, 11, 30)
    first = date.fromordinal(closed.toordinal() - WINDOW + 1)
    dropped = date.fromordinal(first.toordinal() - 1)
    totals = [
        (f"S1|{dropped.isoformat()}", {"s": {"moodle": 4000}, "ids": []}),
        (f"S1|{first.isoformat()}", {"s": {"moodle": 2000}, "ids": []}),
        ("S1|2026-12-01", {"s": {"library": 1000}, "ids": []}),  # the open day
        ("S2|2026-11-30", {"s": {"moodle": 1000}, "ids": []}),  # partition not active here
        ("GONE|2026-11-30", {"s": {"moodle": 1000}, "ids": []}),  # not in the reference data
    ]
    hashes = day_hashes(totals, {"S1": 0, "S3": 0}, {0: closed}, WINDOW, POLICY, "p:")
    assert hashes == {
        "p:days:S1": {
            first.isoformat(): json.dumps(day_breakdown({"moodle": 2000}, POLICY)),
            "2026-12-01": json.dumps(day_breakdown({"library": 1000}, POLICY)),
        },
        "p:days:S3": {},  # nothing left to show: the hash is deleted
    }


def test_every_day_while_none_has_closed() -> None:
    totals = [("S1|2020-01-01", {"s": {"moodle": 1000}, "ids": []})]
    hashes = day_hashes(totals, {"S1": 2}, {2: None}, WINDOW, POLICY, "p:")
    assert list(hashes["p:days:S1"]) == ["2020-01-01"]


def test_indicators_of_active_partitions_only() -> None:
    students = {f"S{n}": state(f"S{n}", f"C{n % 5}", 1 + n % 3) for n in range(40)}
    items = [
        (sid, {"indicator": "good", "as_of": "2026-11-30", "state": s})
        for sid, s in students.items()
    ]
    items.append(("OLD", {"indicator": "low", "as_of": "2026-11-29"}))  # written before "state"
    active = {0, 3}
    hashes = indicator_hashes(items, active, PARTITIONS, "p:")
    want = {
        f"p:indicator:{sid}": s
        for sid, s in students.items()
        if partition_for(f"{s['course']}|{s['year']}", PARTITIONS) in active
    }
    assert hashes == want
    assert 0 < len(want) < len(students)


def test_an_indicator_lives_on_its_cohort_report_partition() -> None:
    # DayCloser keys reports by cohort ("course|year"); banding writes where they arrived.
    assert indicator_partition(state("S1", "BSc Physics", 2), 8) == partition_for(
        "BSc Physics|2", 8
    )
