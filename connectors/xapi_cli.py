"""``leap connector xapi serve``: the xAPI statements endpoint, for LMSs and LRS forwarders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from connectors.identity import IdentityError, IdentityMap
from leap.settings import Settings

__all__ = ["xapi_app_cli"]

xapi_app_cli = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)


@xapi_app_cli.callback()
def xapi() -> None:
    """xAPI connector: an LRS-compatible statements endpoint (POST/PUT /xAPI/statements)."""
    # A callback keeps `serve` a subcommand even while it is the only one.


@xapi_app_cli.command()
def serve(
    identities: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CSV `source_id,student_id[,system]` mapping xAPI account names or e-mail "
            "addresses to student ids. Statements of unmapped actors go to the dead-letter "
            "topic.",
        ),
    ],
    credentials: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="`name:password` lines, one per feeding system (HTTP Basic).",
        ),
    ],
    system: Annotated[
        str | None, typer.Option(help="Use only the identity rows of this system.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
) -> None:
    """Accept xAPI 1.0.3 statements and publish them as ActivityEvents to leap.activity.

    A 200/204 is sent only once the broker has acknowledged the events.
    """
    import uvicorn

    from connectors.xapi_app import create_xapi_app, load_credentials

    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        _fail(f"invalid LEAP_* setting:\n{exc}")
    try:
        people = IdentityMap.load(identities, system)
        logins = load_credentials(credentials)
    except (IdentityError, ValueError) as exc:
        _fail(str(exc))
    if not logins:
        _fail(f"{credentials}: no credentials; nobody could send statements")
    uvicorn.run(create_xapi_app(settings, people, logins), host=host, port=port)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
