"""How a cohort's round keeps its reports (``streams.cohort_banding``), without Kafka.

A report's line for a student is numbers only, ``[score, window days, active days, units
of each source]``; the history breakdown rebuilt from it must be the one the day closer's
window gave. Rounds and report lines written before that layout must still be read: a
running deployment's ``cohort_rounds`` changelog and in-flight reports hold them.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, cast

import faust
from hypothesis import given
from hypothesis import strategies as st

from leap.policy import load_policy
from leap.scoring import SOURCES, window_breakdown
from streams.cohort_banding import CohortBanding, _breakdown, _kept
from streams.day_close import _entry
from streams.student_windows import read_summary
from streams.table_batch import DELETED, TableBatch

POLICY = load_policy()
AS_OF = date(2026, 10, 26)  # the day after British Summer Time ended

days_st = st.dictionaries(
    st.integers(0, 20).map(lambda n: AS_OF - timedelta(days=n)),
    st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 500_000)),
)


@given(days=days_st, window=st.sampled_from([7, 21]))
def test_a_kept_line_gives_back_the_windows_breakdown(
    days: dict[date, dict[str, int]], window: int
) -> None:
    summary = read_summary(days.get, AS_OF, window, POLICY)
    line = _entry(summary)
    assert all(isinstance(n, int | float) for n in line)  # numbers only, for JSON and memory
    assert line[:2] == [summary.score, window]
    assert _kept(line) == line
    assert _breakdown(line[2:]) == window_breakdown(days.get, AS_OF, window)


def test_a_line_from_before_numbers_only_is_converted() -> None:
    breakdown = {"sources": {"attendance": 3.0, "moodle": 17.25}, "active_days": 4}
    kept = _kept([12.5, 7, breakdown])
    assert kept[:3] == [12.5, 7, 4]
    assert dict(zip(SOURCES, kept[3:], strict=True)) == {
        "moodle": 17_250,
        "computer_login": 0,
        "submission": 0,
        "lecture_capture": 0,
        "attendance": 3_000,
        "library": 0,
    }
    assert _breakdown(kept[2:]) == breakdown


def banding(rounds: dict[str, Any]) -> CohortBanding:
    """Banding over a real (in-memory) Faust table holding ``rounds``."""
    app = faust.App(f"test-{id(object())}", store="memory://", topic_partitions=4)
    table = app.Table("cohort_rounds", partitions=4)
    table.data.update(rounds)
    none = cast(Any, None)
    return CohortBanding(POLICY, {}, table, none, none, none, none, 7, none, None)


def stored(b: CohortBanding) -> dict[str, Any]:
    return dict(b.rounds.data.items())


def test_a_round_kept_whole_is_split_into_one_key_per_report() -> None:
    old = [12.5, 7, {"sources": {"moodle": 17.0}, "active_days": 4}]
    b = banding(
        {
            "BA-X|1|2026-10-26": {"parts": {"0": {"S1": old}, "3": {"S2": old}}},
            "BA-X|1|2026-10-25": {"done": True, "parts": {"0": {}, "1": {"S3": old}}},
        }
    )
    assert b._state("BA-X|1|2026-10-26", 2) == {"parts": ["0", "3"]}
    assert b._state("BA-X|1|2026-10-25", 2) == {"done": True, "parts": ["0", "1"]}
    assert stored(b)["BA-X|1|2026-10-26"] == {"parts": ["0", "3"]}
    assert b._part("BA-X|1|2026-10-26", "3") == {"S2": _kept(old)}
    assert isinstance(stored(b)["BA-X|1|2026-10-26|3"], str)  # kept as JSON text
    assert b._merged("BA-X|1|2026-10-25", ["0", "1"]) == {"S3": _kept(old)}
    # ... and a round in the new layout is read as it is.
    assert b._state("BA-X|1|2026-10-26", 2) == {"parts": ["0", "3"]}
    # Every write is pending on the report's partition, for one batch at the commit.
    pending = cast(TableBatch, b._writes).pending
    assert set(pending) == {2}
    assert [key for key, _ in pending[2]] == [
        "BA-X|1|2026-10-26|0",
        "BA-X|1|2026-10-26|3",
        "BA-X|1|2026-10-26",
        "BA-X|1|2026-10-25|0",
        "BA-X|1|2026-10-25|1",
        "BA-X|1|2026-10-25",
    ]


def test_a_round_past_the_lateness_horizon_keeps_only_its_marker() -> None:
    b = banding(
        {
            "BA-X|1|2026-10-18": {"done": True, "parts": ["0", "1"]},
            "BA-X|1|2026-10-18|0": '{"S1":[1.0,7,1,0,0,0,0,0,0]}',
            "BA-X|1|2026-10-18|1": '{"S2":[2.0,7,1,0,0,0,0,0,0]}',
            "BA-X|1|2026-08-25": {"done": True},
        }
    )
    b._forget_old_rounds("BA-X|1", date(2026, 10, 26), 1)  # horizon 7: 8 days kept
    assert stored(b) == {"BA-X|1|2026-10-18": {"done": True}}
    # a tombstone for each key dropped, as ``Table.pop`` sends: none for keys not there
    assert cast(TableBatch, b._writes).pending == {
        1: [
            ("BA-X|1|2026-08-25", DELETED),
            ("BA-X|1|2026-10-18|0", DELETED),
            ("BA-X|1|2026-10-18|1", DELETED),
            ("BA-X|1|2026-10-18", {"done": True}),
        ]
    }
    b._forget_old_rounds("BA-X|1", date(2026, 10, 27), 1)  # nothing there to drop
    assert len(cast(TableBatch, b._writes).pending[1]) == 4
