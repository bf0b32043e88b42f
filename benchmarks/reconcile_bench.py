"""Reconciliation at 10k and 100k lanes: mmplan.forecasting.mint against dense hierarchicalforecast.

Data: `mmplan sample` networks of about 6,000 lanes each (3,300 DSs), generated with
different seeds and their facility and region names prefixed by the shard (`s03-SC12`), so
a larger network is several independent ones side by side; two years of daily history,
the last 28 days held back. Hierarchy: total -> origin_region -> origin -> lane, built by
mmplan. Base forecasts are the same cheap vectorised model for every method, so the
benchmark is about reconciliation: each weekday's mean over the last 1, 2, 4 or 8 weeks,
the window chosen per series by in-sample error (`seasonal_means`), with in-sample residuals
from the same rule (NaN for the first weeks) and sigma = the in-sample RMSE.

Each method runs in a fresh child process that loads the arrays first; its time and peak
extra memory (peak RSS minus RSS after loading; the peak is reset after loading) cover the
reconciliation alone.
hierarchicalforecast runs `MinTrace(...).fit_predict` on the dense S it needs, means only
(its normality intervals form an n x n covariance per horizon step); mmplan computes means
and interval variances. Pooled WAPE (sum |error| / sum actual) on the 28 held-back days.

    .venv/bin/python benchmarks/reconcile_bench.py [--lanes 10000 100000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HOLDOUT = 28
WINDOWS = (1, 2, 4, 8)  # weeks the base model may average each weekday over
LANES_PER_SHARD = 6_000
LANES_PER_DS = 1.78  # what `mmplan sample` gives with its default FCs and SCs
LEVELS = ("total", "origin_region", "origin", "lane")
# (label, engine, method); hierarchicalforecast's dense methods only run at the small size.
METHODS = [
    ("hierarchicalforecast MinTrace(mint_shrink), dense", "hf", "mint_shrink"),
    ("hierarchicalforecast MinTrace(wls_var), dense", "hf", "wls_var"),
    ("mmplan MinTrace(wls_var)", "mmplan", "MinTrace(wls_var)"),
    ("mmplan MinTrace(block_shrink)", "mmplan", "MinTrace(block_shrink)"),
    ("mmplan BottomUp", "mmplan", "BottomUp"),
]
HF_MAX_LANES = 20_000  # dense S alone is n^2 x 8 bytes: 80 GB at 100k


def build_panel(n_lanes: int, seed: int, workdir: Path) -> dict:
    """Shards of `mmplan sample` -> hierarchy, base forecasts and residuals saved as arrays."""
    import polars as pl
    from scipy import sparse

    from mmplan.config import SampleConfig
    from mmplan.forecasting import build_hierarchy
    from mmplan.synthetic import sample

    shards = max(1, math.ceil(n_lanes / LANES_PER_SHARD))
    dss = round(n_lanes / shards / LANES_PER_DS)
    attrs, blocks = [], []
    started = time.perf_counter()
    for k in range(shards):
        history = sample(SampleConfig(seed=seed + k, dss=dss))["history"]
        prefix = [pl.lit(f"s{k:02d}-") + pl.col(c) for c in ("origin", "destination")]
        history = history.with_columns(
            origin=prefix[0],
            destination=prefix[1],
            origin_region=pl.lit(f"s{k:02d}-") + pl.col("origin_region"),
        )
        first = history["date"].min()
        days = (history["date"].max() - first).days + 1
        lanes = history.group_by("origin", "destination").agg(pl.col("origin_region").first())
        lanes = lanes.sort("origin", "destination").with_row_index("_lane")
        rows = history.join(lanes, on=["origin", "destination"]).select(
            "_lane", (pl.col("date") - pl.lit(first)).dt.total_days().alias("_day"), "volume"
        )
        y = np.zeros((lanes.height, days))  # a day without a row is zero volume
        y[rows["_lane"].to_numpy(), rows["_day"].to_numpy()] = rows["volume"].to_numpy()
        attrs.append(lanes.drop("_lane"))
        blocks.append(y)
        del history, rows
    lanes = pl.concat(attrs)
    y_lanes = np.concatenate(blocks)
    del blocks
    levels = [("total", []), ("origin_region", ["origin_region"]), ("origin", ["origin"])]
    levels.append(("lane", ["origin", "destination"]))
    hier = build_hierarchy(lanes, levels)
    # build_hierarchy sorts lanes by (origin, destination): put the volume rows in its order.
    order = (
        hier.lanes.select("origin", "destination")
        .join(lanes.with_row_index("_i"), on=["origin", "destination"], how="left")["_i"]
        .to_numpy()
    )
    y_all = np.asarray(hier.S @ y_lanes[order])
    del y_lanes
    train, test = y_all[:, :-HOLDOUT], y_all[:, -HOLDOUT:]
    y_hat, fitted = seasonal_means(train)
    residuals = train - fitted
    rmse = np.sqrt(np.nanmean(residuals**2, axis=1))
    sigma = np.repeat(rmse[:, None], HOLDOUT, axis=1)
    level_index = {name: k for k, (name, _) in enumerate(hier.levels)}
    level_of_row = np.array([level_index[v] for v in hier.series["level"]], dtype=np.int64)
    workdir.mkdir(parents=True, exist_ok=True)
    sparse.save_npz(workdir / "S.npz", hier.S)
    np.savez(
        workdir / "arrays.npz",
        bottom_rows=hier.bottom_rows,
        level_of_row=level_of_row,
        y_hat=y_hat,
        sigma=sigma,
        residuals=residuals,
        train=train,
        fitted=fitted,
    )
    np.save(workdir / "test.npy", test)
    return {
        "lanes": hier.lanes.height,
        "series": hier.series.height,
        "aggregates": hier.series.height - hier.lanes.height,
        "shards": shards,
        "seconds": time.perf_counter() - started,
        "level_of_row": level_of_row,
        "test": test,
        "y_hat": y_hat,
    }


def seasonal_means(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each weekday's mean over the last k weeks, k chosen per series: forecast and fitted.

    k in WINDOWS minimises the in-sample absolute error over the last 8 weeks. The choice
    makes the base forecasts incoherent (one linear rule for all series would already add
    up), as per-series models are. fitted[t] = mean(y[t-7], ..., y[t-7k]); NaN for t < 7k.
    """
    n, T = train.shape
    best_err = np.full(n, np.inf)
    y_hat = np.empty((n, HOLDOUT))
    fitted = np.full_like(train, np.nan)
    steps = np.arange(HOLDOUT) % 7  # step h falls on the weekday of day T + h
    for k in WINDOWS:
        fit = np.full_like(train, np.nan)
        fit[:, 7 * k :] = sum(train[:, 7 * (k - j) : T - 7 * j] for j in range(1, k + 1)) / k
        err = np.abs(train[:, -56:] - fit[:, -56:]).mean(axis=1)
        better = err < best_err
        best_err[better] = err[better]
        fitted[better] = fit[better]
        # The same weekday in each of the last k weeks before the horizon.
        lags = sum(train[:, T - 7 * j + steps] for j in range(1, k + 1)) / k
        y_hat[better] = lags[better]
    return y_hat, fitted


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak_rss() -> float:
    """Forget the peak so far (loading the arrays) and return the current RSS in MB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to VmRSS
        return _status_mb("VmRSS")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss() -> float:
    try:
        return _status_mb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(engine: str, method: str, workdir: Path) -> None:
    """Child process: load the arrays, reconcile, save the means, print time and memory."""
    import warnings

    from scipy import sparse

    from mmplan.forecasting import mint

    if engine == "hf":
        from hierarchicalforecast.methods import MinTrace
    S = sparse.load_npz(workdir / "S.npz").tocsr()
    data = dict(np.load(workdir / "arrays.npz"))
    baseline = _reset_peak_rss()
    started = time.perf_counter()
    if engine == "hf":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean = MinTrace(method=method).fit_predict(
                S=S.toarray(),
                y_hat=data["y_hat"],
                y_insample=data["train"],
                y_hat_insample=data["fitted"],
            )["mean"]
    else:
        mean = mint.reconcile(
            S,
            data["bottom_rows"],
            data["y_hat"],
            method,
            residuals=data["residuals"],
            sigma=data["sigma"],
            level_of_row=data["level_of_row"],
        ).mean
    seconds = time.perf_counter() - started
    np.save(workdir / "mean.npy", mean)
    print(json.dumps({"seconds": seconds, "extra_mb": _peak_rss() - baseline}))


def wape(mean: np.ndarray, test: np.ndarray, level_of_row: np.ndarray) -> list[float]:
    out = []
    for k in range(len(LEVELS)):
        rows = level_of_row == k
        out.append(float(np.abs(mean[rows] - test[rows]).sum() / test[rows].sum()))
    return out


def _printer(lanes: int):
    def row(label: str, seconds: str, extra_mb: str, wapes: list[float]) -> None:
        print(
            f"{lanes:>8,} {label:<52}{seconds:>9}{extra_mb:>10}"
            + "".join(f"{x:>15.4f}" for x in wapes)
        )

    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch (default: a temp dir)")
    parser.add_argument("--run", nargs=2, metavar=("ENGINE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(*args.run, args.workdir)
        return
    root = args.workdir or Path(tempfile.mkdtemp(prefix="reconcile_bench_"))
    load = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    print(f"reconciliation benchmark; load average {load}; scratch {root}")
    header = f"{'lanes':>8} {'method':<52}{'seconds':>9}{'extra MB':>10}" + "".join(
        f"{lv:>15}" for lv in LEVELS
    )
    for n_lanes in args.lanes:
        workdir = root / f"lanes_{n_lanes}"
        panel = build_panel(n_lanes, args.seed, workdir)
        print(
            f"\n{panel['lanes']:,} lanes, {panel['series']:,} series ({panel['aggregates']:,} "
            f"aggregates) from {panel['shards']} sample shards in {panel['seconds']:.0f} s; "
            f"WAPE on {HOLDOUT} held-back days"
        )
        print(header)
        row = _printer(panel["lanes"])
        row(
            "base forecasts, not reconciled",
            "-",
            "-",
            wape(panel["y_hat"], panel["test"], panel["level_of_row"]),
        )
        for label, engine, method in METHODS:
            if engine == "hf" and panel["lanes"] > HF_MAX_LANES:
                gb = panel["series"] ** 2 * 8 / 1e9
                print(f"{panel['lanes']:>8,} {label:<52} cannot run: dense S alone is {gb:,.0f} GB")
                continue
            cmd = [sys.executable, __file__, "--run", engine, method, "--workdir", str(workdir)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{panel['lanes']:>8,} {label:<52} failed: {tail}")
                continue
            stats = json.loads(done.stdout.strip().splitlines()[-1])
            mean = np.load(workdir / "mean.npy")
            row(
                label,
                f"{stats['seconds']:.1f}",
                f"{stats['extra_mb']:,.0f}",
                wape(mean, panel["test"], panel["level_of_row"]),
            )
        del panel


if __name__ == "__main__":
    main()
