"""DailyTotalsBook remembers local dates per UTC hour: it must still count every event on
the day ``leap.scoring.local_date`` gives, across DST changes and in zones whose offsets
are not whole hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from leap.replay import DailyTotalsBook
from leap.scoring import local_date

ZONES = ["Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns", "UTC"]
#: Around the 2026 DST changes of the zones above, and midnights in between.
INSTANTS = st.integers(
    int(datetime(2026, 3, 28, tzinfo=UTC).timestamp()),
    int(datetime(2026, 4, 6, tzinfo=UTC).timestamp()),
).map(lambda s: datetime.fromtimestamp(s, UTC)) | st.integers(
    int(datetime(2026, 10, 3, tzinfo=UTC).timestamp()),
    int(datetime(2026, 11, 2, tzinfo=UTC).timestamp()),
).map(lambda s: datetime.fromtimestamp(s, UTC))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.lists(INSTANTS, min_size=1, max_size=60))
def test_every_event_counts_on_its_local_date(zone_name: str, instants: list[datetime]) -> None:
    zone = ZoneInfo(zone_name)
    book = DailyTotalsBook(zone)
    for n, instant in enumerate(instants):
        book.add(
            {
                "event_id": f"e{n}",
                "student_id": "S1",
                "source": "moodle",
                "occurred_at": instant,
                "quantity": 1.0,
            }
        )
    want: dict[object, int] = {}
    for instant in instants:
        day = local_date(instant, zone)
        want[day] = want.get(day, 0) + 1000
    assert {day: t["moodle"] for day, t in book.totals["S1"].items()} == want


def test_an_hour_holding_local_midnight_is_not_remembered() -> None:
    book = DailyTotalsBook(ZoneInfo("Asia/Kolkata"))  # midnight is 18:30 UTC
    before = datetime(2026, 10, 5, 18, 10, tzinfo=UTC)
    for n, instant in enumerate([before, before + timedelta(minutes=30)]):
        book.add(
            {
                "event_id": f"e{n}",
                "student_id": "S1",
                "source": "moodle",
                "occurred_at": instant,
                "quantity": 1.0,
            }
        )
    assert sorted(book.totals["S1"]) == [before.date(), before.date() + timedelta(days=1)]
