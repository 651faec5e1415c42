"""Memory: what the worker holds per student, at 10,000 and 50,000 students.

The worker's state lives in Faust's in-memory stores (a dict per table, holding the
values the worker writes: ``streams.table_batch``) and in the windows the day closer
keeps (``streams.student_windows``). This builds that state from a synthetic term with
the worker's own code, in a fresh process per measurement so its RSS is not muddied:

* ``daily_totals``: ``"sid|YYYY-MM-DD"`` -> ``DayRecord.to_table()``, counted as
  ``streams.activity`` counts (each touched record written once at a batch's end);
* the day closer's windows: ``StudentWindows.close`` for each partition and day of the
  last ``lateness_horizon_days + 1`` days (slid from one day to the next, as a worker does);
* ``cohort_rounds``: those days' reports, each partition's as the JSON text of
  ``streams.day_close`` lines under ``cohort|day|partition``, and each round's marker
  (``streams.cohort_banding``);
* ``indicators``: each student's state as ``CohortBanding._band`` builds it, stored as
  the code measured stores it;
* ``alerts``: ``{"raised": day}`` for each student inactive for the institution's
  no-engagement days (``leap.alerts.inactive_days``);
* ``partition_clocks``, ``activity_positions``, ``banding_positions``: per partition.

Each is measured twice: as written by a running worker ("written"), and as a worker
holds it after recovering it from the changelog ("recovered"): every record through the
tables' JSON serializer into Faust's real memory store, which also maps each key to its
partition, in a fresh process. It reports RSS growth per student (allocator overhead
included) and each part's deep size, split into key strings, values, and the dicts; and,
apart, the RSS of the reference data (the roster, with ``leap.reference``'s partition
cache), which a worker holds per student whatever its state.

``--baseline-tree DIR`` measures another copy of the code too (e.g. ``git archive REV``
unpacked there), interleaved, for a before/after on the same machine and data.

``--rocksdb CACHE:BUFFER`` (MiB; repeatable, needs ``rocksdict``) also recovers the same
changelog into Faust's real RocksDB store (``rocksdb://``, one database per table and
partition, each with that block cache and write buffer size), then reads every day
record once as the first close does, and reports its RSS growth per student with
RocksDB's own count of its memtables, block cache and table readers, and the bytes on disk.

    python -m bench.memory      # 10k and 50k students, 8 and 28 days each
    python -m bench.memory --quick --baseline-tree /tmp/before
    python -m bench.memory --rocksdb 2048:64 --rocksdb 8:4   # Faust's defaults, and small
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.serializers import codecs
from faust.types import TP

import streams
from bench.common import bench_parser, median, print_table, quick, rss_kib, synthetic_term
from connectors.publisher import Tick
from leap.alerts import inactive_days
from leap.institution import load_institution
from leap.policy import load_policy
from leap.reference import partition_for
from leap.roster import Roster
from leap.scoring import LABELS, local_date, score_cohort, to_milli
from leap.settings import Settings
from streams.day_close import _entry
from streams.day_record import DayRecord, day_sources, event_fingerprint, totals_key
from streams.student_windows import StudentWindows
from streams.table_batch import store_reader

# A tree from before streams.indicator_record stored the state dict itself (imported only
# from the tree measured: the editable install would find this checkout's otherwise).
HAS_INDICATOR_RECORD = Path(streams.__file__).with_name("indicator_record.py").exists()

#: Days of day records kept by the worker: longest window (21, part-time) + lateness (7).
KEPT_DAYS = 28
HERE = Path(__file__).resolve().parent.parent
TABLES = (
    "daily_totals",
    "cohort_rounds",
    "indicators",
    "alerts",
    "partition_clocks",
    "activity_positions",
    "banding_positions",
)


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
        elif hasattr(type(obj), "__slots__"):
            stack.extend(getattr(obj, name) for name in type(obj).__slots__)
    return size


class Term:
    """The synthetic term and the reference data: built before RSS is first read (the
    roster is the worker's reference data, not state held per student)."""

    def __init__(self, students: int, days: int) -> None:
        self.settings = settings = Settings()  # type: ignore[call-arg]
        self.policy, self.n, self.days = load_policy(settings.policy), settings.partitions, days
        people, self.term = synthetic_term(students, days, settings)
        self.roster = Roster(load_institution(settings.institution), self.policy, self.n, people)
        self.last: date = self.term.last_day

    def windows_for(
        self, read: Callable[[str], Any], days: int
    ) -> tuple[StudentWindows, dict[tuple[date, int], dict[str, Any]]]:
        """The day closer's windows after closing the last ``days`` days from the day
        records ``read`` returns (a ``get``), and the last day's summaries."""

        def totals_of(sid: str) -> Any:
            def totals_on(day: date) -> Any:
                value = read(totals_key(sid, day))
                return day_sources(value) if value else None

            return totals_on

        windows = StudentWindows(self.policy)
        summaries: dict[tuple[date, int], dict[str, Any]] = {}
        roster = self.roster
        for back in range(days - 1, -1, -1):
            day = self.last - timedelta(days=back)
            for p in range(self.n):
                on_p = [(s.student_id, roster.window_days(s)) for s in roster.on_partition(p)]
                summaries[(day, p)] = windows.close(p, day, on_p, totals_of)
        return windows, summaries


def written(t: Term) -> tuple[dict[str, dict[Any, Any]], Any]:
    """The tables a running worker holds at the end of the term, and its windows."""
    settings, policy, roster, n, last = t.settings, t.policy, t.roster, t.n, t.last
    totals: dict[str, Any] = {}
    touched: dict[str, DayRecord] = {}
    for item in t.term.items():
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

    rounds_kept = min(t.days, settings.lateness_horizon_days + 1)
    windows, closes = t.windows_for(totals.get, rounds_kept)
    rounds: dict[str, Any] = {}
    for (day, p), summaries in closes.items():
        reports: dict[str, dict[str, list[Any]]] = {}
        for s in roster.on_partition(p):
            reports.setdefault(s.cohort, {})[s.student_id] = _entry(summaries[s.student_id])
        for cohort, lines in reports.items():
            rounds[f"{cohort}|{day.isoformat()}|{p}"] = orjson.dumps(lines).decode()
    for back in range(min(t.days, 62)):  # each round's marker (ROUND_MEMORY: 62 days)
        marker = (
            {"done": True, "parts": [str(p) for p in range(n)]}
            if back < rounds_kept
            else {"done": True}
        )
        for cohort in roster.cohorts():
            rounds[f"{cohort}|{(last - timedelta(days=back)).isoformat()}"] = marker

    # Each student's state as CohortBanding._band builds it: per-day strings formatted once.
    when, version = last.isoformat(), policy.version
    updated_at = f"{when}T02:00:00.123456+00:00"
    cohorts: dict[str, dict[str, float]] = {}
    for p in range(n):
        for sid, summary in closes[(last, p)].items():
            cohorts.setdefault(roster[sid].cohort, {})[sid] = summary.score
    indicators: dict[str, Any] = {}
    for in_cohort in cohorts.values():
        result = score_cohort(in_cohort, policy)
        reference = repr(result.reference_score)
        for sid, score in sorted(in_cohort.items()):
            student, indicator = roster[sid], result.indicators[sid]
            state = {
                "student_id": sid,
                "indicator": indicator,
                "label": LABELS[indicator],
                "score": repr(score),
                "reference_score": reference,
                "as_of": when,
                "window_days": str(roster.window_days(student)),
                "policy_version": version,
                "course": student.course,
                "year": str(student.year),
                "updated_at": updated_at,
            }
            indicators[sid] = _indicator_value(state)

    institution = roster.institution
    threshold, alerts = institution.no_engagement_days, {}
    first = last - timedelta(days=t.days - 1)

    def is_holiday(day: date) -> bool:
        return institution.holiday_on(day) is not None

    for sid in roster:

        def active(d: date, sid: str = sid) -> float:
            return 1.0 if totals.get(totals_key(sid, d)) else 0.0

        if inactive_days(active, last, is_holiday, first, threshold) >= threshold:
            alerts[sid] = {"raised": when}
    clock = {"closed": when, "watermark": 1_790_000_000_000, "since": first.isoformat()}
    tables: dict[str, dict[Any, Any]] = {
        "daily_totals": totals,
        "cohort_rounds": rounds,
        "indicators": indicators,
        "alerts": alerts,
        "partition_clocks": {p: dict(clock) for p in range(n)},
        "activity_positions": {p: 123_456_789 for p in range(n)},
        "banding_positions": {p: 12_345 for p in range(n)},
    }
    return tables, windows


def _indicator_value(state: dict[str, str]) -> Any:
    """The ``indicators`` value of the code measured (a tree before
    ``streams.indicator_record`` stored the state dict itself)."""
    if not HAS_INDICATOR_RECORD:
        return {"indicator": state["indicator"], "as_of": state["as_of"], "state": state}
    from streams.indicator_record import indicator_value

    return indicator_value(state)


def table_sizes(
    name: str, data: dict[Any, Any], by_key: dict[Any, int], seen: set[int]
) -> dict[str, int]:
    """One table's bytes: key strings, values, the dict itself, and the store's map of each
    key to its partition (filled by changelog recovery)."""
    keys = sum(deep_size(k, seen) for k in data)
    values = sum(deep_size(v, seen) for v in data.values())
    return {
        f"{name}.keys": keys,
        f"{name}.values": values,
        f"{name}.dict": sys.getsizeof(data),
        f"{name}.key_partition": sys.getsizeof(by_key) if by_key else 0,
    }


def changelog(tables: dict[str, dict[Any, Any]], n: int) -> Iterator[tuple[str, int, bytes, bytes]]:
    """Each table's records as the changelog carries them (the tables' JSON serializer)."""
    codec = codecs.get_codec("json")
    for name, data in tables.items():
        for key, value in data.items():
            partition = key if isinstance(key, int) else partition_for(key.partition("|")[0], n)
            yield name, partition, codec.dumps(key), codec.dumps(value)


#: RocksDB's own counts of the memory it holds (summed over a store's databases).
ROCKSDB_MEMORY = (
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.block-cache-usage",
    "rocksdb.estimate-table-readers-mem",
)


def empty_stores(n: int, store: str = "memory", datadir: Path | None = None) -> dict[str, Any]:
    """Faust's tables of the worker, each with its real store: in memory, or
    ``rocksdb:CACHE:BUFFER`` (block cache and write buffer per database, MiB)."""
    if store == "memory":
        app = faust.App("bench-memory", store="memory://")
        return {name: app.Table(name, partitions=n) for name in TABLES}
    _, cache, buffer = store.split(":")
    options = {"block_cache_size": int(cache) << 20, "write_buffer_size": int(buffer) << 20}
    app = faust.App("bench-memory", store="rocksdb://", datadir=str(datadir))
    return {name: app.Table(name, partitions=n, options=dict(options)) for name in TABLES}


class _Message:
    """A changelog record as a store's recovery reads it (RocksDB writes the raw bytes and
    each partition's offset)."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: TP, offset: int, key: bytes, value: bytes) -> None:
        self.tp, self.partition, self.offset, self.key, self.value = (
            tp,
            tp.partition,
            offset,
            key,
            value,
        )


class _Event:
    """What Faust's recovery hands a store: a changelog record, key and value decoded."""

    __slots__ = ("key", "message", "value")

    def __init__(self, key: Any, value: Any, message: _Message) -> None:
        self.key, self.value, self.message = key, value, message


def recover(tables: dict[str, Any], path: Path) -> None:
    """Apply a changelog dump (``changelog``) to the tables' stores, as recovery does."""
    codec = codecs.get_codec("json")
    batch: dict[str, list[_Event]] = {name: [] for name in TABLES}
    offsets: dict[TP, int] = {}
    with path.open("rb") as lines:
        for line in lines:
            raw_name, partition, key, value = line.rstrip(b"\n").split(b"\t")
            name = raw_name.decode()
            events = batch[name]
            tp = TP(f"bench-memory-{name}-changelog", int(partition))
            offsets[tp] = offset = offsets.get(tp, -1) + 1
            message = _Message(tp, offset, key, value)
            events.append(_Event(codec.loads(key), codec.loads(value), message))
            if len(events) == 10_000:
                _apply(tables[name], events)
    for name, events in batch.items():
        _apply(tables[name], events)


def _apply(table: Any, events: list[Any]) -> None:
    table.data.apply_changelog_batch(events, table._to_key, table._to_value)
    events.clear()


def measure(students: int, days: int, mode: str, dump: Path, store: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process: the state "written" by a running worker
    (whose changelog is then written to ``dump``), or "recovered" from ``dump`` into
    ``store`` (``empty_stores``)."""
    if store != "memory":
        return measure_rocksdb(students, days, dump, store)
    tables = empty_stores(Settings().partitions) if mode == "recovered" else {}  # type: ignore[call-arg]
    gc.collect()
    start = rss_kib(os.getpid())
    t = Term(students, days)
    gc.collect()
    before = rss_kib(os.getpid())
    if mode == "written":
        written_tables, windows = written(t)
        stores: dict[str, tuple[dict[Any, Any], dict[Any, int]]] = {
            name: (data, {}) for name, data in written_tables.items()
        }
    else:
        recover(tables, dump)
        stores = {
            name: (table.data.data, table.data._key_partition) for name, table in tables.items()
        }
        windows, _ = t.windows_for(stores["daily_totals"][0].get, 1)  # the first close reads all
    gc.collect()
    after = rss_kib(os.getpid())
    seen: set[int] = set()
    figures: dict[str, Any] = {
        "rss": (after - before) * 1024 / students,
        "reference": (before - start) * 1024 / students,
    }
    for name, (data, by_key) in stores.items():
        figures.update({k: v / students for k, v in table_sizes(name, data, by_key, seen).items()})
    figures["windows"] = deep_size(windows._by_partition, seen) / students
    figures["records"] = len(stores["daily_totals"][0]) / students
    if mode == "written":
        with dump.open("wb") as out:
            for name, partition, key, value in changelog(written_tables, t.n):
                out.write(b"%s\t%d\t%s\t%s\n" % (name.encode(), partition, key, value))
    return figures


def measure_rocksdb(students: int, days: int, dump: Path, store: str) -> dict[str, Any]:
    """``measure``'s "recovered" for a RocksDB store (``empty_stores``), in a fresh
    process: the tables' bytes are RocksDB's, so only RSS, RocksDB's counts and the
    windows are reported, each per student."""
    with tempfile.TemporaryDirectory(prefix="leap-memory-rocksdb-") as datadir:
        tables = empty_stores(Settings().partitions, store, Path(datadir))  # type: ignore[call-arg]
        gc.collect()
        start = rss_kib(os.getpid())
        t = Term(students, days)
        gc.collect()
        before = rss_kib(os.getpid())
        recover(tables, dump)
        windows, _ = t.windows_for(store_reader(tables["daily_totals"]), 1)
        gc.collect()
        after = rss_kib(os.getpid())
        totals = tables["daily_totals"].data
        records = sum(totals._size1(db) for db in totals._dbs.values())
        figures: dict[str, Any] = {
            "rss": (after - before) * 1024 / students,
            "reference": (before - start) * 1024 / students,
            "windows": deep_size(windows._by_partition, set()) / students,
            "records": records / students,
            "databases": sum(len(table.data._dbs) for table in tables.values()),
        }
        for prop in ROCKSDB_MEMORY:
            figures[prop] = (
                sum(
                    db.property_int_value(prop) or 0
                    for table in tables.values()
                    for db in table.data._dbs.values()
                )
                / students
            )
        for table in tables.values():
            for db in table.data._dbs.values():
                db.close()
        disk = sum(f.stat().st_size for f in Path(datadir).rglob("*") if f.is_file())
        figures["disk"] = disk / students
    return figures


#: Columns of the summary: (header, parts summed; bytes per student).
SUMMARY = (
    ("daily_totals", ("daily_totals.keys", "daily_totals.values", "daily_totals.dict")),
    ("indicators", ("indicators.keys", "indicators.values", "indicators.dict")),
    ("cohort_rounds", ("cohort_rounds.keys", "cohort_rounds.values", "cohort_rounds.dict")),
    ("alerts", ("alerts.keys", "alerts.values", "alerts.dict")),
    ("windows", ("windows",)),
    ("stores' key→partition", tuple(f"{name}.key_partition" for name in TABLES)),
)


MODES = ("written", "recovered")
PARTS = ("keys", "values", "dict")


def _row_order(item: tuple[tuple[str, str], Any]) -> tuple[int, bool]:
    (mode, label), _ = item
    return MODES.index(mode), label == "now"


def run_child(
    tree: Path, students: int, days: int, mode: str, dump: Path, store: str = "memory"
) -> dict[str, Any]:
    """``measure`` in a fresh interpreter running the code of ``tree`` (``-P``: this
    script's directory, bench/, is not put on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = [str(students), str(days), mode, str(dump), store]
    done = subprocess.run(
        [sys.executable, "-P", __file__, "--child", *child],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
    )
    if done.returncode:
        raise SystemExit(f"measuring {tree} ({mode}) failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--child", nargs=5, metavar=("STUDENTS", "DAYS", "MODE", "DUMP", "STORE"))
    parser.add_argument("--baseline-tree", type=Path, help="Also measure the code there.")
    parser.add_argument("--days", type=int, nargs="+", default=[8, KEPT_DAYS])
    parser.add_argument("--students", type=int, nargs="+")
    parser.add_argument(
        "--rocksdb",
        action="append",
        default=[],
        metavar="CACHE:BUFFER",
        help="Also recover into RocksDB with this block cache and write buffer (MiB).",
    )
    args = parser.parse_args()
    if args.child:
        students, days, mode, dump, store = args.child
        print(json.dumps(measure(int(students), int(days), mode, Path(dump), store)))
        return
    stores = [f"rocksdb:{spec}" for spec in args.rocksdb]
    sizes = args.students or ((2_000, 10_000) if quick(args) else (10_000, 50_000))
    trees = [("now", HERE)]
    if args.baseline_tree:
        trees.insert(0, ("before", args.baseline_tree.resolve()))
    rows, parts, rocks = [], [], []
    with tempfile.TemporaryDirectory(prefix="leap-memory-") as workdir:
        dump = Path(workdir) / "changelog.tsv"
        for students in sizes:
            for days in args.days:
                runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
                for run in range(args.runs or 1):
                    # Alternate which goes first, so neither always runs on a warmer machine.
                    for label, tree in trees if run % 2 == 0 else trees[::-1]:
                        for mode in MODES:  # "recovered" reads the changelog "written" wrote
                            figures = run_child(tree, students, days, mode, dump)
                            runs.setdefault((mode, label), []).append(figures)
                        for store in stores:  # the same changelog, into RocksDB
                            figures = run_child(tree, students, days, "recovered", dump, store)
                            runs.setdefault((store, label), []).append(figures)
                for (store, label), measured in runs.items():
                    if store in MODES:
                        continue
                    f = {k: median([m[k] for m in measured]) for k in measured[0]}
                    rocks.append(
                        [f"{students:,}", days, f"{f['records']:.1f}", store, label]
                        + [f["rss"], f["windows"], f["databases"]]
                        + [f[prop] for prop in ROCKSDB_MEMORY]
                        + [f["disk"]]
                    )
                    print(f"  {rocks[-1]}", flush=True)
                memory = {k: v for k, v in runs.items() if k[0] in MODES}
                for (mode, label), measured in sorted(memory.items(), key=_row_order):
                    f = {k: median([m[k] for m in measured]) for k in measured[0]}
                    rows.append(
                        [f"{students:,}", days, f"{f['records']:.1f}", mode, label]
                        + [f["reference"], f["rss"], sum(f[p] for _, ps in SUMMARY for p in ps)]
                        + [sum(f[p] for p in ps) for _, ps in SUMMARY]
                    )
                    parts.append(
                        [f"{students:,}", days, mode, label]
                        + [f[f"{name}.{part}"] for name in TABLES[:4] for part in PARTS]
                    )
                    print(f"  {rows[-1]}", flush=True)
    print_table(
        "Memory per student held (bytes)",
        ["students", "days", "day records", "state", "code", "reference data (RSS)"]
        + ["RSS growth", "deep total"]
        + [header for header, _ in SUMMARY],
        rows,
    )
    print_table(
        "Where the tables' bytes go (bytes per student: key strings, values, the dict)",
        ["students", "days", "state", "code"]
        + [f"{name} {part}" for name in TABLES[:4] for part in PARTS],
        parts,
    )
    if rocks:
        print_table(
            "RocksDB store, recovered (bytes per student; CACHE:BUFFER MiB per database)",
            [
                *("students", "days", "day records", "store", "code", "RSS growth", "windows"),
                *("databases", "memtables", "block cache", "table readers", "on disk"),
            ],
            rocks,
        )


if __name__ == "__main__":
    main()
