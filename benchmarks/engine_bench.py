"""Forecast on this machine against a Dask LocalCluster: wall time, and identical results.

Starts a `distributed.LocalCluster` (`--workers` processes, one thread each), then runs
`mmplan forecast HISTORY` through the CLI, alternating local and `--engine dask`, `--rounds`
times each (the first Dask run includes the workers importing statsforecast). Every output
must equal the first local one exactly. Prints wall times and the load average, since the
machine may be shared.

    .venv/bin/python benchmarks/engine_bench.py [HISTORY] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

MMPLAN = str(Path(sys.executable).with_name("mmplan"))


def timed_forecast(history: str, out: Path, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run([MMPLAN, "forecast", history, "-o", str(out), "-q", *extra], check=True)
    return time.perf_counter() - started


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", nargs="?", default="data/sample/history.parquet")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mmplan-engine-bench-"))
    try:
        started = time.perf_counter()
        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            print(
                f"LocalCluster: {args.workers} workers x 1 thread, up in "
                f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} cores"
            )
            dask = ("--engine", "dask", "--scheduler", cluster.scheduler_address)
            rows = []
            for round_ in range(1, args.rounds + 1):
                for engine, extra in (("local", ()), ("dask", dask)):
                    out = scratch / f"{engine}-{round_}.parquet"
                    seconds = timed_forecast(args.history, out, *extra)
                    load = os.getloadavg()[0]
                    rows.append((engine, round_, seconds, load, out))
                    print(f"{engine:5} round {round_}: {seconds:6.1f} s  (load {load:.1f})")
        reference = pl.read_parquet(rows[0][-1])
        for *_, out in rows[1:]:
            assert_frame_equal(reference, pl.read_parquet(out), check_exact=True)
        print(f"all {len(rows)} forecasts identical ({reference.height:,} rows)")
        print("\n| run | wall time | load |\n|---|---|---|")
        for engine, round_, seconds, load, _ in rows:
            print(f"| {engine}, round {round_} | {seconds:.1f} s | {load:.1f} |")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
