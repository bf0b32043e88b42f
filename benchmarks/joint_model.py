"""The simulation's joint demand model against backtest errors (issue 14, item 3).

`mmplan simulate` draws coherent demand from a forecast table that states marginal
intervals only (mmplan.plan.simulation: each origin normal from its interval, split over its
lanes by their shares with the lanes' own noise, AR(1) across dates, origins independent).
The parts of that model the forecast does not state are what this script checks, on the
forecasts and actuals of mmplan's default rolling-origin backtest (12 cutoffs a week apart,
28 days each):

- `lane` / `origin`, per date: the marginals (these mostly restate the intervals' coverage);
- `total`, per date: the sum over origins, which the model draws independently;
- `lane 7d` / `origin 7d`: sums over each week of the horizon, set by the autocorrelation;
- `total 28d`: the network's volume over the whole horizon (both at once).

For each cutoff its primary run's lane, origin and total points become a forecast table,
and `--samples` (500) samples are drawn with `sample_demand` at each `--rho` pair
TOTAL/SHARE ([simulate] total_autocorrelation / autocorrelation; by default the shipped
0.8/0.3, one 0.5 for all, and none); a check's score is the share of actuals
inside the samples' central 80% (10th to 90th percentile), pooled over series and cutoffs:
80% is right, less means the model is too narrow there. The measured autocorrelation is the
lag-1 correlation of standardized errors (actual - forecast) / sigma over consecutive dates,
sigma from the 80% interval as the simulation reads it, pooled per level.

Sets: `sample` (data/sample/history.parquet), and `pizza` and `births` from
../shared/data/real/ (skipped with a note when missing). A backtest already made with the
default config can be given as `--backtest NAME=DIR` (its points.parquet is read); otherwise
the script runs `mmplan backtest HISTORY -o DIR --windows 12` into a temporary folder.

    .venv/bin/python benchmarks/joint_model.py [--sets sample,pizza,births] [--samples 500]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path
from statistics import NormalDist

import numpy as np
import polars as pl

from mmplan.config import SimulateConfig
from mmplan.plan.simulation import sample_demand

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
HISTORIES = {
    "sample": ROOT / "data" / "sample" / "history.parquet",
    "pizza": REAL / "pizza.parquet",
    "births": REAL / "birthdays.parquet",
}
CHECKS = ("lane", "origin", "total", "lane 7d", "origin 7d", "total 28d")


def points(name: str, given: dict[str, Path], tmp: Path) -> pl.DataFrame | None:
    """The primary run's lane and origin points of the set's default 12-cutoff backtest."""
    out = given.get(name)
    if out is None:
        history = HISTORIES[name]
        if not history.exists():
            print(f"{name}: {history} is missing; skipped")
            return None
        out = tmp / name
        cmd = [str(ROOT / ".venv" / "bin" / "mmplan"), "backtest", str(history), "-o", str(out)]
        subprocess.run([*cmd, "--windows", "12"], check=True, stdout=subprocess.DEVNULL)
    p = pl.read_parquet(out / "points.parquet")
    primary = p.filter(pl.col("run") != "naive")["run"].unique().to_list()
    keys = pl.col("unique_id").str.split_exact(":", 1).struct.field("field_1")
    return (
        p.filter(pl.col("run") == primary[0], pl.col("level").is_in(["lane", "origin", "total"]))
        .with_columns(key=keys)
        .with_columns(
            origin=pl.col("key").str.split("/").list.get(0),
            destination=pl.when(pl.col("level") == "lane")
            .then(pl.col("key").str.split("/").list.get(1, null_on_oob=True))
            .otherwise(None),
        )
        .drop("key")
    )


def measured_rho(p: pl.DataFrame) -> dict[str, float]:
    """Per level, the lag-1 correlation of (actual - forecast) / sigma over consecutive
    dates of one series and cutoff."""
    z80 = NormalDist().inv_cdf(0.9)
    sigma = (pl.col("hi_80") - pl.col("lo_80")) / (2 * z80)
    z = p.filter(sigma > 0).with_columns(z=(pl.col("actual") - pl.col("forecast")) / sigma)
    z = z.sort("level", "unique_id", "cutoff", "date").with_columns(
        nxt=pl.col("z").shift(-1).over("level", "unique_id", "cutoff")
    )
    pairs = z.drop_nulls("nxt")
    return {
        lv: float(np.corrcoef(g["z"].to_numpy(), g["nxt"].to_numpy())[0, 1])
        for (lv,), g in pairs.group_by("level")
    }


def _inside(samples: np.ndarray, actual: np.ndarray) -> tuple[int, int]:
    """Actuals (columns) inside the samples' (rows) 10th-90th percentile, and how many."""
    lo, hi = np.percentile(samples, [10, 90], axis=0)
    return int(((actual >= lo) & (actual <= hi)).sum()), len(actual)


def _weekly(frame: pl.DataFrame) -> np.ndarray:
    """The week of the horizon (0..3) of each row, counted from its first date."""
    days = frame.select((pl.col("date") - pl.col("date").min()).dt.total_days())
    return days.to_series().to_numpy() // 7


def score_cutoff(
    p: pl.DataFrame, rho: tuple[float, float], samples: int, seed: int
) -> dict[str, list[int]]:
    """Per check, [inside, count] for one cutoff's points."""
    table = p.select("level", "origin", "destination", "date", "forecast", "lo_80", "hi_80")
    cfg = SimulateConfig(
        samples=samples, seed=seed, total_autocorrelation=rho[0], autocorrelation=rho[1]
    )
    ds = sample_demand(table, cfg, samples, seed)
    lanes = ds.rows.join(
        p.filter(pl.col("level") == "lane").select("origin", "destination", "date", "actual"),
        on=["origin", "destination", "date"],
        how="left",
    )
    parents = ds.parents.join(
        p.filter(pl.col("level") == "origin").select("origin", "date", "actual"),
        on=["origin", "date"],
        how="left",
    )
    la, pa = lanes["actual"].to_numpy(), parents["actual"].to_numpy()
    out = {
        "lane": list(_inside(ds.volume, la)),
        "origin": list(_inside(ds.parent_volume, pa)),
    }
    dates = parents["date"].to_numpy()
    days = sorted(set(dates.tolist()))
    per_day = np.stack([ds.parent_volume[:, dates == d].sum(1) for d in days], axis=1)
    actual_day = np.array([pa[dates == d].sum() for d in days])
    out["total"] = list(_inside(per_day, actual_day))
    out["total 28d"] = list(_inside(per_day.sum(1, keepdims=True), actual_day.sum(keepdims=True)))
    for name, frame, vol, act, keys in (
        ("lane 7d", lanes, ds.volume, la, ["origin", "destination"]),
        ("origin 7d", parents, ds.parent_volume, pa, ["origin"]),
    ):
        week = _weekly(frame)
        groups = frame.select(keys).with_columns(week=week).with_row_index("_r")
        ids = groups.group_by([*keys, "week"], maintain_order=True).agg("_r")
        sums = np.stack([vol[:, np.array(r)].sum(1) for r in ids["_r"].to_list()], axis=1)
        acts = np.array([act[np.array(r)].sum() for r in ids["_r"].to_list()])
        out[name] = list(_inside(sums, acts))
    return out


def evaluate(p: pl.DataFrame, rho: tuple[float, float], samples: int) -> dict[str, float]:
    """Per check, the share of actuals inside the samples' central 80%, pooled."""
    totals = {c: [0, 0] for c in CHECKS}
    for i, (_, part) in enumerate(sorted(p.group_by("cutoff"), key=lambda g: str(g[0]))):
        for c, (inside, n) in score_cutoff(part, rho, samples, seed=i).items():
            totals[c][0] += inside
            totals[c][1] += n
    return {c: totals[c][0] / max(totals[c][1], 1) for c in CHECKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="sample,pizza,births")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--rho", default="0.8/0.3,0.5/0.5,0/0")
    parser.add_argument("--backtest", action="append", default=[], help="NAME=DIR")
    args = parser.parse_args()
    given = {k: Path(v) for k, v in (b.split("=", 1) for b in args.backtest)}
    header = "| set | rho total / share | " + " | ".join(CHECKS) + " |"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            p = points(name, given, Path(tmp))
            if p is None:
                continue
            rho_m = measured_rho(p)
            print(
                f"{name}: measured lag-1 autocorrelation "
                + ", ".join(f"{lv} {r:.2f}" for lv, r in sorted(rho_m.items()))
            )
            for r in args.rho.split(","):
                top, share = (float(v) for v in r.split("/"))
                cov = evaluate(p, (top, share), args.samples)
                label = f"{top:g} / {share:g}"
                rows.append(
                    f"| {name} | {label} | " + " | ".join(f"{cov[c]:.0%}" for c in CHECKS) + " |"
                )
                print(rows[-1], flush=True)
    print("\nshare of actuals inside the samples' central 80% (10th-90th percentile):")
    print(header)
    print("|" + "---|" * (len(CHECKS) + 2))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
