"""Memory: what the worker holds per student, at 10,000 and 50,000 students.

The worker's state lives in Faust tables whose in-memory store keeps the values the
worker writes (``streams.table_batch``): this builds those same values from a synthetic
term, in a fresh process per size so its RSS is not muddied by earlier runs:

* ``daily_totals``: key ``"sid|YYYY-MM-DD"`` -> ``DayRecord.to_table()``
  (``streams.day_record``), counted as ``streams.activity`` counts: each event read into
  its day record, each touched record written once at the end of a batch (here a day);
* ``indicators``: one ``{"indicator", "as_of", "state": {11 fields}}`` per student;
* ``cohort_rounds``: each closed day's reports, ``[score, window, breakdown]`` per
  student, kept ``lateness_horizon_days + 1`` days (``streams.cohort_banding``);

then reports process RSS growth per student (allocator overhead included) and each
part's deep size, for 8 days and for the 28 days of day records the worker keeps.

    python -m bench.memory      # 10k and 50k students, 8 and 28 days each
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from bench.common import bench_parser, print_table, quick, rss_kib, synthetic_term
from connectors.publisher import Tick
from leap.scoring import local_date, to_milli
from leap.settings import Settings
from streams.day_record import DayRecord, day_fingerprints, event_fingerprint, totals_key

#: Days of day records kept by the worker: longest window (21, part-time) + lateness (7).
KEPT_DAYS = 28
ROUND_DAYS = 8  # lateness horizon + 1


def deep_size(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it holds, each object counted once."""
    size, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set):
            stack.extend(obj)
    return size


def build(students: int, days: int) -> dict[str, Any]:
    """The worker's tables for ``students`` over ``days`` days, and their sizes."""
    settings = Settings()  # type: ignore[call-arg]
    people, term = synthetic_term(students, days, settings)
    gc.collect()
    before = rss_kib(os.getpid())
    totals: dict[str, Any] = {}
    touched: dict[str, DayRecord] = {}
    for item in term.items():
        if isinstance(item, Tick):  # a batch's end: each touched record written once
            totals.update((key, record.to_table()) for key, record in touched.items())
            touched.clear()
            continue
        key = totals_key(item["student_id"], local_date(item["occurred_at"], settings.zone))
        record = touched.get(key)
        if record is None:
            record = touched[key] = DayRecord.from_table(totals.get(key))
        fingerprint = event_fingerprint(item["event_id"])
        if fingerprint not in record.counted:
            record.counted.add(fingerprint)
            source = item["source"]
            record.sources[source] = record.sources.get(source, 0) + to_milli(item["quantity"])
    indicators: dict[str, Any] = {}
    rounds: dict[str, Any] = {}
    as_of = term.last_day
    for student in people:
        sid = student.student_id
        state = {
            "student_id": sid,
            "indicator": "good",
            "label": "Good",
            "score": repr(12.345678901234),
            "reference_score": repr(13.5),
            "as_of": as_of.isoformat(),
            "window_days": "7",
            "policy_version": "2026.1",
            "course": student.course,
            "year": str(student.year),
            "updated_at": "2026-10-13T02:00:00.123456+00:00",
        }
        indicators[sid] = {"indicator": "good", "as_of": as_of.isoformat(), "state": state}
        for back in range(min(ROUND_DAYS, days)):
            day = (as_of - timedelta(days=back)).isoformat()
            parts = rounds.setdefault(f"{student.cohort}|{day}", {"done": True, "parts": {}})
            part = parts["parts"].setdefault(str(hash(sid) % 8), {})
            part[sid] = [
                12.345678901234,
                7,
                {"sources": {"attendance": 3.0, "moodle": 17.0}, "active_days": 4},
            ]
    gc.collect()
    after = rss_kib(os.getpid())
    seen: set[int] = set()
    return {
        "rss_per_student": (after - before) * 1024 / students,
        "daily_totals": deep_size(totals, seen) / students,
        "fingerprints": sum(len("".join(day_fingerprints(v))) for v in totals.values()) / students,
        "records": len(totals),
        "indicators": deep_size(indicators, seen) / students,
        "rounds": deep_size(rounds, seen) / students,
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--child", nargs=2, type=int, metavar=("STUDENTS", "DAYS"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(build(*args.child)))
        return
    sizes = (2_000, 10_000) if quick(args) else (10_000, 50_000)
    rows = []
    for students in sizes:
        for days in (8, KEPT_DAYS):
            done = subprocess.run(
                [sys.executable, "-m", "bench.memory", "--child", str(students), str(days)],
                capture_output=True,
                text=True,
                check=True,
            )
            f = json.loads(done.stdout)
            rows.append(
                [
                    f"{students:,}",
                    days,
                    f"{f['records'] / students:.1f}",
                    f["rss_per_student"],
                    f["daily_totals"],
                    f["fingerprints"],
                    f["indicators"],
                    f["rounds"],
                ]
            )
            print(f"  {rows[-1]}", flush=True)
    print_table(
        "Memory per student held (bytes)",
        [
            "students",
            "days",
            "day records/student",
            "RSS growth/student",
            "daily_totals (deep)",
            "of which fingerprints",
            "indicators",
            "cohort rounds",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
