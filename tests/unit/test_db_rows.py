"""Pure parts of the history sink, the audit log and connection messages."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from leap.db.audit import AuditLog
from leap.db.connection import redacted
from leap.db.history import HistoryRow, as_columns

DAY = date(2026, 10, 20)


def row(student_id: str, as_of: date, indicator: str = "good") -> HistoryRow:
    return HistoryRow(
        student_id, as_of, indicator, 9.5, 10.0, 7, {"b": {"x": 1}, "a": 2}, "p1", "PHYS", 1, True
    )


def test_columns_hold_one_array_per_column_with_breakdown_as_json() -> None:
    columns = as_columns([row("S1000001", DAY), row("S1000002", DAY)])
    assert len(columns) == 11
    assert columns[0] == ["S1000001", "S1000002"]
    assert columns[1] == [DAY, DAY]
    assert [json.loads(text) for text in columns[6]] == [{"a": 2, "b": {"x": 1}}] * 2
    assert columns[10] == [True, True]


def test_the_last_row_of_a_student_day_wins() -> None:
    columns = as_columns(
        [row("S1000001", DAY, "good"), row("S1000002", DAY), row("S1000001", DAY, "low")]
    )
    assert columns[0] == ["S1000001", "S1000002"]
    assert columns[2] == ["low", "good"]


def test_columns_of_nothing_are_empty() -> None:
    assert as_columns([]) == [[] for _ in range(11)]


async def test_audit_refuses_a_naive_time_before_touching_the_database() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await AuditLog(pool=None).record(
            "t", "tutor", "S1000001", "GET /x", True, datetime(2026, 1, 1)
        )


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (
            "postgresql:///leap?host=/var/run/postgresql",
            "postgresql:///leap?host=/var/run/postgresql",
        ),
        ("postgresql://leap:s3cret@db:5432/leap", "postgresql://leap:***@db:5432/leap"),
        ("postgresql://leap@db/leap?sslmode=require", "postgresql://leap@db/leap?sslmode=require"),
        (
            "postgresql://db/leap?user=u&password=s3cret&x=1",
            "postgresql://db/leap?user=u&password=***&x=1",
        ),
    ],
)
def test_dsn_is_shown_without_its_password(dsn: str, shown: str) -> None:
    assert redacted(dsn) == shown
