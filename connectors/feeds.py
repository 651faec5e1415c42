"""File feeds: a source system's CSV or JSON-lines export, mapped to ActivityEvents.

Universities can export logons, submissions, lecture-capture views, attendance registers
and library loans long before anyone builds an API connector, so each feed is a small
declarative :class:`FeedSpec`: which columns hold what, how to read the times, which rows
to leave out, and how to derive a deterministic ``event_id`` from the row's own identity
(re-importing a file re-sends the same ids, which the worker de-duplicates). A TOML
mapping file overrides column names and formats, so a university can feed its own export.

A row either becomes an event, is *skipped* (a filter says it is not student activity:
machine logons, absences), or is *rejected* (``bad_row``, ``bad_time``, ``bad_number``,
``bad_value``, ``unmapped_user`` or a codec reason) and parked on the dead-letter topic
with its ``file:line``. Either way the rest of the file still goes in.
"""

from __future__ import annotations

import csv
import json
import re
import string
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.identity import IdentityMap
from connectors.metrics import READ
from connectors.publisher import Rejected
from schemas.codec import ACTIVITY_EVENT, InvalidRecord

__all__ = [
    "FEEDS",
    "METRICS_CONNECTOR",
    "Drop",
    "FeedError",
    "FeedReader",
    "FeedSpec",
    "FeedSummary",
    "Keep",
    "Skipped",
    "load_mapping",
]

#: The ``connector`` label of feed imports' leap_connector_* metrics.
METRICS_CONNECTOR = "feed"

SOURCES = frozenset(
    next(f for f in ACTIVITY_EVENT.definition["fields"] if f["name"] == "source")["type"]["symbols"]
)
FORMATS = ("csv", "jsonl")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
MAPPING_KEYS = frozenset({"columns", "event_id", "time_format", "timezone", "format", "delimiter"})
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0", ""})  # blank: exports leave "not late" empty


class FeedError(ValueError):
    """The spec, mapping or file header is unusable: nothing in the file could be mapped."""


class Skipped(Exception):
    """A row that is not student activity (a filter said so); counted, not an error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Keep:
    """Only rows whose ``field`` is one of ``values`` (any case) become events.

    Other values are skipped as ``{field}_{value}``. With ``skip``, only those are skipped
    and any other value is a ``bad_value``: an unknown status is a typo, not an absence.
    """

    field: str
    values: frozenset[str]
    skip: frozenset[str] | None = None

    def check(self, value: str) -> None:
        folded = value.casefold()
        if folded in self.values:
            return
        if self.skip is None or folded in self.skip:
            raise Skipped(f"{self.field}_{folded}")
        raise InvalidRecord("bad_value", f"{self.field} is not one of the known values")


@dataclass(frozen=True)
class Drop:
    """Rows whose ``field`` matches ``pattern`` (the whole value, any case) are skipped."""

    field: str
    pattern: str
    reason: str

    def check(self, value: str) -> None:
        if re.fullmatch(self.pattern, value, re.IGNORECASE):
            raise Skipped(self.reason)


@dataclass(frozen=True)
class FeedSpec:
    """How one kind of export maps to ActivityEvents; fields are logical names.

    ``columns`` maps each logical field to the file's column (always ``user`` and
    ``time``). ``event_id`` is a template over the fields, where ``{time}`` is the
    normalised UTC instant, so a re-export in another time format keeps its ids.
    Naive times are local times in ``timezone`` (default: LEAP_TIMEZONE).
    """

    name: str
    source: str
    action: str
    summary: str
    columns: Mapping[str, str]
    event_id: str
    quantity: str | None = None
    attributes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # yes/no fields, kept as "true"/"false"
    keep: tuple[Keep, ...] = ()
    drop: tuple[Drop, ...] = ()
    time_format: str | None = None  # strptime format; None: ISO 8601
    timezone: str | None = None
    format: str | None = None  # csv or jsonl; None: from the file's extension
    delimiter: str = ","
    hash_event_id: bool = False  # for ids that would reveal too much (what someone borrowed)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise FeedError(f"{self.name}: source must be one of {sorted(SOURCES)}")
        if self.format not in (None, *FORMATS):
            raise FeedError(f"{self.name}: format must be one of {FORMATS}")
        if len(self.delimiter) != 1:
            raise FeedError(f"{self.name}: delimiter must be one character")
        try:
            parsed = list(string.Formatter().parse(self.event_id))
        except ValueError as exc:
            raise FeedError(f"{self.name}: event_id template: {exc}") from None
        placeholders = {name for _, name, _, _ in parsed if name}
        used = {
            "user",
            "time",
            *placeholders - {"time"},
            *((self.quantity,) if self.quantity else ()),
            *self.attributes,
            *self.flags,
            *(rule.field for rule in self.rules),
        }
        if missing := sorted(used - set(self.columns)):
            raise FeedError(f"{self.name}: no column given for {', '.join(missing)}")
        if unused := sorted(set(self.columns) - used):
            raise FeedError(f"{self.name}: columns {', '.join(unused)} are not used")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise FeedError(f"{self.name}: unknown time zone {self.timezone!r}") from None

    @property
    def rules(self) -> tuple[Keep | Drop, ...]:
        return (*self.drop, *self.keep)

    @cached_property
    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def with_mapping(self, mapping: Mapping[str, Any]) -> FeedSpec:
        """This spec with a university's overrides (see :func:`load_mapping`)."""
        if unknown := sorted(set(mapping) - MAPPING_KEYS):
            raise FeedError(f"unknown mapping keys {unknown}; allowed: {sorted(MAPPING_KEYS)}")
        columns = mapping.get("columns", {})
        if not isinstance(columns, Mapping) or not all(
            isinstance(v, str) for v in columns.values()
        ):
            raise FeedError("[columns] must map field names to column names (strings)")
        scalars = {k: v for k, v in mapping.items() if k != "columns"}
        if not all(isinstance(v, str) for v in scalars.values()):
            raise FeedError(f"{', '.join(sorted(scalars))} must be strings")
        return replace(self, columns={**self.columns, **columns}, **scalars)

    def file_format(self, path: Path) -> str:
        if self.format is not None:
            return self.format
        return "jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "csv"

    def to_event(
        self,
        row: Mapping[str, str],
        resolve: Callable[[str], str | None],
        zone: ZoneInfo,
        received_at: datetime,
    ) -> dict[str, Any]:
        """The ActivityEvent of one row; raises :class:`Skipped` or :class:`InvalidRecord`.

        Filters run before the identity look-up, so machine accounts and absences are
        never counted as unmapped users.
        """
        values: dict[str, str] = {}
        for name, column in self.columns.items():
            values[name] = (row.get(column) or "").strip()
            if not values[name] and name not in self.flags:
                raise InvalidRecord("bad_row", f"{column} is missing or empty")
        for rule in self.rules:
            rule.check(values[rule.field])
        for keep in self.keep:
            values[keep.field] = values[keep.field].casefold()
        zone = self.zone or zone
        instant = _parse_time(values["time"], self.columns["time"], self.time_format, zone)
        for name in self.flags:
            values[name] = _parse_flag(values[name], self.columns[name])
        quantity = 1.0
        if self.quantity is not None:
            quantity = _parse_quantity(values[self.quantity], self.columns[self.quantity])
        student_id = resolve(values["user"])
        if student_id is None:
            raise InvalidRecord("unmapped_user", f"{self.columns['user']} is not in the identities")
        event_id = self.event_id.format_map({**values, "time": _format_instant(instant)})
        if self.hash_event_id:
            event_id = f"{self.source}:{sha256(event_id.encode()).hexdigest()[:40]}"
        record = {
            "event_id": event_id,
            "student_id": student_id,
            "source": self.source,
            "action": self.action,
            "occurred_at": instant,
            "quantity": quantity,
            "course_id": None,
            "received_at": received_at,
            "attributes": {name: values[name] for name in self.attributes},
        }
        ACTIVITY_EVENT.validate(record)  # a bad record must be a reject, not a failed import
        return record


FEEDS: dict[str, FeedSpec] = {
    spec.name: spec
    for spec in (
        FeedSpec(
            name="logons",
            source="computer_login",
            action="logged_in",
            summary="Windows security event 4624 export: interactive logons (types 2, 10, 11)",
            columns={
                "user": "TargetUserName",
                "time": "TimeCreated",
                "workstation": "WorkstationName",
                "logon_type": "LogonType",
            },
            event_id="logon:{workstation}:{user}:{time}",
            attributes=("workstation", "logon_type"),
            keep=(Keep("logon_type", frozenset({"2", "10", "11"})),),
            drop=(
                Drop("user", r".*\$", "machine_account"),
                Drop("user", r"ANONYMOUS LOGON", "anonymous_logon"),
                # Windows' own sessions (Desktop Window Manager, font driver) log on as type 2.
                Drop("user", r"(DWM|UMFD)-\d+", "system_account"),
            ),
        ),
        FeedSpec(
            name="submissions",
            source="submission",
            action="submitted",
            summary="Coursework submissions: student, assignment, submitted_at, late (yes/no)",
            columns={
                "user": "student",
                "assignment": "assignment",
                "time": "submitted_at",
                "late": "late",
            },
            event_id="submission:{assignment}:{user}:{time}",
            attributes=("assignment", "late"),
            flags=("late",),
        ),
        FeedSpec(
            name="lecture-capture",
            source="lecture_capture",
            action="watched",
            summary="Lecture-capture viewing (Panopto, Echo360): minutes viewed per session",
            columns={
                "user": "user",
                "session": "session_id",
                "minutes": "minutes_viewed",
                "time": "viewed_at",
            },
            event_id="lecture_capture:{session}:{user}:{time}",
            quantity="minutes",
            attributes=("session",),
        ),
        FeedSpec(
            name="attendance",
            source="attendance",
            action="attended",
            summary="Attendance registers: present and late attend; absent and excused skip",
            columns={
                "user": "student",
                "teaching_event": "teaching_event_id",
                "status": "status",
                "time": "event_start",
            },
            # One mark per student per teaching event: a corrected mark keeps its id.
            event_id="attendance:{teaching_event}:{user}",
            attributes=("teaching_event", "status"),
            keep=(
                Keep("status", frozenset({"present", "late"}), frozenset({"absent", "excused"})),
            ),
        ),
        FeedSpec(
            name="library",
            source="library",
            action="borrowed",
            summary="Library loans: card number, item id, loaned_at (item ids stay out)",
            columns={"user": "card_number", "item": "item_id", "time": "loaned_at"},
            event_id="library:{item}:{user}:{time}",
            hash_event_id=True,
        ),
    )
}


def load_mapping(path: Path) -> dict[str, Any]:
    """A TOML mapping file: ``[columns]`` and ``event_id``, ``time_format``, ``timezone``,
    ``format``, ``delimiter``; :meth:`FeedSpec.with_mapping` checks it."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise FeedError(f"{path}: not valid TOML: {exc}") from None


@dataclass
class FeedSummary:
    read: int = 0
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)


_Row = tuple[int, bytes, dict[str, str] | InvalidRecord]


@dataclass
class FeedReader:
    """Streams one export file into events and rejects, in file order (bounded memory)."""

    path: Path
    spec: FeedSpec
    identities: IdentityMap
    zone: ZoneInfo
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    summary: FeedSummary = field(default_factory=FeedSummary)
    bytes_read: int = 0

    def items(self) -> Iterator[dict[str, Any] | Rejected]:
        with Path(self.path).open("rb") as handle:
            is_csv = self.spec.file_format(self.path) == "csv"
            rows = self._csv_rows(handle) if is_csv else self._json_rows(handle)
            for number, raw, row in rows:
                self.summary.read += 1
                READ.labels(METRICS_CONNECTOR).inc()
                try:
                    if isinstance(row, InvalidRecord):
                        raise row
                    record = self.spec.to_event(
                        row, self.identities.resolve, self.zone, self.received_at
                    )
                except Skipped as skipped:
                    self.summary.skipped[skipped.reason] += 1
                    continue
                except InvalidRecord as exc:
                    self.summary.rejected[exc.reason] += 1
                    yield Rejected(f"{self.path}:{number}", raw, exc.reason, str(exc))
                    continue
                self.summary.events += 1
                yield record

    def _csv_rows(self, handle: BinaryIO) -> Iterator[_Row]:
        """CSV records with the line each starts on and its raw bytes (quoted newlines too)."""
        consumed: list[bytes] = []

        def lines() -> Iterator[str]:
            for raw in handle:
                self.bytes_read += len(raw)
                consumed.append(raw)
                yield raw.decode("utf-8", errors="replace")

        reader = csv.reader(lines(), delimiter=self.spec.delimiter)
        header = [name.strip().removeprefix("\ufeff") for name in next(reader, [])]
        if missing := [c for c in self.spec.columns.values() if c not in header]:
            raise FeedError(
                f"{self.path}: no column {', '.join(map(repr, missing))} for feed "
                f"{self.spec.name} (header: {header}); map yours with --mapping"
            )
        while True:
            start = reader.line_num + 1
            consumed.clear()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, b"".join(consumed), InvalidRecord("bad_row", f"not CSV: {exc}")
                continue
            raw = b"".join(consumed).rstrip(b"\r\n")
            if not any(f.strip() for f in fields):
                continue
            yield start, raw, _csv_row(header, fields, raw)

    def _json_rows(self, handle: BinaryIO) -> Iterator[_Row]:
        for number, raw in enumerate(handle, start=1):
            self.bytes_read += len(raw)
            if raw.strip():
                yield number, raw.rstrip(b"\r\n"), _json_row(raw)


def _csv_row(header: list[str], fields: list[str], raw: bytes) -> dict[str, str] | InvalidRecord:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidRecord("bad_row", "not UTF-8")
    if len(fields) != len(header):
        return InvalidRecord("bad_row", f"{len(fields)} fields, the header has {len(header)}")
    return dict(zip(header, fields, strict=True))


def _json_row(raw: bytes) -> dict[str, str] | InvalidRecord:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        return InvalidRecord("bad_row", f"not JSON: {exc}")
    if not isinstance(obj, dict):
        return InvalidRecord("bad_row", "not a JSON object")
    row: dict[str, str] = {}
    for key, value in obj.items():
        if isinstance(value, bool):
            row[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            row[key] = str(value)
    return row


def _parse_time(value: str, column: str, time_format: str | None, zone: ZoneInfo) -> datetime:
    try:
        parsed = (
            datetime.strptime(value, time_format) if time_format else datetime.fromisoformat(value)
        )
        if parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=zone)  # exports are in local (wall-clock) time
        instant = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        expected = f"format {time_format}" if time_format else "an ISO-8601 time"
        raise InvalidRecord("bad_time", f"{column} is not {expected}") from None
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _parse_quantity(value: str, column: str) -> float:
    try:
        quantity = float(value)
    except ValueError:
        raise InvalidRecord("bad_number", f"{column} is not a number") from None
    if not 0 <= quantity < float("inf"):
        raise InvalidRecord("bad_number", f"{column} must be finite and >= 0")
    return quantity


def _parse_flag(value: str, column: str) -> str:
    folded = value.casefold()
    if folded in _TRUE:
        return "true"
    if folded in _FALSE:
        return "false"
    raise InvalidRecord("bad_value", f"{column} is not yes/no")


def _format_instant(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
