"""Replay: ``leap replay`` over a file of ~1,000,000 canonical events, events/s.

Writes a synthetic term as JSON lines (``--students`` x ``--days``; 20,000 x 21 gives
about a million events), then runs ``leap replay`` on it as a user would (a fresh
process, start-up included, output to /dev/null) ``--runs`` times, and as often
in-process (``bench/replay_phases.py``) to split the time between reading/validating
lines, counting, and scoring. Each run's CPU seconds are printed too: on a shared
machine a steadier measure than the wall clock, which also counts waiting for a core.

``--baseline-ref REF`` (exported with ``git archive``) or ``--baseline-tree DIR`` also
runs another copy of the code alternately with this tree's, so before and after share
the noise.

    python -m bench.replay
    python -m bench.replay --baseline-ref HEAD --runs 5
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import bench_parser, median, print_table, quick, write_events_file

REPO = Path(__file__).resolve().parent.parent
PHASES = ("read and validate", "count (DailyTotalsBook.add)", "score (indicators_as_of)")


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(tree: Path, events: Path, students: Path, as_of: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``leap replay`` of ``tree``'s code."""
    cpu, started = child_cpu(), time.perf_counter()
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
    return time.perf_counter() - started, child_cpu() - cpu


def run_phases(tree: Path, events: Path, students: Path, as_of: str) -> dict[str, float]:
    """``bench/replay_phases.py`` (this tree's script) over ``tree``'s code."""
    script = REPO / "bench" / "replay_phases.py"
    out = subprocess.run(
        [sys.executable, "-P", str(script), str(events), str(students), as_of],
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {phase: float(seconds) for phase, seconds in json.loads(out).items()}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--students", type=int)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--baseline-ref", help="Also time this git revision's replay.")
    parser.add_argument("--baseline-tree", type=Path, help="Also time the code in this dir.")
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
        if args.baseline_tree:
            trees = {str(args.baseline_tree): args.baseline_tree.resolve(), **trees}
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
        wall: dict[str, list[float]] = {name: [] for name in trees}
        cpu: dict[str, list[float]] = {name: [] for name in trees}
        split: dict[str, dict[str, list[float]]] = {n: {p: [] for p in PHASES} for n in trees}
        as_of = last_day.isoformat()
        for _ in range(runs):
            for name, tree in trees.items():
                seconds, used = run_cli(tree, events, roster, as_of)
                wall[name].append(seconds)
                cpu[name].append(used)
                print(f"  {name}: {seconds:.2f} s ({used:.2f} s CPU)", flush=True)
            for name, tree in trees.items():
                for phase, seconds in run_phases(tree, events, roster, as_of).items():
                    split[name][phase].append(seconds)
    rows = []
    for name in trees:
        rows.append(
            [
                f"leap replay ({name}), whole command",
                median(wall[name]),
                count / median(wall[name]),
                median(cpu[name]),
                runs,
            ]
        )
        rows += [
            [f"  in-process: {phase}", median(s), count / median(s), "", runs]
            for phase, s in split[name].items()
        ]
    print_table(
        f"Replay: {count:,} events, {students:,} students, {args.days} days (medians)",
        ["what", "seconds", "events/s", "CPU seconds", "runs"],
        rows,
    )


if __name__ == "__main__":
    main()
