"""``leap connector feed``: a source system's export file, imported through a feed spec.

Its own small Typer app so that ``leap/cli.py`` only registers it; progress and the
summary go to stderr, like ``leap import events``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from connectors.feeds import FEEDS, METRICS_CONNECTOR, FeedError, FeedReader, load_mapping
from connectors.identity import IdentityError, IdentityMap
from leap.progress import file_progress
from leap.settings import Settings

__all__ = ["feeds_app"]

feeds_app = typer.Typer(
    help="Import source systems' export files (CSV or JSON lines) as student activity.",
    no_args_is_help=True,
)
err = Console(stderr=True)


@feeds_app.command("list")
def list_feeds() -> None:
    """Show the built-in feeds, the events they make and the columns they expect."""
    for spec in FEEDS.values():
        typer.echo(f"{spec.name}: {spec.summary}")
        typer.echo(f"  -> {spec.source}/{spec.action}; event_id {spec.event_id}")
        typer.echo("  columns: " + ", ".join(f"{k}={v}" for k, v in spec.columns.items()))


@feeds_app.command("import")
def import_feed(
    feed: Annotated[
        str, typer.Argument(help=f"Built-in feed spec: {', '.join(FEEDS)} (see `list`).")
    ],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="The export: CSV with a header row, or JSON lines (.jsonl, .ndjson, .json).",
        ),
    ],
    identities: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CSV `source_id,student_id[,system]` mapping the export's user names or "
            "card numbers to student ids (user names match in any case). Rows of unmapped "
            "users go to the dead-letter topic: nobody's activity is guessed.",
        ),
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="TOML adapting the feed to your export: a `columns` table of "
            'field = "Your column", and time_format (strptime, e.g. "%d/%m/%Y %H:%M"), '
            "timezone (for times without an offset; default LEAP_TIMEZONE), format "
            "(csv|jsonl), delimiter, event_id (template over the fields).",
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(
            help="Use only the identity rows whose `system` column is NAME (rows with an "
            "empty system apply to every system).",
        ),
    ] = None,
) -> None:
    """Publish a feed file's rows as ActivityEvents to leap.activity.

    Filtered rows (machine logons, absences) are skipped and counted.
    Bad rows go to leap.dead-letter with file:line and a reason; the rest still go in.
    Event ids come from each row's own identity: importing a file again is harmless.
    """
    from connectors.publisher import ActivityPublisher
    from streams.topics import ensure_topics

    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        _fail(f"invalid LEAP_* setting:\n{exc}")
    if feed not in FEEDS:
        _fail(f"no feed {feed!r}; built-in feeds: {', '.join(FEEDS)}")
    try:
        spec = FEEDS[feed].with_mapping(load_mapping(mapping)) if mapping else FEEDS[feed]
        people = IdentityMap.load(identities, system)
    except (FeedError, IdentityError) as exc:
        _fail(str(exc))
    reader = FeedReader(file, spec, people, settings.zone)

    async def run() -> int:
        await ensure_topics(settings)
        with file_progress(f"importing {file.name}", file, err) as show:
            async with ActivityPublisher(settings, connector=METRICS_CONNECTOR) as publisher:
                return await publisher.publish(
                    reader.items(), on_sent=lambda n: show(reader.bytes_read)
                )

    try:
        published = asyncio.run(run())
    except (FeedError, RuntimeError) as exc:
        _fail(str(exc))
    summary = reader.summary
    err.print(
        f"read {summary.read}, published {published}, skipped {summary.skipped.total()}, "
        f"rejected {summary.rejected.total()}"
    )
    _print_counts("skipped", summary.skipped, "")
    _print_counts("rejected", summary.rejected, f" (on {settings.dead_letter_topic})")
    if people.unmapped:
        err.print(
            f"  unmapped users: {len(people.unmapped)} distinct; add them to {identities} "
            "and import again to include their activity"
        )


def _print_counts(what: str, counts: Counter[str], suffix: str) -> None:
    for reason, count in sorted(counts.items()):
        err.print(f"  {what} {reason}: {count}{suffix}")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
