"""API: ``GET /v1/students/{id}/engagement`` under load, against a bare handler on the same stack.

Writes a cohort's indicator and per-day state to Redis (the worker's layout,
``leap.state_keys``), starts ``leap api`` (roster from ``LEAP_STUDENTS``, contact
preferences followed from a fresh topic, as in production) and a bare Starlette app
returning a constant body of the same size (bench/api_server.py), each its own process,
then loads each from a separate process with Debian's ``wrk``, the servers alternated
round by round. Both are served by ``uvicorn.run`` with its defaults, so on the same stack:
one process, access log on, and the event loop and HTTP parser uvicorn picks, which are
asyncio and h11 unless uvloop and httptools are importable (they are not installed with
LEAP; put them on ``PYTHONPATH`` to measure both servers with them). Two loads:

* at fixed concurrency (``-c 32``, one wrk thread), as fast as it answers: requests/s, p50, p99;
* paced at a constant 1,000 requests/s (``--rate``), as wrk2 does it (wrk2 is not packaged
  in Debian): :data:`PACED_CONNECTIONS` connections, one wrk thread each, each sending on
  its own fixed schedule (``PACED_SCRIPT``'s ``delay()``, the clock read through LuaJIT's
  FFI). A connection that falls behind sends its next request at once, and latency is
  measured from when a request was *due*, not from when it went out: a server that
  stalls is charged for the requests it held up (no coordinated omission).

Every request carries a real RS256 bearer JWT (``leap.tokens.mint``): a *student* token for
the student's own record, round robin over ``--tokens`` students, so no audit row is
written (staff reads would each write one to PostgreSQL first).

``--baseline-tree DIR`` also runs ``leap api`` from another copy of the code (e.g. ``git
archive REV`` unpacked there), in the same rounds, for a before/after on the same machine.
``--profile DIR`` then samples each server with py-spy under the unpaced load and prints
where its CPU goes. Besides wrk's figures, each row has the server's CPU time per request
(from /proc): on a shared machine it varies far less than requests/s do.

    python -m bench.api        # needs wrk (make bench installs it), Redis, and Kafka
                               # (LEAP_KAFKA_BOOTSTRAP, else a private one is started)
    python -m bench.api --runs 3 --baseline-tree /tmp/before --profile /tmp/prof
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import redis

from api.access import Principal, Role
from bench.common import (
    bench_env,
    bench_parser,
    cleanup_redis,
    delete_topics,
    kafka_bootstrap,
    median,
    print_table,
    quick,
    settings_from_env,
)
from connectors.synthetic import make_students, write_students
from leap.brokers import free_port
from leap.state_keys import days_key, indicator_key
from leap.tokens import ensure_signing_key, mint
from streams.topics import ensure_topics

LABELS = {
    "leap": "LEAP API (`leap api`)",
    "baseline": "LEAP API, baseline tree",
    "bare": "bare Starlette handler",
}
LOADS = {"flat": "32 connections, unpaced", "paced": "{rate} requests/s constant, from due time"}
#: Connections of the paced load, each its own wrk thread (so each has its own schedule).
PACED_CONNECTIONS = 10
ISSUER, AUDIENCE = "https://idp.bench.leap", "leap-bench"
AS_OF = date(2026, 10, 12)
#: This checkout: ``leap api`` runs from here unless a baseline tree is given.
CHECKOUT = Path(__file__).resolve().parents[1]

SCRIPT = """
local ids = {%(ids)s}
local tokens = {%(tokens)s}
local n, i = #ids, 0
request = function()
    i = i %% n + 1
    return wrk.format("GET", "/v1/students/" .. ids[i] .. "/engagement",
                      {["Authorization"] = "Bearer " .. tokens[i]})
end
"""

#: A constant-rate load: each connection (its own thread) is due to send every
#: ``interval``, staggered across connections; latency counts from the due time when a
#: connection is behind, else from when the request went out (the timer fires at or after
#: it, at millisecond resolution). ``done`` writes the percentiles for :func:`wrk` to read.
PACED_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } leap_timespec;
int clock_gettime(int clk_id, leap_timespec *tp);
]]
local clock = ffi.new("leap_timespec")
local function now_us()
    ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
    return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end
local ids = {%(ids)s}
local tokens = {%(tokens)s}
local connections, rate = %(connections)d, %(rate)d
local threads = {}
function setup(thread)
    thread:set("offset", #threads)
    table.insert(threads, thread)
end
local n, i, interval, due, start, behind
latencies = {}
function init(args)
    n, i = #ids, offset %% #ids
    interval = 1e6 * connections / rate
end
function delay()
    local now = now_us()
    due = due and due + interval or now + interval * offset / connections
    behind = now >= due
    return behind and 0 or math.ceil((due - now) / 1000)
end
function request()
    i = i %% n + 1
    local sent = now_us()
    start = behind and due or math.max(due or sent, sent)
    return wrk.format("GET", "/v1/students/" .. ids[i] .. "/engagement",
                      {["Authorization"] = "Bearer " .. tokens[i]})
end
function response(status, headers, body)
    latencies[#latencies + 1] = now_us() - start
end
function done(summary, latency, requests)
    local all = {}
    for _, thread in ipairs(threads) do
        for _, us in ipairs(thread:get("latencies")) do all[#all + 1] = us end
    end
    table.sort(all)
    for _, p in ipairs({50, 99}) do
        local ms = all[math.ceil(#all * p / 100)] / 1000
        io.write(string.format("due-time p%%d %%.3f ms\\n", p, ms))
    end
end
"""

#: (label, patterns). A sample belongs to the first of these that any of its frames
#: matches: LEAP's own work, with everything it calls...
FEATURES = (
    ("token checks (api/auth.py, PyJWT, cryptography)", ("api/auth.py", "verified_tokens", "jwt/")),
    ("worker-thread hand-off (anyio)", ("anyio/",)),
    ("Redis read (api/state_reads.py, redis-py)", ("api/state_reads.py", "redis/")),
    ("record shaping (shape_record)", ("shape_record (",)),
    ("metrics (api/metrics.py, prometheus_client)", ("prometheus_client/",)),
    ("rest of the handler (JSON body, Response, …)", ("engagement (api/engagement.py",)),
)
#: ...else to the layer its innermost frame is in (the layers call one another).
LAYERS = (
    ("metrics (api/metrics.py, prometheus_client)", ("api/metrics.py",)),
    ("Starlette (routing, middleware, Response)", ("starlette/",)),
    ("access log (logging)", ("logging/",)),
    ("uvicorn + h11 (HTTP)", ("uvicorn/", "h11/")),
)
EVENT_LOOP = "event loop, other (asyncio)"
#: Idle worker threads waiting for work are not CPU.
IDLE = "threading.py"


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
        days = {  # each student's days their own values, as in production
            (AS_OF - timedelta(days=d)).isoformat(): json.dumps(
                {
                    "engagement": 12.5 + (n + d) % 7,
                    "sources": {"attendance": 1.0, "moodle": 9.0 + n % 5},
                }
            )
            for d in range(-1, 8)
        }
        pipe.hset(days_key(prefix, sid), mapping=days)  # type: ignore[arg-type]
    pipe.execute()


@contextlib.contextmanager
def server(
    command: list[str], env: dict[str, str], port: int, log: Path, tree: Path = CHECKOUT
) -> Iterator[int]:
    """The server's pid, once it answers on ``port``; the code in ``tree`` first on the path."""
    path = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH")) if p)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *command],
            env=os.environ | env | {"PYTHONPATH": path},
            cwd=tree,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 90
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"server did not start: see {log}") from None
                time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        process.wait(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, script: Path, connections: int, seconds: int, pid: int, threads: int = 1
) -> dict[str, float]:
    """wrk's figures, and the server's CPU time per request: on a busy machine that varies
    far less than requests/s, which depend on how much CPU the server was given. The
    percentiles are the script's own (from due times) where it writes them."""
    cpu = cpu_seconds(pid)
    done = subprocess.run(
        [
            *("wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"),
            *("-s", str(script), url),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = cpu_seconds(pid) - cpu
    if done.stderr:  # a script that fails to load would leave wrk sending GET /
        raise SystemExit(f"wrk: {done.stderr}")
    out = done.stdout
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    due = dict(re.findall(r"^due-time p(\d+) ([0-9.]+) ms$", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),  # type: ignore[union-attr]
        "cpu_us": cpu * 1e6 / int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50": float(due["50"]) if due else _wrk_percentile(out, 50),
        "p99": float(due["99"]) if due else _wrk_percentile(out, 99),
        "failed": float(failed.group(1)) if failed else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _wrk_percentile(out: str, p: int) -> float:
    """Milliseconds at wrk's own ``p``th percentile (from when each request went out)."""
    return _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


@contextlib.contextmanager
def sampled(pid: int, out: Path) -> Iterator[None]:
    """py-spy samples ``pid`` (100 Hz, raw stacks to ``out``) while the block runs."""
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid)),
            *("-r", "100", "-f", "raw", "-o", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)  # attached before the load starts
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def profile_shares(raw: Path) -> Counter[str]:
    shares: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if IDLE in frames[-1]:
            continue
        label = next(
            (name for name, patterns in FEATURES if any(p in stack for p in patterns)),
            None,
        ) or next(
            (
                name
                for frame in reversed(frames)
                for name, patterns in LAYERS
                if any(p in frame for p in patterns)
            ),
            EVENT_LOOP,
        )
        shares[label] += int(count)
    return shares


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--tokens", type=int, default=200, help="Students the load rotates over.")
    parser.add_argument("--seconds", type=int)
    parser.add_argument(
        "--rate", type=int, default=1000, help="Requests/s of the paced load (constant rate)."
    )
    parser.add_argument(
        "--baseline-tree", type=Path, help="Also run `leap api` from this copy of the code."
    )
    parser.add_argument("--profile", type=Path, help="Write py-spy samples here and summarise.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    small = quick(args)
    seconds = args.seconds or (3 if small else 8)
    runs = args.runs or (1 if small else 2)
    trees = {"leap": CHECKOUT}
    if args.baseline_tree:
        trees["baseline"] = args.baseline_tree.resolve()
    with (
        kafka_bootstrap() as bootstrap,
        tempfile.TemporaryDirectory(prefix="leap-api-") as tmp,
    ):
        workdir = Path(tmp)
        run = f"bench{uuid.uuid4().hex[:6]}"
        env = bench_env(bootstrap, workdir, partitions=1, run=run)
        settings = settings_from_env(env)  # topics, Redis prefix
        env |= {
            "LEAP_AUTH_ISSUER": ISSUER,
            "LEAP_AUTH_AUDIENCE": AUDIENCE,
            "LEAP_AUTH_ALGORITHMS": '["RS256"]',
            "LEAP_API_HOST": "127.0.0.1",
        }
        students = make_students(1000)
        write_students(students, workdir / "students.csv")
        ids = [s.student_id for s in students[: args.tokens]]
        private = workdir / "signing-key.pem"
        env["LEAP_AUTH_PUBLIC_KEY_FILE"] = str(ensure_signing_key(private))
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
        lua = {
            "ids": ", ".join(f'"{i}"' for i in ids),
            "tokens": ", ".join(f'"{t}"' for t in tokens),
        }
        scripts = {
            "flat": (workdir / "flat.lua", 32, 1),
            "paced": (workdir / "paced.lua", PACED_CONNECTIONS, PACED_CONNECTIONS),
        }
        scripts["flat"][0].write_text(SCRIPT % lua)
        scripts["paced"][0].write_text(
            PACED_SCRIPT % {**lua, "connections": PACED_CONNECTIONS, "rate": args.rate}
        )
        ports = {name: free_port() for name in (*trees, "bare")}
        pids: dict[str, int] = {}
        client = redis.Redis.from_url(settings.redis_url)
        try:
            asyncio.run(ensure_topics(settings))
            write_state(client, settings.redis_prefix, ids)
            with contextlib.ExitStack() as servers:
                for name, tree in trees.items():
                    pids[name] = servers.enter_context(
                        server(
                            ["leap.cli", "api"],
                            env | {"LEAP_API_PORT": str(ports[name])},
                            ports[name],
                            workdir / f"{name}.log",
                            tree,
                        )
                    )
                answer = httpx.get(  # the bare handler's constant body
                    f"http://127.0.0.1:{ports['leap']}/v1/students/{ids[0]}/engagement",
                    headers={"Authorization": f"Bearer {tokens[0]}"},
                )
                answer.raise_for_status()
                body = workdir / "body.json"
                body.write_bytes(answer.content)
                pids["bare"] = servers.enter_context(
                    server(
                        ["bench.api_server", "--port", str(ports["bare"]), "--body", str(body)],
                        {},
                        ports["bare"],
                        workdir / "bare.log",
                    )
                )
                results: dict[str, list[dict[str, float]]] = {}
                for _ in range(runs):  # alternated, so all see the same noise
                    for name, port in ports.items():
                        for load, (script, conns, threads) in scripts.items():
                            url = f"http://127.0.0.1:{port}"
                            figures = wrk(url, script, conns, seconds, pids[name], threads)
                            results.setdefault(f"{name} {load}", []).append(figures)
                            print(f"  {name} {load}: {figures}", flush=True)
                profiles = {}
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    for name in ports:
                        profiles[name] = args.profile / f"{name}.txt"
                        with sampled(pids[name], profiles[name]):
                            url = f"http://127.0.0.1:{ports[name]}"
                            script, conns, _ = scripts["flat"]
                            wrk(url, script, conns, seconds, pids[name])
        finally:
            cleanup_redis(settings.redis_url, settings.redis_prefix)
            client.close()
            asyncio.run(delete_topics(bootstrap, run))

    def row(key: str, label: str) -> list[object]:
        figures = results[key]
        return [
            label,
            median([f["rps"] for f in figures]),
            median([f["p50"] for f in figures]),
            median([f["p99"] for f in figures]),
            median([f["cpu_us"] for f in figures]),
            int(sum(f["failed"] + f["socket_errors"] for f in figures)),
        ]

    print_table(
        f"API: {len(answer.content):,}-byte engagement record, {seconds} s per run, "
        f"medians of {runs}",
        ["server and load", "requests/s", "p50 ms", "p99 ms", "server CPU µs/request", "errors"],
        [
            row(f"{name} {load}", f"{LABELS[name]}, {LOADS[load].format(rate=f'{args.rate:,}')}")
            for load in LOADS
            for name in ports
        ],
    )
    bare_rps = median([f["rps"] for f in results["bare flat"]])
    bare_cpu = median([f["cpu_us"] for f in results["bare flat"]])
    for name in trees:
        rps = median([f["rps"] for f in results[f"{name} flat"]])
        cpu = median([f["cpu_us"] for f in results[f"{name} flat"]])
        print(
            f"{LABELS[name]} / bare handler: requests/s {rps / bare_rps:.0%} (target ≥ 70%); "
            f"CPU per request {cpu / bare_cpu:.2f}x"
        )
    for name, raw in profiles.items():
        shares = profile_shares(raw)
        total = sum(shares.values())
        print_table(
            f"Where {LABELS[name]} spends its CPU (py-spy, {total:,} busy samples at 100 Hz)",
            ["where", "share"],
            [[where, f"{100 * n / total:.1f}%"] for where, n in shares.most_common()],
        )


if __name__ == "__main__":
    main()
