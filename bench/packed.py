"""Prototype: many ActivityEvents in one Kafka record ("fewer records per event").

A packed record is the events' ordinary single-object encodings, each preceded by its
length (4 bytes, big-endian), so every event is still decoded and checked exactly as a
lone record is (``AvroCodec.decode``); only the per-record cost of Kafka and Faust is
shared. Two groupings are measured in bench/ingest.py: one record per (student, day)
(the key stays the student id, so LEAP's key and partition checks still hold), and up to
``PARTITION_CHUNK`` events of one partition per record (the key would have to change).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from schemas.codec import AvroCodec, InvalidRecord

__all__ = ["PARTITION_CHUNK", "pack", "unpack"]

PARTITION_CHUNK = 100


def pack(codec: AvroCodec, events: Iterable[Mapping[str, Any]]) -> bytes:
    parts = []
    for event in events:
        body = codec.encode(event)
        parts.append(len(body).to_bytes(4, "big"))
        parts.append(body)
    return b"".join(parts)


def unpack(codec: AvroCodec, value: bytes) -> Iterator[dict[str, Any]]:
    view, at = memoryview(value), 0
    while at < len(view):
        size = int.from_bytes(view[at : at + 4], "big")
        if size == 0 or at + 4 + size > len(view):
            raise InvalidRecord("not_avro", "truncated packed record")
        yield codec.decode(bytes(view[at + 4 : at + 4 + size]))
        at += 4 + size
