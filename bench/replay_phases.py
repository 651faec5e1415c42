"""One tree's in-process split of a replay: reading and validating, counting, scoring.

Run by ``bench/replay.py`` with that tree first on ``PYTHONPATH`` (and ``-P``), so the
before and after trees are timed by the same code; prints the seconds as JSON.

    python -P bench/replay_phases.py EVENTS STUDENTS_CSV AS_OF
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

from connectors.events_file import FileReader
from connectors.publisher import Rejected, Tick
from leap.institution import load_institution
from leap.policy import load_policy
from leap.reference import load_students
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.settings import Settings


def phases(events: Path, students: Path, as_of: str) -> dict[str, float]:
    """Seconds spent reading and validating, counting, and scoring, in this process."""
    settings = Settings()  # type: ignore[call-arg]
    reader, book = FileReader(events), DailyTotalsBook(settings.zone)
    started = time.perf_counter()
    items = [i for i in reader.items() if not isinstance(i, Rejected | Tick)]
    read = time.perf_counter() - started
    started = time.perf_counter()
    book.add_all(items)
    count = time.perf_counter() - started
    started = time.perf_counter()
    indicators_as_of(
        book,
        load_students(students),
        load_policy(None),
        date.fromisoformat(as_of),
        load_institution(settings.institution),
    )
    return {
        "read and validate": read,
        "count (DailyTotalsBook.add)": count,
        "score (indicators_as_of)": time.perf_counter() - started,
    }


if __name__ == "__main__":
    events, students, as_of = sys.argv[1:4]
    print(json.dumps(phases(Path(events), Path(students), as_of)))
