"""The staff page and the portal widget's script, served by the API as static files.

No token is needed for these: they hold no data. Every data call the page (or a portal's
widget) makes carries a bearer token to the ``/v1`` routes, which decide what it may see.
The page's Content-Security-Policy allows only this origin's own scripts, styles and API
(no inline script or style, no framing, no referrer), so a token in the page cannot be
sent anywhere else by injected markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["PAGE_CSP", "STATIC", "page_routes"]

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate, so a deployment's new script reaches pages at once.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    """A file of ``api/static`` and how it is served."""

    file: str
    media_type: str
    headers: dict[str, str]


#: URL path -> the file served there.
STATIC: dict[str, Asset] = {
    "/staff": Asset(
        "staff.html",
        "text/html",
        {**_COMMON_HEADERS, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"},
    ),
    "/static/leap-engagement.js": Asset("leap-engagement.js", "text/javascript", _COMMON_HEADERS),
    "/static/staff.js": Asset("staff.js", "text/javascript", _COMMON_HEADERS),
    "/static/staff.css": Asset("staff.css", "text/css", _COMMON_HEADERS),
}


@cache
def _content(file: str) -> bytes:
    """Read once per process: the files are part of the installed package."""
    return files("api").joinpath("static", file).read_bytes()


async def _serve(request: Request) -> Response:
    asset = STATIC[request.scope["route"].path]
    return Response(_content(asset.file), media_type=asset.media_type, headers=asset.headers)


def page_routes() -> list[Route]:
    """The page and its assets, for the app's route table."""
    return [Route(path, _serve, methods=["GET"]) for path in STATIC]
