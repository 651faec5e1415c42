"""A bare Faust worker that only consumes ``leap.activity``: the framework's floor.

Run by ``bench/ingest.py`` as a separate process (as ``leap worker`` is), one mode each:

* ``events``: ``async for event in stream.events()`` — one Faust event per record;
* ``take``: ``stream.take_events(2000, 0.5)``, the batching LEAP's agent uses;
* ``take-decode``: ``take`` plus the Avro decode of every record (``schemas.codec``);
* ``packed``: records that each carry many events (bench/packed.py), decoded: the
  "fewer Kafka records per event" prototype.

When ``--expected`` events have been seen it writes
``{"first": t, "done": t, "events": n, "records": n}`` (Unix times) to ``--result``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import faust

from bench.packed import unpack
from schemas.codec import activity_codec

MODES = ("events", "take", "take-decode", "packed")


def build_app(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=[f"kafka://{s}" for s in args.bootstrap.split(",")],
        store="memory://",
        datadir=args.datadir,
        topic_partitions=args.partitions,
        web_port=args.web_port,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    topic = app.topic(args.topic, partitions=args.partitions)
    codec = activity_codec(topic=args.topic)
    state: dict[str, Any] = {"first": None, "events": 0, "records": 0}

    def seen(values: list[bytes | None]) -> None:
        if state["first"] is None:
            state["first"] = time.time()
        state["records"] += len(values)
        if args.mode == "take-decode":
            for value in values:
                if value:
                    codec.decode(value)
                    state["events"] += 1
        elif args.mode == "packed":
            for value in values:
                if value:
                    state["events"] += sum(1 for _ in unpack(codec, value))
        else:
            state["events"] += sum(1 for v in values if v)
        if state["events"] >= args.expected:
            state["done"] = time.time()
            Path(args.result).write_text(json.dumps(state))

    @app.agent(topic, name="floor")
    async def floor(stream: faust.StreamT) -> None:
        if args.mode == "events":
            async for event in stream.events():
                seen([event.message.value])
        else:
            batches = stream.take_events(2000, 0.5)  # type: ignore[attr-defined]
            async for events in batches:
                seen([e.message.value for e in events])

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--expected", type=int, required=True, help="Events to wait for.")
    parser.add_argument("--result", required=True)
    parser.add_argument("--app-id", required=True, help="A fresh consumer group each run.")
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = faust.Worker(build_app(args), loglevel="warning", loop=loop)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
