"""Students' reference data (course, year, mode) and which partition each lives on."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aiokafka.partitioner import murmur2

from schemas.ids import is_valid_student_id

__all__ = [
    "REQUIRED_COLUMNS",
    "Student",
    "load_students",
    "partition_for",
    "student_from_record",
    "student_to_record",
    "students_by_partition",
]

REQUIRED_COLUMNS = ("student_id", "course", "year", "mode", "department", "tutor_id")
#: Optional column; absent or empty means "active".
STATUS_COLUMN = "status"
MODES = ("full-time", "part-time")


@dataclass(frozen=True)
class Student:
    student_id: str
    course: str
    year: int
    mode: str
    department: str
    tutor_id: str
    #: e.g. active, interrupted, placement: some statuses get no indicator (leap.institution)
    status: str = "active"

    @property
    def cohort(self) -> str:
        """Course + year of study: the group a student is compared with."""
        return f"{self.course}|{self.year}"


def load_students(path: Path) -> dict[str, Student]:
    """Read STUDENTS.csv; a bad row stops the load with its line number and the fix."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"cannot read students file {path}: {exc.strerror} "
            "(set LEAP_STUDENTS to a CSV with columns " + ",".join(REQUIRED_COLUMNS) + ")"
        ) from exc
    reader = csv.DictReader(text.splitlines())
    missing = set(REQUIRED_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    students: dict[str, Student] = {}
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row.values() or None in row:
            raise ValueError(f"{where}: expected {len(reader.fieldnames or ())} fields")
        student = _student(row, where)
        students[student.student_id] = student
    return students


def student_to_record(student: Student) -> dict[str, str | int]:
    """The JSON value of a student on the reference topic (key: the student id)."""
    return dataclasses.asdict(student)


def student_from_record(record: Mapping[str, object]) -> Student:
    """Validated as strictly as a CSV row: the topic is written by other tools too."""
    return _student({k: str(v) for k, v in record.items()}, "reference record")


def _student(row: Mapping[str, str], where: str) -> Student:
    sid = row["student_id"].strip()
    if not is_valid_student_id(sid):
        raise ValueError(f"{where}: student_id {sid!r} is not a valid id")
    try:
        year = int(row["year"])
    except ValueError:
        raise ValueError(f"{where}: year {row['year']!r} is not a whole number") from None
    mode = row["mode"].strip()
    if mode not in MODES:
        raise ValueError(f"{where}: mode {mode!r} must be one of {MODES}")
    return Student(
        student_id=sid,
        course=row["course"].strip(),
        year=year,
        mode=mode,
        department=row["department"].strip(),
        tutor_id=row["tutor_id"].strip(),
        status=(row.get(STATUS_COLUMN) or "active").strip(),
    )


#: Enough for every student of a large university; ~180 bytes each (the id kept too).
PARTITION_CACHE_SIZE = 1 << 16


def partition_for(student_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner puts this student's events on."""
    return _key_hash(student_id) % partitions


@lru_cache(maxsize=PARTITION_CACHE_SIZE)
def _key_hash(student_id: str) -> int:
    """Cached: the worker checks every event's partition, and aiokafka's murmur2 is pure
    Python (a few µs; a hit is ~0.3 µs; one str argument is its own cache key)."""
    return murmur2(student_id.encode()) & 0x7FFFFFFF


def students_by_partition(students: Iterable[Student], partitions: int) -> dict[int, list[Student]]:
    by_partition: dict[int, list[Student]] = {p: [] for p in range(partitions)}
    for student in students:
        by_partition[partition_for(student.student_id, partitions)].append(student)
    return by_partition
