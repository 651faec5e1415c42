"""One HTTP server for bench/api.py, on the same stack as ``leap api`` (uvicorn's defaults).

``--app leap``: LEAP's API (``api.app.create_app``), configured by ``LEAP_*`` variables,
with the roster from ``LEAP_STUDENTS`` handed in (so it reads no reference topic).
``--app bare``: a Starlette app whose engagement route returns a constant body of the
same size as LEAP's answer, and does nothing else: the stack's floor.

Prototypes of changes to ``api/auth.py``, measured by bench/api.py:
``--app leap-inline`` verifies the token on the event loop instead of in a worker thread
(right for a local key file or a cached JWKS, where verifying never blocks);
``--app leap-cached`` also remembers each verified token until it expires (at most
``CACHE_SECONDS``), so a widget's repeated requests skip the RSA verification.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import api.auth
from api.access import Principal
from api.app import create_app
from leap.contact import ContactPreferences
from leap.reference import load_students
from leap.settings import Settings

CACHE_SECONDS = 60.0


async def _inline(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def _cached(verify: Callable[[Any, str], Principal]) -> Callable[[Any, str], Principal]:
    verified: dict[str, tuple[float, Principal]] = {}

    def cached_verify(self: Any, token: str) -> Principal:
        hit = verified.get(token)
        if hit is not None and time.time() < hit[0]:
            return hit[1]
        principal = verify(self, token)  # raises for a bad token: nothing is cached
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        if len(verified) > 100_000:
            verified.clear()
        verified[token] = (min(float(expires), time.time() + CACHE_SECONDS), principal)
        return principal

    return cached_verify


def bare_app(body: bytes) -> Starlette:
    async def engagement(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v1/students/{student_id}/engagement", engagement)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--app", choices=("leap", "leap-inline", "leap-cached", "bare"), required=True
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, help="The bare app's constant body.")
    args = parser.parse_args()
    if args.app in ("leap-inline", "leap-cached"):
        api.auth.run_in_threadpool = _inline  # type: ignore[assignment]
    if args.app == "leap-cached":
        api.auth.Verifier.verify = _cached(api.auth.Verifier.verify)  # type: ignore[method-assign,assignment]
    if args.app.startswith("leap"):
        settings = Settings()  # type: ignore[call-arg]
        assert settings.students is not None
        roster = load_students(settings.students)
        app = create_app(settings, roster, ContactPreferences())
    else:
        app = bare_app(args.body.read_bytes() if args.body else b'{"ok":true}')
    # What `leap api` runs: uvicorn.run's defaults (access log on, one process).
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
