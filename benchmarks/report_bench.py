"""Benchmark `mmplan report`: write seconds and file size on the demo's outputs, on a
10k-lane forecast, and the same fan charts as matplotlib SVG for comparison.

The demo's outputs are `out/demo/` as `make demo` leaves them (history, forecast,
backtest, plan); without them the benchmark makes them, as the demo does but with a
cheap config (SeasonalNaive, one backtest cutoff). The 10k-lane forecast is made up
(coherent sums over 10,000 lanes, 40 origins, 4 regions, 14 days with 80/95% intervals),
since only its size matters: the report draws the same number of charts at 100 lanes
as at 10k. Each report is written three times by the CLI in this process and the median
printed, with the size. The SVG comparison draws the demo's fan charts with matplotlib
(one SVG each, inline) and prints its time and size beside plotly's.

    .venv/bin/python benchmarks/report_bench.py [--demo out/demo] [--skip-10k] [--skip-svg]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from mmplan.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
CHEAP = '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 14\n[backtest]\nwindows = 1\nstep = 14\n'
runner = CliRunner()


def _run(*args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise SystemExit(f"{args[0]} failed ({result.exit_code}): {result.output}")


def demo_outputs(demo: Path, scratch: Path) -> Path:
    """`demo` if `make demo` left its outputs there, else the same made cheaply."""
    if all((demo / p).exists() for p in ("forecast.parquet", "backtest", "plan")):
        return demo
    print(f"{demo} has no demo outputs: making them with a cheap config (SeasonalNaive)")
    config = scratch / "cheap.toml"
    config.write_text(CHEAP)
    history = SAMPLE / "history.parquet"
    _run("backtest", history, "-o", scratch / "backtest", "-c", config)
    _run("forecast", history, "-o", scratch / "forecast.parquet", "-c", config)
    lanes = ["--nodes", SAMPLE / "nodes.parquet", "--lanes", SAMPLE / "lanes.parquet"]
    _run("optimize", scratch / "forecast.parquet", *lanes, "-o", scratch / "plan")
    return scratch


def timed_report(out: Path, *args: object, repeats: int = 3) -> tuple[float, int]:
    """Median seconds of `mmplan report -o out ARGS` and the page's size in bytes."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        _run("report", "-o", out, *args)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), out.stat().st_size


def large_forecast(path: Path, lanes: int = 10_000, days: int = 14, seed: int = 0) -> Path:
    """A coherent forecast of `lanes` lanes under 40 origins in 4 regions."""
    rng = np.random.default_rng(seed)
    dates = [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(days)]
    origin = np.arange(lanes) % 40
    base = pl.DataFrame(
        {
            "origin": [f"FC{o:03d}" for o in origin],
            "destination": [f"DS{i:05d}" for i in range(lanes)],
            "origin_region": [f"R{o % 4}" for o in origin],
            "scale": rng.gamma(2.0, 50.0, lanes),
        }
    )
    lane = base.join(pl.DataFrame({"date": dates}), how="cross").with_columns(
        forecast=pl.col("scale") * (1 + 0.3 * np.sin(np.arange(lanes * days) % days))
    )
    lane = lane.with_columns(
        unique_id=pl.format("lane:{}/{}", "origin", "destination"), level=pl.lit("lane")
    )
    spread = {80: 1.28, 95: 1.96}
    columns = ["unique_id", "level", "origin", "destination", "origin_region", "date", "forecast"]
    parts = [lane.select(columns)]
    levels = [("origin", ["origin", "origin_region"]), ("origin_region", ["origin_region"])]
    for level, keys in [*levels, ("total", [])]:
        summed = lane.group_by([*keys, "date"]).agg(pl.col("forecast").sum())
        uid = pl.format(f"{level}:{{}}", keys[0]) if keys else pl.lit("total")
        missing = [pl.lit(None, pl.String).alias(c) for c in columns[2:5] if c not in keys]
        summed = summed.with_columns(*missing, unique_id=uid, level=pl.lit(level))
        parts.append(summed.select(columns))
    table = pl.concat(parts)
    for p, z in spread.items():
        width = z * pl.col("forecast").sqrt()
        table = table.with_columns(
            (pl.col("forecast") - width).clip(0).alias(f"lo_{p}"),
            (pl.col("forecast") + width).alias(f"hi_{p}"),
        )
    table.with_columns(model=pl.lit("Synthetic")).write_parquet(path)
    return path


def svg_fan_charts(forecast: Path, history: Path, out: Path) -> tuple[float, int]:
    """The demo's fan charts as inline matplotlib SVGs: seconds and bytes of the page."""
    import matplotlib

    matplotlib.use("svg")
    import io

    import matplotlib.pyplot as plt

    from mmplan.config import ReportConfig
    from mmplan.report.forecast import chosen_series

    started = time.perf_counter()
    fc = pl.read_parquet(forecast)
    hist = pl.read_parquet(history)
    svgs = []
    for uid in chosen_series(fc, ReportConfig().top_series, []):
        rows = fc.filter(pl.col("unique_id") == uid).sort("date")
        fig, ax = plt.subplots(figsize=(11, 3.3))
        if uid == "total":
            h = hist.group_by("date").agg(pl.col("volume").sum()).sort("date").tail(91)
            ax.plot(h["date"], h["volume"], color="#222", lw=1.2)
        for p, alpha in ((95, 0.15), (80, 0.3)):
            ax.fill_between(rows["date"], rows[f"lo_{p}"], rows[f"hi_{p}"], alpha=alpha)
        ax.plot(rows["date"], rows["forecast"])
        ax.set_title(uid)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        plt.close(fig)
        svgs.append(buffer.getvalue())
    out.write_text("<html><body>" + "".join(svgs) + "</body></html>")
    return time.perf_counter() - started, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--skip-10k", action="store_true")
    parser.add_argument("--skip-svg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        demo = demo_outputs(args.demo, scratch)
        history = SAMPLE / "history.parquet"
        inputs = ["--history", history, "--forecast", demo / "forecast.parquet"]
        inputs += ["--backtest", demo / "backtest", "--plan", demo / "plan"]
        seconds, size = timed_report(scratch / "demo.html", *inputs)
        what = "demo report (history, forecast, backtest, plan)"
        print(f"{what}: {seconds:.2f} s, {size / 1e6:.2f} MB")
        seconds, size = timed_report(scratch / "fc.html", *inputs[:4])
        print(f"demo report (history, forecast): {seconds:.2f} s, {size / 1e6:.2f} MB")
        if not args.skip_10k:
            big = large_forecast(scratch / "forecast-10k.parquet")
            seconds, size = timed_report(scratch / "big.html", "--forecast", big)
            print(f"10k-lane forecast report: {seconds:.2f} s, {size / 1e6:.2f} MB")
        if not args.skip_svg:
            seconds, size = svg_fan_charts(demo / "forecast.parquet", history, scratch / "s.html")
            what = "demo fan charts as matplotlib SVG (no plotly.js)"
            print(f"{what}: {seconds:.2f} s, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
