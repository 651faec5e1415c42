"""Replay: ``leap replay`` over a file of ~1,000,000 canonical events, events/s.

Writes a synthetic term as JSON lines (``--students`` x ``--days``; 20,000 x 21 gives
about a million events), then runs ``leap replay`` on it as a user would (a fresh
process, start-up included, output to /dev/null) ``--runs`` times, and once in-process
to split the time between reading/validating lines, counting, and scoring.

``--baseline-ref REF`` also runs the replay of git revision REF (exported with
``git archive``) alternately with this tree's, so before and after share the noise.

    python -m bench.replay
    python -m bench.replay --baseline-ref ab5685d --runs 5
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import bench_parser, median, print_table, quick, write_events_file
from connectors.events_file import FileReader
from connectors.publisher import Rejected, Tick
from leap.institution import load_institution
from leap.policy import load_policy
from leap.reference import load_students
from leap.replay import DailyTotalsBook, indicators_as_of
from leap.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def run_cli(tree: Path, events: Path, students: Path, as_of: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "leap.cli",
            "replay",
            str(events),
            "--students",
            str(students),
            "--as-of",
            as_of,
        ],
        cwd=tree,  # `python -m` puts the tree first on sys.path
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


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


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--students", type=int)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--baseline-ref", help="Also time this git revision's replay.")
    args = parser.parse_args()
    students = args.students or (2_000 if quick(args) else 20_000)
    runs = args.runs or 3
    with tempfile.TemporaryDirectory(prefix="leap-replay-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        events, roster, count, last_day = write_events_file(workdir, students, args.days)
        print(
            f"wrote {count:,} events ({events.stat().st_size / 2**20:.0f} MiB) for "
            f"{students:,} students in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        trees = {"this tree": REPO}
        if args.baseline_ref:
            baseline = workdir / "baseline"
            baseline.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.baseline_ref],
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
            trees = {f"git {args.baseline_ref}": baseline, **trees}
        seconds: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(runs):
            for name, tree in trees.items():
                seconds[name].append(run_cli(tree, events, roster, last_day.isoformat()))
                print(f"  {name}: {seconds[name][-1]:.2f} s", flush=True)
        split = phases(events, roster, last_day.isoformat())
    rows = [
        [f"leap replay ({name}), whole command", median(s), count / median(s), len(s)]
        for name, s in seconds.items()
    ]
    rows += [[f"  in-process: {phase}", s, count / s, 1] for phase, s in split.items()]
    print_table(
        f"Replay: {count:,} events, {students:,} students, {args.days} days (medians)",
        ["what", "seconds", "events/s", "runs"],
        rows,
    )


if __name__ == "__main__":
    main()
