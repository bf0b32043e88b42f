"""The scale ladder: `mmplan forecast` at 1k, 10k (and 100k) lanes, `mmplan optimize` on
growing networks. Prints a table and writes it, with the machine described, to
benchmarks/RESULTS.md (with --large) or out/bench/RESULTS.md.

Forecast rungs run the real CLI (`mmplan forecast HISTORY -o OUT`, default config: MSTL on
the levels above the lanes, lanes as shares of their origin, MinTrace(wls_var)) in a child
process on 2 years of daily history, and report wall time, peak memory (the sum of the
proportional resident memory, PSS, of the run and its worker processes, sampled every
0.2 s) and series per second. Histories above one `mmplan sample` network are shards:
independent sample networks (different seeds) whose facility and region names carry a shard
prefix, so the network grows the way a real one does, by more regions and facilities.

Optimize rungs solve the last `--days` days of a sample network's history as demand (each
lane's volume as demand between its ends, so the optimizer may re-route it) with the default
method and report build time, solve time, objective, bound and operating gap.

    .venv/bin/python benchmarks/scale.py          # 1k and 10k lanes, optimize: out/bench/RESULTS.md
    .venv/bin/python benchmarks/scale.py --large  # adds 100k lanes: benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
MMPLAN = Path(sys.executable).parent / "mmplan"
WORK = ROOT / "out" / "bench" / "scale"
SHARD_DSS = 2800  # delivery stations per shard: about 5,000 lanes


def shard(seed: int, dss: int) -> pl.DataFrame:
    """One sample network's history with its facility and region names prefixed."""
    from mmplan.config import SampleConfig
    from mmplan.synthetic import sample

    history = sample(SampleConfig(seed=seed, dss=dss))["history"]
    prefix = f"N{seed:03d}-"
    names = ["origin", "destination", "origin_region", "destination_region"]
    return history.with_columns((pl.lit(prefix) + pl.col(c)).alias(c) for c in names)


def history_for(lanes: int) -> Path:
    """A history of about `lanes` lanes (generated once, then reused)."""
    path = WORK / f"lanes-{lanes}" / "history.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if lanes <= 1000:
        parts = [shard(1, 300)]
    else:
        parts, have, seed = [], 0, 1
        while have < lanes * 0.97:
            part = shard(seed, SHARD_DSS)
            have += part.select("origin", "destination").unique().height
            parts.append(part)
            seed += 1
    pl.concat(parts).write_parquet(path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    return path


def _tree_pss(pid: int) -> int:
    """Proportional resident bytes of a process and all its descendants.

    PSS splits pages shared by forked workers among them, so the sum counts each page once.
    """
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak memory (PSS of the process tree) in bytes and exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def watch():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_pss(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    watcher.join()
    if proc.returncode:
        print(err, file=sys.stderr)
    return time.perf_counter() - started, peak[0], proc.returncode


def forecast_rung(lanes: int) -> dict:
    t0 = time.perf_counter()
    history = history_for(lanes)
    made = time.perf_counter() - t0
    out = history.parent / "forecast.parquet"
    out.unlink(missing_ok=True)  # a failed run must not be scored on an earlier output
    wall, peak, code = run_measured([str(MMPLAN), "forecast", str(history), "-o", str(out)])
    if code:
        return {"exit": code, "generated": made}
    fc = pl.scan_parquet(out)
    counts = fc.group_by("level").agg(pl.col("unique_id").n_unique()).collect()
    by_level = dict(counts.iter_rows())
    series = sum(by_level.values())
    return {
        "lanes": by_level.get("lane", 0),
        "series": series,
        "fitted": series - by_level.get("lane", 0),
        "rows": pl.scan_parquet(history).select(pl.len()).collect().item(),
        "wall": wall,
        "peak_gb": peak / 2**30,
        "per_second": series / wall,
        "exit": code,
        "generated": made,
    }


def optimize_rung(fcs: int, scs: int, dss: int, days: int, time_limit: float) -> dict:
    from mmplan.config import OptimizeConfig, SampleConfig
    from mmplan.plan import optimize
    from mmplan.synthetic import sample

    tables = sample(SampleConfig(seed=7, fcs=fcs, scs=scs, dss=dss))
    history = tables["history"]
    last = history["date"].max()
    demand = history.filter(pl.col("date") > last - pl.duration(days=days)).select(
        "date", "origin", "destination", "volume"
    )
    cfg = OptimizeConfig(time_limit=time_limit)
    started = time.perf_counter()
    plan = optimize(demand, tables["nodes"], tables["lanes"], cfg, column="volume")
    s = plan.summary
    return {
        "network": f"{fcs} FC / {scs} SC / {dss} DS",
        "lanes": tables["lanes"].height,
        "days": days,
        "build": s["timings"].get("build", 0.0),
        "solve": s["timings"].get("solve", 0.0),
        "wall": time.perf_counter() - started,
        "objective": s["objective"],
        "bound": s["best_bound"],
        "gap": s["operating_gap"],
    }


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    from importlib.metadata import version

    libs = ", ".join(
        f"{p} {version(p)}" for p in ("statsforecast", "hierarchicalforecast", "ortools", "polars")
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; {libs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add the 100k-lane forecast rung")
    parser.add_argument("--rungs", default="1000,10000", help="forecast rungs, lanes")
    parser.add_argument("--days", type=int, default=3, help="days per optimize rung")
    parser.add_argument("--time-limit", type=float, default=60.0, help="per optimize rung")
    parser.add_argument("--skip-optimize", action="store_true")
    parser.add_argument(
        "--results",
        help="where to write the table (default: benchmarks/RESULTS.md with --large, which the "
        "README cites, else out/bench/RESULTS.md so a quick run does not drop the 100k rung)",
    )
    args = parser.parse_args()
    if args.results is None:
        where = ROOT / "benchmarks" if args.large else WORK.parent
        args.results = str(where / "RESULTS.md")
    rungs = [int(r) for r in args.rungs.split(",") if r]
    if args.large:
        rungs.append(100_000)

    load_before = os.getloadavg()[0]
    lines = [
        "| lanes | series | fitted series | history rows | wall | peak memory | series/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print(lines[0], flush=True)
    for lanes in rungs:
        r = forecast_rung(lanes)
        if r["exit"]:
            line = f"| ~{lanes:,} | run failed with exit {r['exit']} | | | | | |"
        else:
            line = (
                f"| {r['lanes']:,} | {r['series']:,} | {r['fitted']:,} | {r['rows']:,} | "
                f"{r['wall']:.0f} s | {r['peak_gb']:.1f} GB | {r['per_second']:.0f} |"
            )
        lines.append(line)
        print(line, f"(history generated in {r['generated']:.0f} s)", flush=True)

    opt_lines = []
    if not args.skip_optimize:
        opt_lines = [
            "| network | lanes | days | build | solve | objective | bound | operating gap |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        print(opt_lines[0], flush=True)
        for fcs, scs, dss in ((2, 6, 40), (5, 30, 300), (10, 60, 1000)):
            r = optimize_rung(fcs, scs, dss, args.days, args.time_limit)
            line = (
                f"| {r['network']} | {r['lanes']:,} | {r['days']} | {r['build']:.1f} s | "
                f"{r['solve']:.1f} s | {r['objective']:,.0f} | {r['bound']:,.0f} | "
                f"{100 * r['gap']:.2f}% |"
            )
            opt_lines.append(line)
            print(line, flush=True)

    load_after = os.getloadavg()[0]
    text = [
        "# Scale ladder",
        "",
        f"Measured {dt.date.today()} by `benchmarks/scale.py"
        f"{' --large' if args.large else ''}` on {machine()}. Load average "
        f"{load_before:.1f} before and {load_after:.1f} after (2.0 means both cores busy "
        "with this run alone; more means other work shared the machine).",
        "",
        "## Forecast (`mmplan forecast`, default config, horizon 28, 730 days of history)",
        "",
        *lines,
        "",
        "Fitted series are the levels above the lanes (total, regions, origins), which get "
        "models; lanes are shares of their origin's forecast (README, Forecasting). Peak "
        "memory is the sum over the run's processes.",
    ]
    if opt_lines:
        text += [
            "",
            f"## Optimize (`mmplan.optimize`, default method, {args.time_limit:.0f} s limit)",
            "",
            *opt_lines,
        ]
    Path(args.results).write_text("\n".join(text) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
