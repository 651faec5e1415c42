"""``leap connector caliper``: serve the IMS Caliper endpoint (``POST /caliper``).

Its own small Typer app so that ``leap/cli.py`` only registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from connectors.identity import IdentityError, IdentityMap
from leap.settings import Settings

__all__ = ["caliper_app_cli"]

caliper_app_cli = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)


@caliper_app_cli.callback()
def caliper() -> None:
    """Caliper connector: IMS Caliper 1.1/1.2 events from learning tools, over HTTP."""
    # A callback keeps `serve` a subcommand even while it is the only one.


@caliper_app_cli.command("serve")
def serve(
    identities: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CSV `source_id,student_id[,system]` mapping actor IRIs (or their last path "
            "segment) to student ids. Events of unmapped actors go to the dead-letter topic.",
        ),
    ],
    tokens: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="One `name:token` line per sensor; sensors send `Authorization: Bearer TOKEN`.",
        ),
    ],
    system: Annotated[
        str | None,
        typer.Option(help="Use only the identity rows whose `system` column is NAME."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
) -> None:
    """Serve POST /caliper; a 200 means the events are acknowledged by Kafka."""
    import uvicorn

    from connectors.caliper_app import TokenError, create_caliper_app, load_tokens

    try:
        settings = Settings()  # type: ignore[call-arg]
        app = create_caliper_app(
            settings, IdentityMap.load(identities, system), load_tokens(tokens)
        )
    except ValidationError as exc:
        _fail(f"invalid LEAP_* setting:\n{exc}")
    except (IdentityError, TokenError) as exc:
        _fail(str(exc))
    uvicorn.run(app, host=host, port=port, log_level="info")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
