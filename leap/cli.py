"""The ``leap`` command: each piece of LEAP alone, or all of it at once (``leap dev``)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from connectors.caliper_cli import caliper_app_cli
from connectors.feeds_cli import feeds_app
from connectors.moodle_cli import moodle_app
from connectors.xapi_cli import xapi_app_cli
from leap.db_cli import db_app, retention_app
from leap.progress import file_progress
from leap.settings import Settings

__all__ = ["main"]

app = typer.Typer(
    help="LEAP: learner engagement indicators from what students do.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(help="Publish data to LEAP's topics.", no_args_is_help=True)
app.add_typer(import_app, name="import")
connector_app = typer.Typer(help="Connectors from source systems.", no_args_is_help=True)
connector_app.add_typer(feeds_app, name="feed")
connector_app.add_typer(moodle_app, name="moodle")
connector_app.add_typer(caliper_app_cli, name="caliper")
connector_app.add_typer(xapi_app_cli, name="xapi")
app.add_typer(connector_app, name="connector")
app.add_typer(db_app, name="db")
app.add_typer(retention_app, name="retention")
reference_app = typer.Typer(help="Students' reference data.", no_args_is_help=True)
app.add_typer(reference_app, name="reference")
err = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        _fail(f"invalid LEAP_* setting:\n{exc}")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command()
def dev(
    students: Annotated[int, typer.Option(help="Synthetic students to create.")] = 2000,
    days: Annotated[int, typer.Option(help="Simulated days of term to feed.")] = 14,
    exit_when_done: Annotated[
        bool, typer.Option("--exit", help="Stop once the indicators are shown.")
    ] = False,
) -> None:
    """Run everything on one machine: broker, Redis, worker, API and a synthetic cohort."""
    from leap.dev import run_dev

    try:
        run_dev(_settings(), students=students, days=days, stay=not exit_when_done)
    except RuntimeError as exc:
        _fail(str(exc))


@app.command()
def broker(
    kafka: Annotated[
        bool, typer.Option("--kafka", help="Apache Kafka from Maven Central, not Tansu.")
    ] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="Kafka log directory (kept across restarts).")
    ] = None,
) -> None:
    """Run a single-node broker in the foreground until Ctrl-C."""
    from leap.brokers import BrokerError, KafkaBroker, TansuBroker

    try:
        running = KafkaBroker(data_dir=data_dir) if kafka else TansuBroker()
        with running:
            kind = "Apache Kafka" if kafka else "Tansu (memory only: nothing survives a restart)"
            err.print(f"{kind} on [bold]{running.bootstrap}[/bold]")
            err.print(f"export LEAP_KAFKA_BOOTSTRAP={running.bootstrap}")
            _wait_for_interrupt()
    except BrokerError as exc:
        _fail(str(exc))


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run one stream worker (configured by LEAP_* variables)."""
    from streams.worker import run_worker

    try:
        run_worker(_settings(), loglevel=loglevel)
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))


@app.command()
def api() -> None:
    """Serve the query API (configured by LEAP_* variables)."""
    import uvicorn

    from api.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port)


@app.command()
def token(
    role: Annotated[str, typer.Option(help="student, tutor, department or admin.")],
    sub: Annotated[str, typer.Option(help="The student id, or the staff member's id.")],
    department: Annotated[str | None, typer.Option(help="With --role department.")] = None,
    ttl: Annotated[int, typer.Option(help="Seconds until the token expires.")] = 3600,
) -> None:
    """Print a development API token, signed with a local key made on first use."""
    from leap.tokens import api_environment, dev_token

    settings = _settings()
    try:
        sys.stdout.write(dev_token(settings, role, sub, department, ttl) + "\n")
    except ValueError as exc:
        _fail(str(exc))
    err.print("The API accepts it with:")
    for name, value in api_environment(settings).items():
        err.print(f"  export {name}={value}", soft_wrap=True, markup=False)


@import_app.command("events")
def import_events(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines.")],
    ticks: Annotated[
        bool,
        typer.Option(help="Move event time on for every partition (for clock=event)."),
    ] = False,
    until: Annotated[
        datetime | None,
        typer.Option(help="With --ticks: finally move event time to this instant."),
    ] = None,
) -> None:
    """Publish canonical ActivityEvents to leap.activity; bad lines go to leap.dead-letter."""
    from connectors.events_file import FileReader
    from connectors.publisher import ActivityPublisher
    from streams.topics import ensure_topics

    settings = _settings()
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=settings.zone)
    reader = FileReader(file, ticks=ticks, until=until)

    async def run() -> int:
        await ensure_topics(settings)
        with file_progress(f"importing {file.name}", file, err) as show:
            async with ActivityPublisher(settings) as publisher:
                return await publisher.publish(
                    reader.items(), on_sent=lambda n: show(reader.bytes_read)
                )

    try:
        published = asyncio.run(run())
    except RuntimeError as exc:
        _fail(str(exc))
    summary = reader.summary
    err.print(f"read {summary.read}, published {published}, rejected {summary.rejected.total()}")
    for reason, count in sorted(summary.rejected.items()):
        err.print(f"  rejected {reason}: {count} (on {settings.dead_letter_topic})")


@reference_app.command("load")
def reference_load(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Students CSV (an SIS export).")
    ],
) -> None:
    """Make leap.reference.students hold exactly FILE's students (removed ones tombstoned)."""
    from connectors.reference_load import load_reference

    settings = _settings()
    try:
        done = asyncio.run(load_reference(settings, file))
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    err.print(
        f"{settings.reference_students_topic}: {done.added} added, {done.changed} changed, "
        f"{done.unchanged} unchanged, {done.removed} removed"
    )


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines.")],
    students: Annotated[Path, typer.Option(exists=True, help="STUDENTS.csv")],
    as_of: Annotated[str, typer.Option("--as-of", help="Local date YYYY-MM-DD.")],
    policy: Annotated[Path | None, typer.Option(help="Policy TOML (default: built-in).")] = None,
    institution: Annotated[
        Path | None, typer.Option(help="Institution TOML (default: LEAP_INSTITUTION or built-in).")
    ] = None,
) -> None:
    """Score a file of events in batch: one JSON line per student in scope (the oracle)."""
    from connectors.events_file import FileReader
    from connectors.publisher import Rejected, Tick
    from leap.institution import load_institution
    from leap.policy import load_policy
    from leap.reference import load_students
    from leap.replay import DailyTotalsBook, indicators_as_of

    settings = _settings()
    try:
        day = date.fromisoformat(as_of)
        rules = load_policy(policy)
        scope = load_institution(institution or settings.institution)
        reference = load_students(students)
    except ValueError as exc:
        _fail(str(exc))
    reader = FileReader(file)
    book = DailyTotalsBook(settings.zone)
    with file_progress(f"reading {file.name}", file, err) as show:
        for n, item in enumerate(reader.items()):
            if not isinstance(item, Rejected | Tick):
                book.add(item)
            if n % 10_000 == 0:
                show(reader.bytes_read)
    results = indicators_as_of(book, reference, rules, day, scope)
    for result in results:
        sys.stdout.write(json.dumps(result) + "\n")
    rejected = reader.summary.rejected.total()
    err.print(
        f"{reader.summary.read} events read, {book.duplicates} duplicates, "
        f"{rejected} rejected; {len(results)} students in scope as of {day}"
    )


def _wait_for_interrupt() -> None:
    signal.sigwait({signal.SIGINT, signal.SIGTERM})


def main() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    app()


if __name__ == "__main__":
    main()
