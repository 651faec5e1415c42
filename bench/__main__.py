"""``make bench``: the five benchmarks in turn, sharing one Apache Kafka.

    python -m bench            # about 9 minutes on 2 cores
    python -m bench --quick    # small sizes, a smoke run

Uses ``LEAP_KAFKA_BOOTSTRAP`` when set, else starts one broker for all of them. Each
script prints its own Markdown table; docs/benchmarks.md explains the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import kafka_bootstrap

SCRIPTS = ("ingest", "day_close", "api", "memory", "replay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes for a smoke run.")
    parser.add_argument("only", nargs="*", help=f"Run just these, of: {', '.join(SCRIPTS)}.")
    args = parser.parse_args()
    unknown = set(args.only) - set(SCRIPTS)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    extra = ["--quick"] if args.quick else []
    started = time.perf_counter()
    with kafka_bootstrap() as bootstrap:
        env = os.environ | {"LEAP_KAFKA_BOOTSTRAP": bootstrap}
        for script in args.only or SCRIPTS:
            print(f"\n## bench/{script}.py\n", flush=True)
            subprocess.run([sys.executable, "-m", f"bench.{script}", *extra], env=env, check=True)
    print(f"\nall benchmarks done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
