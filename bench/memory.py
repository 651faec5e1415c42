"""Memory: what the worker holds per student, at 10,000 and 50,000 students.

The worker's state lives in Faust tables whose in-memory store keeps the values the
worker writes (``streams.table_batch``): this builds those same values from a synthetic
term, in a fresh process per size so its RSS is not muddied by earlier runs:

* ``daily_totals``: key ``"sid|YYYY-MM-DD"`` -> ``DayRecord.to_table()`` =
  ``{"s": {source: thousandths}, "ids": [12-hex-char fingerprints]}``, for every
  (student, day) with activity;
* ``indicators``: one ``{"indicator", "as_of", "state": {11 fields}}`` per student;
* ``cohort_rounds``: each closed day's reports, ``[score, window, breakdown]`` per
  student, kept ``lateness_horizon_days + 1`` days (``streams.cohort_banding``);

then reports process RSS growth per student (allocator overhead included) and each
part's deep size, and the same for a compact prototype layout (per student-day a tuple
of per-source totals and one ``bytes`` of 6-byte fingerprints) — a proposal for streams/.

    python -m bench.memory      # 10k students for 8 and 28 days, 50k for 8
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from bench.common import bench_parser, print_table, quick, rss_kib, synthetic_term
from connectors.publisher import Tick
from leap.scoring import SOURCES, local_date, to_milli
from leap.settings import Settings
from streams.day_record import event_fingerprint, totals_key

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


def build(students: int, days: int, layout: str) -> dict[str, Any]:
    """The worker's tables for ``students`` over ``days`` days, in ``layout``."""
    settings = Settings()  # type: ignore[call-arg]
    people, term = synthetic_term(students, days, settings)
    gc.collect()
    before = rss_kib(os.getpid())
    totals: dict[str, Any] = {}
    index = {s: n for n, s in enumerate(SOURCES)}
    for item in term.items():
        if isinstance(item, Tick):
            continue
        key = totals_key(item["student_id"], local_date(item["occurred_at"], settings.zone))
        fingerprint = event_fingerprint(item["event_id"])
        amount = to_milli(item["quantity"])
        if layout == "worker":
            value = totals.setdefault(key, {"s": {}, "ids": []})
            value["s"][item["source"]] = value["s"].get(item["source"], 0) + amount
            value["ids"].append(fingerprint)
        else:
            sums, ids = totals.get(key, ((0,) * len(SOURCES), b""))
            sums = list(sums)
            sums[index[item["source"]]] += amount
            totals[key] = (tuple(sums), ids + bytes.fromhex(fingerprint))
    if layout == "worker":
        for value in totals.values():
            value["ids"].sort()
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
        if layout == "worker":
            indicators[sid] = {"indicator": "good", "as_of": as_of.isoformat(), "state": state}
        else:  # the state's values in a fixed field order: the names are the same for all
            indicators[sid] = tuple(state.values())
        for back in range(min(ROUND_DAYS, days)):
            day = (as_of - timedelta(days=back)).isoformat()
            parts = rounds.setdefault(f"{student.cohort}|{day}", {"done": True, "parts": {}})
            part = parts["parts"].setdefault(str(hash(sid) % 8), {})
            if layout == "worker":
                part[sid] = [
                    12.345678901234,
                    7,
                    {"sources": {"attendance": 3.0, "moodle": 17.0}, "active_days": 4},
                ]
            else:  # banding needs the score; the breakdown has gone to history by then
                part[sid] = 12.345678901234
    gc.collect()
    after = rss_kib(os.getpid())
    seen: set[int] = set()
    return {
        "rss_per_student": (after - before) * 1024 / students,
        "daily_totals": deep_size(totals, seen) / students,
        "fingerprints": _fingerprint_bytes(totals.values(), layout) / students,
        "records": len(totals),
        "indicators": deep_size(indicators, seen) / students,
        "rounds": deep_size(rounds, seen) / students,
    }


def _fingerprint_bytes(values: Iterable[Any], layout: str) -> int:
    if layout == "worker":
        return sum(sys.getsizeof(v["ids"]) + sum(map(sys.getsizeof, v["ids"])) for v in values)
    return sum(sys.getsizeof(v[1]) for v in values)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--child", nargs=3, metavar=("STUDENTS", "DAYS", "LAYOUT"))
    args = parser.parse_args()
    if args.child:
        students, days, layout = args.child
        print(json.dumps(build(int(students), int(days), layout)))
        return
    # Per-student figures do not depend on the count (see docs/benchmarks.md), so the
    # 28 days the worker really keeps are built for the smaller size only.
    big, small = (10_000, 2_000) if quick(args) else (50_000, 10_000)
    rows = []
    for students, days in ((small, 8), (small, KEPT_DAYS), (big, 8)):
        for layout in ("worker", "compact"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.memory",
                    "--child",
                    str(students),
                    str(days),
                    layout,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            f = json.loads(done.stdout)
            rows.append(
                [
                    f"{students:,}",
                    days,
                    layout,
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
        "Memory per student held (bytes; day records as the worker keeps them vs a compact "
        "prototype)",
        [
            "students",
            "days",
            "layout",
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
