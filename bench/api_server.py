"""The bare handler for bench/api.py: the server stack's floor.

A Starlette app whose engagement route returns a constant body (LEAP's answer, so the same
size) and does nothing else, served as ``leap api`` serves LEAP's app: ``uvicorn.run``'s
defaults (one process, access log on).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def bare_app(body: bytes) -> Starlette:
    async def engagement(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v1/students/{student_id}/engagement", engagement)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="The constant body.")
    args = parser.parse_args()
    uvicorn.run(bare_app(args.body.read_bytes()), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
