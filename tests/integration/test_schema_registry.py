"""Confluent framing end to end, against a small real HTTP schema registry on loopback."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastavro import parse_schema, schemaless_writer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from schemas.codec import (
    ACTIVITY_EVENT,
    AvroCodec,
    InvalidRecord,
    SchemaRegistryError,
    activity_codec,
)

pytestmark = pytest.mark.integration

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class Registry:
    """What the fake registry stores, and which requests it saw."""

    url: str = ""
    schemas: dict[int, str] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)

    def register(self, subject: str, schema: str) -> int:
        for schema_id, known in self.schemas.items():
            if known == schema:
                break
        else:
            schema_id = len(self.schemas) + 1
            self.schemas[schema_id] = schema
        self.subjects.setdefault(subject, []).append(schema_id)
        return schema_id

    def app(self) -> Starlette:
        async def register(request: Request) -> JSONResponse:
            self._seen(request)
            body = await request.json()
            return JSONResponse(
                {"id": self.register(request.path_params["subject"], body["schema"])},
                media_type=CONTENT_TYPE,
            )

        async def schema_by_id(request: Request) -> JSONResponse:
            self._seen(request)
            schema = self.schemas.get(request.path_params["schema_id"])
            if schema is None:
                return JSONResponse(
                    {"error_code": 40403, "message": "Schema not found"}, status_code=404
                )
            return JSONResponse({"schema": schema}, media_type=CONTENT_TYPE)

        return Starlette(
            routes=[
                Route("/subjects/{subject}/versions", register, methods=["POST"]),
                Route("/schemas/ids/{schema_id:int}", schema_by_id, methods=["GET"]),
            ]
        )

    def _seen(self, request: Request) -> None:
        self.requests.append(
            (request.method, request.url.path, request.headers.get("content-type", ""))
        )


@pytest.fixture
def registry() -> Iterator[Registry]:
    state = Registry()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(state.app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "registry did not start"
        time.sleep(0.01)
    yield state
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def activity() -> dict[str, Any]:
    return {
        "event_id": "attendance:2024-10-01:ABCDE12345:CS101",
        "student_id": "ABCDE12345",
        "source": "attendance",
        "action": "present",
        "occurred_at": datetime(2024, 10, 1, 9, 0, tzinfo=UTC),
        "quantity": 1.0,
        "course_id": "CS101",
        "received_at": None,
        "attributes": {},
    }


def test_encode_registers_and_uses_confluent_framing(registry: Registry) -> None:
    codec = activity_codec(registry.url)
    data = codec.encode(activity())
    [schema_id] = registry.subjects["leap.activity-value"]
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    assert json.loads(registry.schemas[schema_id]) == ACTIVITY_EVENT.definition
    assert registry.requests == [("POST", "/subjects/leap.activity-value/versions", CONTENT_TYPE)]

    codec.encode(activity())
    assert len(registry.requests) == 1, "the schema id is cached"


def test_prepare_registers_up_front(registry: Registry) -> None:
    codec = activity_codec(registry.url, topic="other.activity")
    codec.prepare()
    assert list(registry.subjects) == ["other.activity-value"]
    codec.encode(activity())
    assert len(registry.requests) == 1


def test_fresh_codec_decodes_by_fetching_the_id(registry: Registry) -> None:
    data = activity_codec(registry.url).encode(activity())
    reader = activity_codec(registry.url)
    assert reader.decode(data) == activity()
    assert reader.decode(data) == activity()
    fetched = [path for method, path, _ in registry.requests if method == "GET"]
    assert fetched == [f"/schemas/ids/{int.from_bytes(data[1:5], 'big')}"], "fetched once"


def test_unknown_id_is_unknown_schema(registry: Registry) -> None:
    body = activity_codec(registry.url).encode(activity())[5:]
    with pytest.raises(InvalidRecord) as caught:
        activity_codec(registry.url).decode(b"\x00" + (999).to_bytes(4, "big") + body)
    assert caught.value.reason == "unknown_schema"


def test_single_object_message_still_decodes_with_registry_configured(registry: Registry) -> None:
    data = activity_codec().encode(activity())
    assert data[:2] == b"\xc3\x01"
    assert activity_codec(registry.url).decode(data) == activity()
    assert registry.requests == []


def test_older_writer_schema_resolves_to_current_reader(registry: Registry) -> None:
    """Schema evolution: a producer still on a schema without ``attributes``."""
    older = json.loads(json.dumps(ACTIVITY_EVENT.definition))
    older["fields"] = [f for f in older["fields"] if f["name"] != "attributes"]
    schema_id = registry.register("leap.activity-value", json.dumps(older))
    body = io.BytesIO()
    record = {key: value for key, value in activity().items() if key != "attributes"}
    schemaless_writer(body, parse_schema(older), record)

    decoded = activity_codec(registry.url).decode(
        b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()
    )
    assert decoded == {**record, "attributes": {}}


def test_unreachable_registry_is_not_a_bad_record() -> None:
    """A registry outage must not dead-letter good data: it raises SchemaRegistryError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    codec = AvroCodec(ACTIVITY_EVENT, "leap.activity", registry_url=url, timeout=2)
    with pytest.raises(SchemaRegistryError):
        codec.encode(activity())
    with pytest.raises(SchemaRegistryError):
        codec.decode(b"\x00\x00\x00\x00\x01" + b"\x00")
