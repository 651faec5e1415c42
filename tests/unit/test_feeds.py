"""File feeds: each built-in spec, its filters, local times, ids, rejects and identities."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.feeds import FEEDS, FeedError, FeedReader, FeedSpec, Skipped, load_mapping
from connectors.identity import IdentityError, IdentityMap
from connectors.publisher import Rejected
from schemas.codec import InvalidRecord, activity_codec

DATA = Path(__file__).parent.parent / "data" / "feeds"
LONDON = ZoneInfo("Europe/London")
RECEIVED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def read(
    feed: str | FeedSpec, file: str | Path, system: str | None = None
) -> tuple[FeedReader, list[dict[str, Any]], list[Rejected]]:
    spec = FEEDS[feed] if isinstance(feed, str) else feed
    identities = IdentityMap.load(DATA / "identities.csv", system)
    reader = FeedReader(DATA / file, spec, identities, LONDON, received_at=RECEIVED)
    items = list(reader.items())
    events = [i for i in items if isinstance(i, dict)]
    rejects = [i for i in items if isinstance(i, Rejected)]
    return reader, events, rejects


def event(
    event_id: str,
    student_id: str,
    source: str,
    action: str,
    occurred_at: datetime,
    attributes: dict[str, str],
    quantity: float = 1.0,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "student_id": student_id,
        "source": source,
        "action": action,
        "occurred_at": occurred_at,
        "quantity": quantity,
        "course_id": None,
        "received_at": RECEIVED,
        "attributes": attributes,
    }


def test_logons_keep_interactive_people_only() -> None:
    reader, events, rejects = read("logons", "logons.csv", system="windows")
    assert events == [
        event(
            "logon:LAB-PC-01:ajones:2026-10-24T08:15:02.123Z",
            "S1000001",
            "computer_login",
            "logged_in",
            utc(2026, 10, 24, 8, 15, 2, 123000),
            {"workstation": "LAB-PC-01", "logon_type": "2"},
        ),
        event(
            "logon:LAB-PC-02:bsmith:2026-10-26T09:00:00.000Z",
            "S1000002",
            "computer_login",
            "logged_in",
            utc(2026, 10, 26, 9),
            {"workstation": "LAB-PC-02", "logon_type": "10"},
        ),
        event(
            "logon:LIB-KIOSK-3:CWU:2026-10-26T10:00:00.000Z",
            "S1000003",
            "computer_login",
            "logged_in",
            utc(2026, 10, 26, 10),
            {"workstation": "LIB-KIOSK-3", "logon_type": "11"},
        ),
    ]
    assert reader.summary.skipped == Counter(
        machine_account=1, anonymous_logon=1, logon_type_3=1, system_account=1
    )
    assert [(r.origin, r.reason) for r in rejects] == [
        (f"{DATA / 'logons.csv'}:9", "unmapped_user")
    ]
    assert rejects[0].raw == b"2026-10-26 11:00:00,dmurphy,LAB-PC-01,2"
    assert reader.summary.read == 8
    assert reader.summary.events == 3
    assert reader.identities.unmapped == {"dmurphy"}
    assert reader.bytes_read == (DATA / "logons.csv").stat().st_size


def test_attendance_present_and_late_attend_absent_and_excused_skip() -> None:
    reader, events, rejects = read("attendance", "attendance.csv")
    assert events == [
        event(
            "attendance:LEC-BS101-W5-1:ajones",
            "S1000001",
            "attendance",
            "attended",
            utc(2026, 10, 26, 9),
            {"teaching_event": "LEC-BS101-W5-1", "status": "present"},
        ),
        event(
            "attendance:LEC-BS101-W5-1:bsmith",
            "S1000002",
            "attendance",
            "attended",
            utc(2026, 10, 26, 9),
            {"teaching_event": "LEC-BS101-W5-1", "status": "late"},
        ),
    ]
    assert reader.summary.skipped == Counter(status_absent=1, status_excused=1)
    origin = str(DATA / "attendance.csv")
    assert [(r.origin, r.reason) for r in rejects] == [
        (f"{origin}:5", "unmapped_user"),
        (f"{origin}:7", "bad_time"),
        (f"{origin}:8", "bad_row"),
    ]
    assert rejects[2].error == "3 fields, the header has 4"
    assert reader.summary.rejected == Counter(unmapped_user=1, bad_time=1, bad_row=1)


def test_unknown_attendance_status_is_a_bad_value_not_an_absence() -> None:
    with pytest.raises(InvalidRecord) as caught:
        to_event("attendance", {"status": "Presnet"})
    assert caught.value.reason == "bad_value"


def test_submissions_carry_assignment_and_late_flag() -> None:
    _, events, rejects = read("submissions", "submissions.csv")
    assert rejects == []
    assert events == [
        event(
            "submission:BS101-ESSAY1:ajones:2026-10-23T15:59:59.000Z",
            "S1000001",
            "submission",
            "submitted",
            utc(2026, 10, 23, 15, 59, 59),
            {"assignment": "BS101-ESSAY1", "late": "false"},
        ),
        event(
            "submission:BS101-ESSAY1:bsmith:2026-10-23T16:20:00.000Z",
            "S1000002",
            "submission",
            "submitted",
            utc(2026, 10, 23, 16, 20),
            {"assignment": "BS101-ESSAY1", "late": "true"},
        ),
        event(
            "submission:BS101-ESSAY1:cwu:2026-10-23T11:00:00.000Z",
            "S1000003",
            "submission",
            "submitted",
            utc(2026, 10, 23, 11),
            {"assignment": "BS101-ESSAY1", "late": "false"},
        ),
    ]


def test_lecture_capture_from_json_lines_counts_minutes() -> None:
    reader, events, rejects = read("lecture-capture", "lecture_capture.jsonl")
    assert events == [
        event(
            "lecture_capture:3f2a9c1e-BS101-W5:ajones:2026-10-25T00:30:00.000Z",
            "S1000001",
            "lecture_capture",
            "watched",
            utc(2026, 10, 25, 0, 30),  # 01:30 happens twice that night: the first (BST)
            {"session": "3f2a9c1e-BS101-W5"},
            quantity=42.5,
        ),
        event(
            "lecture_capture:3f2a9c1e-BS101-W5:bsmith:2026-10-25T20:00:00.000Z",
            "S1000002",
            "lecture_capture",
            "watched",
            utc(2026, 10, 25, 20),
            {"session": "3f2a9c1e-BS101-W5"},
            quantity=12.0,
        ),
    ]
    assert [(r.origin, r.reason) for r in rejects] == [
        (f"{DATA / 'lecture_capture.jsonl'}:4", "bad_number")
    ]
    assert reader.summary.read == 3  # the blank line is not a row


def test_library_loans_keep_what_was_borrowed_out_of_the_event() -> None:
    _, events, rejects = read("library", "library.csv", system="library")
    assert rejects == []
    assert [(e["student_id"], e["source"], e["action"], e["occurred_at"]) for e in events] == [
        ("S1000001", "library", "borrowed", utc(2026, 10, 26, 13, 5)),  # GMT again
        ("S1000002", "library", "borrowed", utc(2026, 10, 26, 13, 10)),
    ]
    for e in events:
        assert e["attributes"] == {}
        assert e["event_id"].startswith("library:")
        assert "BK-" not in e["event_id"] and "2900000" not in e["event_id"]
    assert len({e["event_id"] for e in events}) == 2


def test_every_built_in_event_encodes() -> None:
    codec = activity_codec()
    for feed, file, system in [
        ("logons", "logons.csv", "windows"),
        ("attendance", "attendance.csv", None),
        ("submissions", "submissions.csv", None),
        ("lecture-capture", "lecture_capture.jsonl", None),
        ("library", "library.csv", "library"),
    ]:
        _, events, _ = read(feed, file, system)
        assert events
        assert [codec.decode(codec.encode(e)) for e in events] == events


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-01-15 12:00:00", utc(2026, 1, 15, 12)),  # GMT
        ("2026-07-01 12:00:00", utc(2026, 7, 1, 11)),  # BST
        ("2026-03-29 00:30:00", utc(2026, 3, 29, 0, 30)),  # before the clocks go forward
        ("2026-03-29 02:30:00", utc(2026, 3, 29, 1, 30)),  # after (01:00 became 02:00)
        ("2026-10-25 00:30:00", utc(2026, 10, 24, 23, 30)),  # still BST
        ("2026-10-25 01:30:00", utc(2026, 10, 25, 0, 30)),  # twice that night: the first
        ("2026-10-25 02:30:00", utc(2026, 10, 25, 2, 30)),  # GMT again
        ("2026-10-25T01:30:00+00:00", utc(2026, 10, 25, 1, 30)),  # an offset wins
    ],
)
def test_naive_times_are_london_wall_clock_across_dst(local: str, expected: datetime) -> None:
    assert to_event("logons", {"TimeCreated": local})["occurred_at"] == expected


def test_the_spec_zone_beats_leap_timezone() -> None:
    spec = FEEDS["logons"].with_mapping({"timezone": "America/New_York"})
    row = {**ROWS["logons"], "TimeCreated": "2026-07-01 12:00:00"}
    assert to_event(spec, row)["occurred_at"] == utc(2026, 7, 1, 16)


def test_event_ids_are_the_same_on_every_import_and_every_time_format() -> None:
    first = [e["event_id"] for e in read("logons", "logons.csv", "windows")[1]]
    again = [e["event_id"] for e in read("logons", "logons.csv", "windows")[1]]
    assert first == again
    uk = FEEDS["logons"].with_mapping({"time_format": "%d/%m/%Y %H:%M:%S"})
    row = {**ROWS["logons"], "TimeCreated": "26/10/2026 09:00:00"}
    iso = {**ROWS["logons"], "TimeCreated": "2026-10-26T09:00:00Z"}
    assert to_event(uk, row)["event_id"] == to_event("logons", iso)["event_id"]


@pytest.mark.parametrize(
    ("feed", "change", "reason"),
    [
        ("logons", {"TimeCreated": "yesterday"}, "bad_time"),
        ("logons", {"TimeCreated": "2026-02-30 10:00:00"}, "bad_time"),
        ("logons", {"WorkstationName": " "}, "bad_row"),
        ("logons", {"TargetUserName": "nobody"}, "unmapped_user"),
        ("lecture-capture", {"minutes_viewed": "-3"}, "bad_number"),
        ("lecture-capture", {"minutes_viewed": "nan"}, "bad_number"),
        ("submissions", {"late": "maybe"}, "bad_value"),
        ("submissions", {"assignment": "x" * 250}, "invalid_field"),  # event_id > 200 chars
    ],
)
def test_bad_rows_are_rejected_with_a_reason(
    feed: str, change: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        to_event(feed, change)
    assert caught.value.reason == reason


def test_a_missing_column_in_the_header_stops_the_import(tmp_path: Path) -> None:
    export = tmp_path / "logons.csv"
    export.write_text("TimeCreated,UserName,WorkstationName,LogonType\n")
    with pytest.raises(FeedError, match="TargetUserName"):
        read("logons", export)


def test_a_mapping_adapts_a_feed_to_a_universitys_own_export(tmp_path: Path) -> None:
    export = tmp_path / "loans.csv"
    export.write_text(
        "Loan ID;Borrower;Date\n"
        'L-1;"29000001";26/10/2026 13:05\n'
        'L-2;"29000002";"26/10/2026\n13:10"\n'  # a quoted newline: still one row
        "L-3;29000009;26/10/2026 13:15\n"
        "L-4;29000002;2026-10-26 13:20\n"
    )
    spec = FEEDS["library"].with_mapping(
        {
            "columns": {"user": "Borrower", "time": "Date", "item": "Loan ID"},
            "time_format": "%d/%m/%Y %H:%M",
            "delimiter": ";",
        }
    )
    _, events, rejects = read(spec, export)
    assert [e["occurred_at"] for e in events] == [
        utc(2026, 10, 26, 13, 5),
        utc(2026, 10, 26, 13, 10),
    ]
    # the second row spans lines 3-4, so the third starts on line 5
    assert [(r.origin.rsplit(":", 1)[1], r.reason) for r in rejects] == [
        ("5", "unmapped_user"),
        ("6", "bad_time"),
    ]
    assert rejects[1].raw == b"L-4;29000002;2026-10-26 13:20"


def test_a_mapping_file_is_toml(tmp_path: Path) -> None:
    path = tmp_path / "feed.toml"
    path.write_text('time_format = "%d/%m/%Y %H:%M"\n[columns]\nuser = "Username"\n')
    spec = FEEDS["logons"].with_mapping(load_mapping(path))
    assert spec.columns["user"] == "Username"
    assert spec.time_format == "%d/%m/%Y %H:%M"
    path.write_text("columns = {user = }\n")
    with pytest.raises(FeedError, match="not valid TOML"):
        load_mapping(path)


def test_a_mapping_can_key_events_on_a_record_id() -> None:
    spec = FEEDS["library"].with_mapping(
        {"columns": {"loan": "loan_id"}, "event_id": "loan:{loan}:{item}:{user}"}
    )
    row = {**ROWS["library"], "loan_id": "L-77"}
    assert to_event(spec, row)["event_id"].startswith("library:")


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"colums": {}}, "unknown mapping keys"),
        ({"columns": {"user": 3}}, "must map field names"),
        ({"columns": {"extra": "Extra"}}, "not used"),
        ({"event_id": "logon:{host}"}, "no column given for host"),
        ({"event_id": "logon:{user"}, "event_id template"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"format": "xlsx"}, "format must be one of"),
    ],
)
def test_bad_mappings_are_refused(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(FeedError, match=message):
        FEEDS["logons"].with_mapping(mapping)


def test_identities_are_case_insensitive_and_never_guessed() -> None:
    people = IdentityMap.load(DATA / "identities.csv", "windows")
    assert people.resolve("AJONES") == "S1000001"
    assert people.resolve(" bsmith ") == "S1000002"
    assert people.resolve("cwu") == "S1000003"  # no system: applies to every system
    assert people.resolve("29000001") is None  # the library's, not Windows'
    assert people.resolve("ajone") is None
    assert people.unmapped == {"29000001", "ajone"}
    assert len(IdentityMap.load(DATA / "identities.csv")) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,student_id\na,S1\n", "no source_id column"),
        ("source_id,student_id\na,jo@example.ac.uk\n", ":2: student_id is not a valid"),
        ("source_id,student_id\nA,S1\na,S2\n", ":3: source id mapped to two students"),
        ("source_id,student_id\n,S1\n", ":2: empty source_id"),
    ],
)
def test_untrustworthy_identity_files_are_refused(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "ids.csv"
    path.write_text(content)
    with pytest.raises(IdentityError, match=message):
        IdentityMap.load(path)


def test_a_skipped_row_is_not_an_unmapped_user() -> None:
    people = IdentityMap.load(DATA / "identities.csv")
    with pytest.raises(Skipped):
        FEEDS["logons"].to_event(
            {**ROWS["logons"], "TargetUserName": "KIOSK$"}, people.resolve, LONDON, RECEIVED
        )
    assert people.unmapped == set()


ROWS: dict[str, dict[str, str]] = {
    "logons": {
        "TimeCreated": "2026-10-26 09:00:00",
        "TargetUserName": "ajones",
        "WorkstationName": "LAB-PC-01",
        "LogonType": "2",
    },
    "attendance": {
        "student": "ajones",
        "teaching_event_id": "LEC-1",
        "status": "present",
        "event_start": "2026-10-26 09:00",
    },
    "submissions": {
        "student": "ajones",
        "assignment": "ESSAY1",
        "submitted_at": "2026-10-23 17:00",
        "late": "no",
    },
    "lecture-capture": {
        "user": "ajones",
        "session_id": "s1",
        "minutes_viewed": "3",
        "viewed_at": "2026-10-25 20:00",
    },
    "library": {"card_number": "29000001", "item_id": "BK-1", "loaned_at": "2026-10-26 13:05"},
}


def to_event(feed: str | FeedSpec, change: dict[str, str]) -> dict[str, Any]:
    """One row of ``feed`` (a good sample row with ``change`` applied) as an event."""
    spec = FEEDS[feed] if isinstance(feed, str) else feed
    row = {**ROWS[spec.name], **change}
    people = IdentityMap.load(DATA / "identities.csv")
    return spec.to_event(row, people.resolve, LONDON, RECEIVED)
