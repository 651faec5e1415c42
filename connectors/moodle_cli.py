"""``leap connector moodle run``: Moodle's log to leap.activity, once or continuously."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, NoReturn

import asyncpg
import typer
from prometheus_client import start_http_server
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from connectors.moodle import (
    METRICS_CONNECTOR,
    Checkpoints,
    MoodleConfig,
    MoodlePoller,
    MoodleSummary,
)
from connectors.publisher import ActivityPublisher
from leap.settings import Settings
from streams.topics import ensure_topics

__all__ = ["moodle_app", "run_poller"]

moodle_app = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)


@moodle_app.callback()
def moodle() -> None:
    """Moodle connector: student actions from logstore_standard_log (PostgreSQL)."""
    # A callback keeps `run` a subcommand even while it is the only one.


@moodle_app.command()
def run(
    follow: Annotated[
        bool, typer.Option(help="Keep polling until Ctrl-C; default: catch up and stop.")
    ] = False,
    dsn: Annotated[
        str | None, typer.Option(help="Moodle's PostgreSQL DSN (env LEAP_MOODLE_DSN).")
    ] = None,
    checkpoint_dsn: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL holding leap.connector_checkpoints (env LEAP_MOODLE_CHECKPOINT_DSN); "
            "default: --dsn."
        ),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Moodle table prefix (env LEAP_MOODLE_PREFIX; mdl_).")
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            help="Name of this Moodle, in event ids and the checkpoint (env LEAP_MOODLE_SITE)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Log rows per query and publish (env LEAP_MOODLE_BATCH_SIZE; 5000)."),
    ] = None,
    user_field: Annotated[
        str | None,
        typer.Option(
            help="idnumber|username: the user column holding the student id "
            "(env LEAP_MOODLE_USER_FIELD; idnumber). Users without one are dead-lettered."
        ),
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between polls with --follow (env LEAP_MOODLE_POLL_INTERVAL)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="With --follow: serve Prometheus metrics on http://0.0.0.0:PORT/metrics.",
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Publish student engagement from Moodle's log; unmapped users go to the dead-letter topic.

    Kafka and topics come from LEAP_* settings. The position is saved in
    leap.connector_checkpoints after the broker acknowledged each batch."""
    options: dict[str, object] = {
        "dsn": dsn,
        "checkpoint_dsn": checkpoint_dsn,
        "prefix": prefix,
        "site": site,
        "batch_size": batch_size,
        "user_field": user_field,
        "poll_interval": poll_interval,
    }
    try:
        settings = Settings()  # type: ignore[call-arg]
        given = {k: v for k, v in options.items() if v is not None}
        config = MoodleConfig(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        _fail(f"invalid setting:\n{exc}")
    if metrics_port is not None:
        if not follow:
            _fail("--metrics-port needs --follow (a one-off run ends before any scrape)")
        start_http_server(metrics_port)
    try:
        summary = asyncio.run(_run(settings, config, follow))
    except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
        _fail(str(exc))
    err.print(
        f"read {summary.read}, published {summary.published}, "
        f"rejected {summary.rejected.total()}; position {summary.position}"
    )
    for reason, count in sorted(summary.rejected.items()):
        err.print(f"  rejected {reason}: {count} (on {settings.dead_letter_topic})")


async def _run(settings: Settings, config: MoodleConfig, follow: bool) -> MoodleSummary:
    await ensure_topics(settings)
    async with run_poller(settings, config) as poller:
        if follow:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            return await poller.follow(stop)
        with _progress() as on_batch:
            return await poller.run_once(on_batch)


@asynccontextmanager
async def run_poller(
    settings: Settings, config: MoodleConfig, checkpoints: type[Checkpoints] = Checkpoints
) -> AsyncIterator[MoodlePoller]:
    """A poller with its connections and producer, all closed afterwards."""
    source = await asyncpg.connect(config.dsn)
    try:
        # The checkpoint belongs in LEAP's own database, not Moodle's (which should only
        # grant LEAP read access): Moodle's is the last resort, for a trial install.
        checkpoint_dsn = config.checkpoint_dsn or settings.postgres_dsn
        store = await asyncpg.connect(checkpoint_dsn) if checkpoint_dsn else source
        try:
            async with ActivityPublisher(settings, connector=METRICS_CONNECTOR) as publisher:
                yield MoodlePoller(config, source, checkpoints(store), publisher)
        finally:
            if store is not source:
                await store.close()
    finally:
        await source.close()


@contextmanager
def _progress() -> Iterator[Callable[[int, int, int], None]]:
    """A bar over log ids from the checkpoint to the max id, on stderr."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("moodle log ids", total=None)

        def on_batch(start: int, position: int, upper: int) -> None:
            progress.update(task, total=upper - start, completed=position - start)

        yield on_batch


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
