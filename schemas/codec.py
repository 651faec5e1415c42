"""Avro encoding of LEAP's contracts, with or without a Confluent schema registry.

Every record crosses Kafka in one of two framings, and ``decode`` accepts both so a
deployment can move to (or off) a registry without draining topics:

* Avro single-object encoding: ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint
  of the schema's Parsing Canonical Form + the Avro body. Needs no service.
* Confluent wire format: ``00`` + the 4-byte big-endian registry schema id + the Avro body.

Bad input of any kind surfaces as :class:`InvalidRecord`, whose ``reason`` the worker puts
on the dead-letter record, so nothing else may escape ``decode`` for bad bytes.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

import httpx
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.types import Schema
from fastavro.validation import ValidationError, validate

from schemas.ids import is_valid_student_id

__all__ = [
    "ACTIVITY_EVENT",
    "ENGAGEMENT_ALERT",
    "INDICATOR_CHANGE",
    "REASONS",
    "AvroCodec",
    "Contract",
    "InvalidRecord",
    "SchemaRegistryError",
    "activity_codec",
    "activity_from_json",
    "activity_to_json",
    "engagement_alert_codec",
    "indicator_change_codec",
]

#: Every ``InvalidRecord.reason`` the codec raises (the worker adds reasons of its own).
REASONS = (
    "not_avro",  # bad magic, truncated or undecodable body
    "unknown_schema",  # fingerprint or registry id not known
    "schema_invalid",  # does not match the contract's schema
    "missing_student",  # no student_id
    "invalid_field",  # a value the schema allows but LEAP can't use
    "oversized",  # more bytes than the codec's max_bytes
)

_SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_CONFLUENT_MAGIC = b"\x00"
_REGISTRY_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_MAX_EVENT_ID_CHARS = 200


class InvalidRecord(Exception):
    """A record LEAP must not process; ``reason`` is machine-readable, the message is not."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SchemaRegistryError(RuntimeError):
    """The registry could not be used (down, refused the schema): retry, don't dead-letter."""


@dataclass(frozen=True)
class Contract:
    """One schema, loaded once, with its fingerprint and the domain rules Avro can't express."""

    definition: dict[str, Any]
    parsed: Schema
    fingerprint: bytes
    check: Callable[[Mapping[str, Any]], None]

    @property
    def name(self) -> str:
        return f"{self.definition['namespace']}.{self.definition['name']}"

    def validate(self, record: object) -> None:
        """Raise :class:`InvalidRecord` unless ``record`` is encodable and makes sense."""
        if not isinstance(record, Mapping):
            raise InvalidRecord("schema_invalid", f"{self.name} must be a mapping")
        _check_student(record)  # first: a missing student is its own dead-letter reason
        try:
            validate(record, self.parsed, strict=True)
        except ValidationError as exc:
            # Name the fields, never the values: messages end up in logs.
            fields = sorted({error.field for error in exc.errors})
            raise InvalidRecord(
                "schema_invalid", f"does not match {self.name}: {', '.join(fields)}"
            ) from None
        self.check(record)

    def check_domain(self, record: Mapping[str, Any]) -> None:
        """The rules Avro cannot express (a student id's shape, a finite quantity...)."""
        _check_student(record)
        self.check(record)


def _check_student(record: Mapping[str, Any]) -> None:
    student_id = record.get("student_id")
    if student_id is None or student_id == "":
        raise InvalidRecord("missing_student", "student_id is missing")
    if isinstance(student_id, str) and not _valid_student_id(student_id):
        raise InvalidRecord("invalid_field", "student_id is not a valid student id")


#: Ids already found valid. A student's id comes with every one of their events; a set
#: answers in a third of ``functools.lru_cache``'s time. Bounded: past it, ids are checked.
_VALID_STUDENT_IDS: set[str] = set()
_MAX_REMEMBERED_IDS = 1 << 17


def _valid_student_id(student_id: str) -> bool:
    if student_id in _VALID_STUDENT_IDS:
        return True
    if not is_valid_student_id(student_id):
        return False
    if len(_VALID_STUDENT_IDS) < _MAX_REMEMBERED_IDS:
        _VALID_STUDENT_IDS.add(student_id)
    return True


def _check_aware(record: Mapping[str, Any], field: str) -> None:
    # fastavro would encode a naive datetime as the *machine's* local time.
    value = record.get(field)
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise InvalidRecord("invalid_field", f"{field} has no time zone")


def _check_activity(record: Mapping[str, Any]) -> None:
    _check_activity_values(record)
    _check_aware(record, "occurred_at")
    _check_aware(record, "received_at")


def _check_activity_values(record: Mapping[str, Any]) -> None:
    if not 0 < len(record["event_id"]) <= _MAX_EVENT_ID_CHARS:
        raise InvalidRecord("invalid_field", f"event_id must be 1-{_MAX_EVENT_ID_CHARS} chars")
    quantity = record.get("quantity", 1.0)
    try:
        usable = math.isfinite(quantity) and quantity >= 0
    except OverflowError:  # an int beyond float range
        usable = False
    if not usable:
        raise InvalidRecord("invalid_field", "quantity must be finite and >= 0")


def _check_indicator_change(record: Mapping[str, Any]) -> None:
    _check_aware(record, "emitted_at")


def _check_alert(record: Mapping[str, Any]) -> None:
    _check_aware(record, "emitted_at")


def _load(filename: str, check: Callable[[Mapping[str, Any]], None]) -> Contract:
    definition = json.loads(resources.files("schemas").joinpath(filename).read_text("utf-8"))
    canonical = to_parsing_canonical_form(definition)
    # fastavro renders the 64-bit fingerprint as hex of its little-endian bytes.
    return Contract(
        definition=definition,
        parsed=parse_schema(definition),
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        check=check,
    )


ACTIVITY_EVENT = _load("activity_event.avsc", _check_activity)
INDICATOR_CHANGE = _load("indicator_change.avsc", _check_indicator_change)
ENGAGEMENT_ALERT = _load("engagement_alert.avsc", _check_alert)


class AvroCodec:
    """Encodes and decodes one contract; framing follows whether a registry is configured.

    Registry look-ups are synchronous and cached per codec: call :meth:`prepare` at startup
    so the hot path never waits on HTTP for this codec's own schema.
    """

    def __init__(
        self,
        contract: Contract,
        topic: str,
        *,
        registry_url: str | None = None,
        max_bytes: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.contract = contract
        self.subject = f"{topic}-value"
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.max_bytes = max_bytes
        self._timeout = timeout
        self._schema_id: int | None = None
        self._writers_by_id: dict[int, Schema] = {}

    def prepare(self) -> None:
        """Register this codec's schema now (no-op without a registry)."""
        if self.registry_url is not None:
            self._own_schema_id()

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Validate and frame ``record``; raises :class:`InvalidRecord` if it is not fit."""
        body = io.BytesIO()
        try:
            # Fast path: the writer itself refuses what does not fit the schema, so full
            # schema validation (two thirds of encode time) runs only to explain a failure.
            self.contract.check_domain(record)
            schemaless_writer(body, self.contract.parsed, record)
        except InvalidRecord:
            raise
        except Exception as exc:  # fastavro raises TypeError, ValueError, AttributeError, ...
            self.contract.validate(record)  # names the fields at fault
            raise InvalidRecord("schema_invalid", f"cannot encode: {type(exc).__name__}") from None
        if self.registry_url is None:
            header = _SINGLE_OBJECT_MAGIC + self.contract.fingerprint
        else:
            header = _CONFLUENT_MAGIC + self._own_schema_id().to_bytes(4, "big")
        data = header + body.getvalue()
        self._check_size(data)
        return data

    def decode(self, data: bytes) -> dict[str, Any]:
        """Unframe, read and validate one message of either framing."""
        if not data:
            raise InvalidRecord("not_avro", "empty message")
        self._check_size(data)
        writer, body = self._writer_and_body(data)
        reader = None if writer is self.contract.parsed else self.contract.parsed
        stream = io.BytesIO(body)
        try:
            record = schemaless_reader(stream, writer, reader)
        except SchemaResolutionError:
            raise InvalidRecord(
                "schema_invalid", f"writer schema does not resolve to {self.contract.name}"
            ) from None
        except Exception as exc:  # fastavro raises EOFError, ValueError, OverflowError, ...
            raise InvalidRecord("not_avro", f"undecodable body: {type(exc).__name__}") from None
        if stream.tell() != len(body):
            raise InvalidRecord("not_avro", "trailing bytes after the record")
        if not isinstance(record, dict):
            raise InvalidRecord("schema_invalid", f"not a {self.contract.name} record")
        # A record read with the schema conforms to it by construction; re-validating it
        # against the schema cost a third of decode time, so only the domain rules run.
        self.contract.check_domain(record)
        return record

    def _check_size(self, data: bytes) -> None:
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise InvalidRecord("oversized", f"{len(data)} bytes > {self.max_bytes}")

    def _writer_and_body(self, data: bytes) -> tuple[Schema, bytes]:
        if data[:2] == _SINGLE_OBJECT_MAGIC:
            if len(data) < 10:
                raise InvalidRecord("not_avro", "truncated single-object header")
            if data[2:10] != self.contract.fingerprint:
                raise InvalidRecord("unknown_schema", f"fingerprint {data[2:10].hex()} unknown")
            return self.contract.parsed, data[10:]
        if data[:1] == _CONFLUENT_MAGIC:
            if len(data) < 5:
                raise InvalidRecord("not_avro", "truncated Confluent header")
            return self._writer_for_id(int.from_bytes(data[1:5], "big")), data[5:]
        raise InvalidRecord("not_avro", f"unknown magic byte {data[0]:#04x}")

    def _own_schema_id(self) -> int:
        if self._schema_id is None:
            response = self._registry(
                "POST",
                f"/subjects/{quote(self.subject, safe='')}/versions",
                json={"schema": json.dumps(self.contract.definition)},
            )
            try:
                response.raise_for_status()
                self._schema_id = int(response.json()["id"])
            except (httpx.HTTPStatusError, ValueError, KeyError, TypeError) as exc:
                raise SchemaRegistryError(f"registering {self.subject}: {exc}") from exc
            self._writers_by_id[self._schema_id] = self.contract.parsed
        return self._schema_id

    def _writer_for_id(self, schema_id: int) -> Schema:
        writer = self._writers_by_id.get(schema_id)
        if writer is not None:
            return writer
        if self.registry_url is None:
            raise InvalidRecord("unknown_schema", f"registry id {schema_id}, but no registry")
        response = self._registry("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404:
            raise InvalidRecord("unknown_schema", f"registry has no schema id {schema_id}")
        if response.status_code != 200:
            raise SchemaRegistryError(
                f"fetching schema {schema_id}: HTTP {response.status_code} {response.text}"
            )
        try:
            payload = response.json()
            if payload.get("schemaType", "AVRO") != "AVRO":
                raise ValueError(payload["schemaType"])
            writer = parse_schema(json.loads(payload["schema"]))
        except Exception as exc:  # not JSON, not Avro, not a valid schema
            raise InvalidRecord(
                "unknown_schema", f"registry id {schema_id} is not a usable Avro schema: {exc}"
            ) from None
        self._writers_by_id[schema_id] = writer
        return writer

    def _registry(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self.registry_url is not None
        try:
            with httpx.Client(base_url=self.registry_url, timeout=self._timeout) as client:
                return client.request(
                    method,
                    path,
                    headers={
                        "Accept": _REGISTRY_CONTENT_TYPE,
                        "Content-Type": _REGISTRY_CONTENT_TYPE,
                    },
                    **kwargs,
                )
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(f"schema registry {method} {path}: {exc}") from exc


def activity_codec(
    registry_url: str | None = None, topic: str = "leap.activity", *, max_bytes: int | None = None
) -> AvroCodec:
    """The codec for ``leap.activity``; pass ``settings.max_event_bytes`` as ``max_bytes``."""
    return AvroCodec(ACTIVITY_EVENT, topic, registry_url=registry_url, max_bytes=max_bytes)


def indicator_change_codec(
    registry_url: str | None = None,
    topic: str = "leap.indicator-changes",
    *,
    max_bytes: int | None = None,
) -> AvroCodec:
    """The codec for ``leap.indicator-changes``."""
    return AvroCodec(INDICATOR_CHANGE, topic, registry_url=registry_url, max_bytes=max_bytes)


_ACTIVITY_FIELDS = tuple(field["name"] for field in ACTIVITY_EVENT.definition["fields"])
_ACTIVITY_FIELD_SET = frozenset(_ACTIVITY_FIELDS)
_ACTIVITY_DEFAULTS: dict[str, Any] = {
    field["name"]: field["default"]
    for field in ACTIVITY_EVENT.definition["fields"]
    if "default" in field
}
_INSTANT_FIELDS = ("occurred_at", "received_at")


def activity_from_json(obj: object, *, reuse: bool = False) -> dict[str, Any]:
    """Turn one importer JSON-lines object into a validated, encodable ActivityEvent.

    Unknown keys are rejected (a misspelt optional field would otherwise be silently
    defaulted), and so are naive timestamps, whose zone we can't know. ``obj`` is left as
    it was, unless the caller gives it up with ``reuse`` (a line just parsed): then the
    usual line becomes the record in place, saving a copy.
    """
    if type(obj) is dict:
        record = _plain_activity(obj, reuse)
        if record is not None:
            return record
    if not isinstance(obj, Mapping):
        raise InvalidRecord("schema_invalid", "an activity must be a JSON object")
    if not _ACTIVITY_FIELD_SET.issuperset(obj):
        unknown = sorted(str(key) for key in obj if key not in _ACTIVITY_FIELD_SET)
        raise InvalidRecord("schema_invalid", f"unknown fields: {', '.join(unknown)}")
    if len(obj) == len(_ACTIVITY_FIELDS):  # every field given (the usual line): no defaults
        record = dict(obj)  # a copy: the caller's object is left as it was
    else:
        # A fresh attributes dict: the schema's default {} must not be shared between records.
        given = {**_ACTIVITY_DEFAULTS, "attributes": {}, **obj}
        record = {name: given[name] for name in _ACTIVITY_FIELDS if name in given}
    for field in _INSTANT_FIELDS:
        if record.get(field) is not None:
            record[field] = _parse_instant(record[field], field)
    record["quantity"] = _parse_quantity(record["quantity"])
    if _plainly_valid_activity(record):
        # The schema check would pass: skip it. So would the time-zone checks, as both
        # instants came from _parse_instant, which returns UTC or refuses.
        _check_student(record)
        _check_activity_values(record)
    else:
        ACTIVITY_EVENT.validate(record)  # names the fields at fault
    return record


_SOURCES = frozenset(
    next(f["type"]["symbols"] for f in ACTIVITY_EVENT.definition["fields"] if f["name"] == "source")
)


def _plain_activity(obj: dict[str, Any], reuse: bool = False) -> dict[str, Any] | None:
    """The usual line, accepted in one pass: every field given, of exactly the type the
    schema takes, valid, and both instants in UTC at millisecond precision. Returns None
    for anything else, which the full path then accepts or rejects with its reasons.

    The full path converts and checks field by field, then checks the types again (it
    cost half of ``leap replay``'s parsing, measured with bench/replay.py).
    """
    if len(obj) != len(_ACTIVITY_FIELDS):
        return None
    try:  # nine keys, and each of the nine fields among them: no other key
        event_id, student_id, source = obj["event_id"], obj["student_id"], obj["source"]
        action, occurred, quantity = obj["action"], obj["occurred_at"], obj["quantity"]
        course, received, attributes = obj["course_id"], obj["received_at"], obj["attributes"]
    except KeyError:
        return None
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= _MAX_EVENT_ID_CHARS
        and type(student_id) is str
        and student_id
        and (student_id in _VALID_STUDENT_IDS or _valid_student_id(student_id))
        and type(source) is str
        and source in _SOURCES
        and type(action) is str
        and type(quantity) is float
        and 0.0 <= quantity < math.inf  # finite and >= 0; NaN compares False
        and (course is None or type(course) is str)
        and type(attributes) is dict
        and (
            not attributes or all(type(k) is str and type(v) is str for k, v in attributes.items())
        )
    ):
        return None
    occurred = _plain_instant(occurred)
    if occurred is None:
        return None
    if received is not None:
        received = _plain_instant(received)
        if received is None:
            return None
    record = obj if reuse else dict(obj)
    record["occurred_at"] = occurred
    record["received_at"] = received
    return record


def _plain_instant(value: object) -> datetime | None:
    """``_parse_instant``'s answer where it needs no conversion: a UTC instant with whole
    milliseconds; None for anything else."""
    if type(value) is not str:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except (ValueError, OverflowError):  # as _parse_instant catches: it explains them
        return None
    return instant if instant.tzinfo is UTC and not instant.microsecond % 1000 else None


def _plainly_valid_activity(record: Mapping[str, Any]) -> bool:
    """True only for records fastavro's strict validation would accept, in the shape the
    JSON path makes them; anything else takes the full validation, which explains.

    Full validation tries a union's ``null`` branch first and builds an error for it, so
    it cost more than everything else in ``leap replay`` together (measured, bench/replay.py).
    """
    if len(record) != len(_ACTIVITY_FIELDS):
        return False
    attributes = record["attributes"]
    course, received = record["course_id"], record["received_at"]
    return (
        type(record["event_id"]) is str
        and type(record["student_id"]) is str
        and type(record["action"]) is str
        and type(record["source"]) is str
        and record["source"] in _SOURCES
        and type(record["occurred_at"]) is datetime
        and type(record["quantity"]) is float
        and (course is None or type(course) is str)
        and (received is None or type(received) is datetime)
        and type(attributes) is dict
        and (
            not attributes or all(type(k) is str and type(v) is str for k, v in attributes.items())
        )
    )


def activity_to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`activity_from_json`: timestamps as ISO-8601 UTC with ``Z``."""
    obj = dict(record)
    obj["attributes"] = dict(record["attributes"])
    for field in _INSTANT_FIELDS:
        if obj.get(field) is not None:
            obj[field] = _format_instant(obj[field])
    return obj


def _parse_instant(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidRecord("invalid_field", f"{field} must be an ISO-8601 string")
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is not UTC:  # most feeds send UTC ("Z"): nothing to check or convert
            if instant.utcoffset() is None:
                raise InvalidRecord("invalid_field", f"{field} has no UTC offset or Z")
            instant = instant.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRecord("invalid_field", f"{field} is not an ISO-8601 timestamp") from None
    # The schema keeps milliseconds; truncating here makes JSON -> Avro -> JSON exact.
    sub_milli = instant.microsecond % 1000
    return instant.replace(microsecond=instant.microsecond - sub_milli) if sub_milli else instant


def _parse_quantity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord("invalid_field", "quantity must be a number")
    try:
        return float(value)
    except OverflowError:
        raise InvalidRecord("invalid_field", "quantity must be finite and >= 0") from None


def _format_instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def engagement_alert_codec(
    registry_url: str | None = None, topic: str = "leap.alerts"
) -> AvroCodec:
    """The codec for ``leap.alerts``."""
    return AvroCodec(ENGAGEMENT_ALERT, topic, registry_url=registry_url)
