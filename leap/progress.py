"""One progress bar for long work over a file (imports, replays), always on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

__all__ = ["file_progress"]


@contextmanager
def file_progress(
    description: str, file: Path, console: Console
) -> Iterator[Callable[[int], None]]:
    """A bar over a file's bytes; stdout stays free for results. Yields ``show(bytes_done)``."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=file.stat().st_size)
        yield lambda done: progress.update(task, completed=done)
