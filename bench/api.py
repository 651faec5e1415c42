"""API: ``GET /v1/students/{id}/engagement`` under load, against a bare handler on the same stack.

Writes a cohort's indicator and per-day state to Redis (the worker's layout,
``leap.state_keys``), starts LEAP's API and a bare Starlette app returning a constant body
of the same size (bench/api_server.py, each its own uvicorn process, as ``leap api``),
then loads each from a separate process with Debian's ``wrk``:

* at fixed concurrency (``-c 32``, one wrk thread), as fast as it answers: requests/s, p50, p99;
* paced near 1,000 requests/s: 12 connections, each waiting 10 ms (wrk's ``delay()``)
  between its requests. wrk is not wrk2: this is not a constant-rate schedule, so the
  latency is reported at the rate achieved, and queueing delay is not corrected for.

Every request carries a real RS256 bearer JWT (``leap.tokens.mint``): a *student* token for
the student's own record, round robin over ``--tokens`` students, so no audit row is
written (staff reads would each write one to PostgreSQL first).

    python -m bench.api            # needs wrk (make bench installs it) and Redis
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import redis

from api.access import Principal, Role
from bench.common import bench_parser, cleanup_redis, median, print_table, quick
from connectors.synthetic import make_students, write_students
from leap.brokers import free_port
from leap.settings import Settings
from leap.state_keys import days_key, indicator_key
from leap.tokens import ensure_signing_key, mint

LABELS = {
    "leap": "LEAP API",
    "leap-inline": "LEAP API, token verified on the loop (prototype)",
    "leap-cached": "LEAP API, inline + verified tokens cached (prototype)",
    "bare": "bare Starlette handler",
}
LOADS = {"flat": "32 connections, unpaced", "paced": "12 connections, 10 ms pacing"}
ISSUER, AUDIENCE = "https://idp.bench.leap", "leap-bench"
AS_OF = date(2026, 10, 12)

SCRIPT = """
local ids = {%(ids)s}
local tokens = {%(tokens)s}
local n, i = #ids, 0
request = function()
    i = i %% n + 1
    return wrk.format("GET", "/v1/students/" .. ids[i] .. "/engagement",
                      {["Authorization"] = "Bearer " .. tokens[i]})
end
%(delay)s
"""


def write_state(client: redis.Redis, prefix: str, ids: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for n, sid in enumerate(ids):
        pipe.hset(
            indicator_key(prefix, sid),
            mapping={
                "student_id": sid,
                "indicator": "good",
                "label": "Good",
                "score": repr(14.5 + n % 7),
                "reference_score": "15.25",
                "as_of": AS_OF.isoformat(),
                "window_days": "7",
                "policy_version": "2026.1",
                "course": "BA-ENGLIT",
                "year": "2",
                "updated_at": "2026-10-13T02:00:00+00:00",
            },
        )
        days = {
            (AS_OF - timedelta(days=d)).isoformat(): json.dumps(
                {"engagement": 12.5, "sources": {"attendance": 1.0, "moodle": 9.0}}
            )
            for d in range(-1, 8)
        }
        pipe.hset(days_key(prefix, sid), mapping=days)  # type: ignore[arg-type]
    pipe.execute()


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.api_server", *args, "--port", str(port)],
            env=os.environ | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"server did not start: see {log}") from None
                time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(30)


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "failed": float(failed.group(1)) if failed else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--tokens", type=int, default=200, help="Students the load rotates over.")
    parser.add_argument("--seconds", type=int)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    small = quick(args)
    seconds = args.seconds or (3 if small else 8)
    runs = args.runs or (1 if small else 2)
    settings = Settings()  # type: ignore[call-arg]
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    client = redis.Redis.from_url(settings.redis_url)
    with tempfile.TemporaryDirectory(prefix="leap-api-") as tmp:
        workdir = Path(tmp)
        students = make_students(1000)
        write_students(students, workdir / "students.csv")
        ids = [s.student_id for s in students[: args.tokens]]
        private = workdir / "signing-key.pem"
        public = ensure_signing_key(private)
        tokens = [
            mint(
                private.read_bytes(),
                Principal(Role.STUDENT, sid),
                issuer=ISSUER,
                audience=AUDIENCE,
                ttl=3600,
            )
            for sid in ids
        ]
        env = {
            "LEAP_REDIS_URL": settings.redis_url,
            "LEAP_REDIS_PREFIX": prefix,
            "LEAP_STUDENTS": str(workdir / "students.csv"),
            "LEAP_AUTH_ISSUER": ISSUER,
            "LEAP_AUTH_AUDIENCE": AUDIENCE,
            "LEAP_AUTH_ALGORITHMS": '["RS256"]',
            "LEAP_AUTH_PUBLIC_KEY_FILE": str(public),
            "LEAP_DATA_DIR": str(workdir / "data"),
        }
        env.pop("LEAP_POSTGRES_DSN", None)
        lua = {
            "ids": ", ".join(f'"{i}"' for i in ids),
            "tokens": ", ".join(f'"{t}"' for t in tokens),
        }
        flat_out = workdir / "flat.lua"
        flat_out.write_text(SCRIPT % {**lua, "delay": ""})
        paced = workdir / "paced.lua"
        paced.write_text(SCRIPT % {**lua, "delay": "delay = function() return 10 end"})
        # LEAP first: its answer is the bare handler's constant body.
        ports = {name: free_port() for name in ("leap", "leap-inline", "leap-cached", "bare")}
        try:
            write_state(client, prefix, ids)
            with contextlib.ExitStack() as servers:
                for name, port in ports.items():
                    if name == "bare":
                        answer = httpx.get(
                            f"http://127.0.0.1:{ports['leap']}/v1/students/{ids[0]}/engagement",
                            headers={"Authorization": f"Bearer {tokens[0]}"},
                        )
                        answer.raise_for_status()
                        (workdir / "body.json").write_bytes(answer.content)
                    extra = ["--body", str(workdir / "body.json")] if name == "bare" else []
                    servers.enter_context(
                        server(["--app", name, *extra], env, port, workdir / f"{name}.log")
                    )
                results: dict[str, list[dict[str, float]]] = {}
                for _ in range(runs):  # alternated, so all see the same noise
                    for name, port in ports.items():
                        url = f"http://127.0.0.1:{port}"
                        for load, script, conns in (("flat", flat_out, 32), ("paced", paced, 12)):
                            figures = wrk(url, script, conns, seconds)
                            results.setdefault(f"{name} {load}", []).append(figures)
                            print(f"  {name} {load}: {figures}", flush=True)
        finally:
            cleanup_redis(settings.redis_url, prefix)
            client.close()

    def row(key: str, label: str) -> list[object]:
        figures = results[key]
        return [
            label,
            median([f["rps"] for f in figures]),
            median([f["p50"] for f in figures]),
            median([f["p99"] for f in figures]),
            int(sum(f["failed"] + f["socket_errors"] for f in figures)),
        ]

    print_table(
        f"API: {len(answer.content):,}-byte engagement record, wrk -t1, {seconds} s per run, "
        f"medians of {runs}",
        ["server and load", "requests/s", "p50 ms", "p99 ms", "errors"],
        [
            row(f"{name} {load}", f"{LABELS[name]}, {LOADS[load]}")
            for load in LOADS
            for name in LABELS
        ],
    )
    bare_rps = median([f["rps"] for f in results["bare flat"]])
    for name in ("leap", "leap-inline", "leap-cached"):
        rps = median([f["rps"] for f in results[f"{name} flat"]])
        print(f"{LABELS[name]} / bare handler requests/s: {rps / bare_rps:.0%} (target ≥ 70%)")


if __name__ == "__main__":
    main()
