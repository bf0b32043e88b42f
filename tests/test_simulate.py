"""mmplan simulate and mmplan promise on tiny networks: real solver, real Parquet."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_optimize import lanes, nodes
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import OptimizeConfig, PromiseConfig, SimulateConfig
from mmplan.errors import DataError
from mmplan.plan import optimize
from mmplan.plan.promise import promise
from mmplan.plan.simulation import PlanTables, sample_demand, simulate

DATES = [dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(5)]
NODES = nodes(
    ("F1", "FC", None, 0.0, None, None),
    ("F2", "FC", None, 0.0, None, None),
    ("S", "SC", None, 0.1, None, None),
    ("D1", "DS", None, 0.0, None, None),
    ("D2", "DS", None, 0.0, None, None),
)
LANES = lanes(
    ("F1", "S", 100, 50, 0.01, None),
    ("F2", "S", 100, 50, 0.01, None),
    ("S", "D1", 100, 40, 0.01, None),
    ("S", "D2", 100, 40, 0.01, None),
    ("F1", "D1", 100, 80, 0.0, None),
).with_columns(transit_days=pl.Series([1, 1, 2, 2, 1]))
PAIRS = {("F1", "D1"): 120.0, ("F1", "D2"): 60.0, ("F2", "D2"): 90.0}


def forecast_table(spread: float = 0.2) -> pl.DataFrame:
    """Lane rows and origin rows (the sums), with 80% intervals of +-spread."""
    rows = []
    for d in DATES:
        for origin in ("F1", "F2"):
            mine = {k: v for k, v in PAIRS.items() if k[0] == origin}
            for (o, t), v in mine.items():
                rows.append(
                    ("lane", f"lane:{o}/{t}", o, t, d, v, v * (1 - spread), v * (1 + spread))
                )
            total = sum(mine.values())
            rows.append(
                (
                    "origin",
                    f"origin:{origin}",
                    origin,
                    None,
                    d,
                    total,
                    total * (1 - spread / 2),
                    total * (1 + spread / 2),
                )
            )
    return pl.DataFrame(
        rows,
        schema=[
            "level",
            "unique_id",
            "origin",
            "destination",
            "date",
            "forecast",
            "lo_80",
            "hi_80",
        ],
        orient="row",
    ).with_columns(model=pl.lit("hand"))


CFG = SimulateConfig(samples=60, seed=11)
OPT = OptimizeConfig(time_limit=20, relative_gap=1e-6, workers=2)


def test_samples_match_the_forecast_mean_and_levels_add_up():
    f = forecast_table()
    ds = sample_demand(f, CFG, 4000, 5)
    mean, sd = ds.volume.mean(axis=0), ds.volume.std(axis=0)
    se = sd / np.sqrt(4000)
    assert np.all(np.abs(mean - ds.rows["forecast"].to_numpy()) < 5 * se + 1e-9)
    # Lanes add up to their origin in every sample.
    for i, (o, d) in enumerate(ds.parents.select("origin", "date").iter_rows()):
        mine = ((ds.rows["origin"] == o) & (ds.rows["date"] == d)).to_numpy()
        np.testing.assert_allclose(ds.volume[:, mine].sum(axis=1), ds.parent_volume[:, i])
    # The origin's spread is its own interval's (sigma = half-width / z_80).
    f1 = (ds.parents["origin"] == "F1").to_numpy()
    assert ds.parent_volume[:, f1].std(axis=0).mean() == pytest.approx(18 / 1.2816, rel=0.1)
    # Lag-1 autocorrelation across dates: without total rows the origins are the top.
    first = ds.parent_volume[:, np.flatnonzero(f1)[:2]]
    assert np.corrcoef(first.T)[0, 1] == pytest.approx(CFG.total_autocorrelation, abs=0.06)


def with_total(f: pl.DataFrame, spread: float) -> pl.DataFrame:
    """`f` with a total row per date: the origins' sum, an 80% interval of +-spread."""
    total = (
        f.filter(pl.col("level") == "origin")
        .group_by("date")
        .agg(pl.col("forecast").sum())
        .with_columns(
            level=pl.lit("total"),
            unique_id=pl.lit("total"),
            origin=pl.lit(None, pl.String),
            destination=pl.lit(None, pl.String),
            lo_80=pl.col("forecast") * (1 - spread),
            hi_80=pl.col("forecast") * (1 + spread),
            model=pl.lit("hand"),
        )
    )
    return pl.concat([f, total.select(f.columns)])


def test_the_total_spreads_as_its_own_interval_and_origins_add_up_to_it():
    # Origins of +-10% and a total of +-10%: the origins move together. Drawn independently
    # (the first joint model) the total's spread would be 0.72 of its interval's here.
    f = with_total(forecast_table(), spread=0.1)
    ds = sample_demand(f, CFG, 4000, 7)
    dates = ds.parents["date"].to_numpy()
    days = sorted(set(dates.tolist()))
    total = np.stack([ds.parent_volume[:, dates == d].sum(axis=1) for d in days], axis=1)
    forecast = np.array([ds.parents.filter(pl.col("date") == d)["forecast"].sum() for d in days])
    sigma = 0.1 * forecast / 1.2816
    np.testing.assert_allclose(total.std(axis=0), sigma, rtol=0.08)
    np.testing.assert_allclose(total.mean(axis=0), forecast, rtol=0.01)
    # Each origin keeps its own spread, and the lanes add up to their origin.
    f1 = (ds.parents["origin"] == "F1").to_numpy()
    f1_sigma = 0.1 * ds.parents.filter(pl.col("origin") == "F1")["forecast"].to_numpy() / 1.2816
    np.testing.assert_allclose(ds.parent_volume[:, f1].std(axis=0), f1_sigma, rtol=0.08)
    for i, (o, d) in enumerate(ds.parents.select("origin", "date").iter_rows()):
        mine = ((ds.rows["origin"] == o) & (ds.rows["date"] == d)).to_numpy()
        np.testing.assert_allclose(ds.volume[:, mine].sum(axis=1), ds.parent_volume[:, i])
    # The total's noise carries total_autocorrelation across dates.
    assert np.corrcoef(total[:, :2].T)[0, 1] == pytest.approx(CFG.total_autocorrelation, abs=0.06)


def test_seeded_reruns_are_identical():
    f = forecast_table()
    a, b = sample_demand(f, CFG, 50, 3), sample_demand(f, CFG, 50, 3)
    assert np.array_equal(a.volume, b.volume)
    assert not np.array_equal(a.volume, sample_demand(f, CFG, 50, 4).volume)


def _plan_tables(plan) -> PlanTables:
    return PlanTables(plan.trucks, plan.nodes)


def test_ample_trucks_serve_every_sample_and_half_demand_trucks_do_not():
    f = forecast_table(spread=0.3)
    lane_rows = f.filter(pl.col("level") == "lane")
    ample_demand = lane_rows.with_columns(pl.col("forecast") * 3)
    half_demand = lane_rows.with_columns(pl.col("forecast") * 0.5)
    ample = optimize(ample_demand, NODES, LANES, OPT, column="forecast")
    half = optimize(half_demand, NODES, LANES, OPT, column="forecast")
    ds = sample_demand(f, CFG, CFG.samples, CFG.seed)
    plans = {"ample": _plan_tables(ample), "half": _plan_tables(half)}
    res = simulate(plans, ds, NODES, LANES, OPT, CFG)
    s = res.summary["plans"]
    assert s["ample"]["p_any_unserved"] == 0.0
    assert s["ample"]["expected_unserved_volume"] == pytest.approx(0.0, abs=1e-6)
    assert s["half"]["p_any_unserved"] > 0.9
    assert s["half"]["expected_shortfall_cost"] == pytest.approx(
        s["half"]["expected_unserved_volume"] * CFG.shortfall_cost
    )
    assert s["half"]["cost_p50"] <= s["half"]["cost_p90"] <= s["half"]["cost_p99"]
    served = res.pairs.filter(pl.col("plan") == "ample")["service_level"]
    assert served.to_list() == pytest.approx([1.0] * served.len())
    # Spot trucks at a premium take the shortfall instead.
    spot = CFG.model_copy(update={"spot_premium": 2.0})
    with_spot = simulate({"half": plans["half"]}, ds, NODES, LANES, OPT, spot).summary["plans"]
    assert with_spot["half"]["expected_unserved_volume"] == pytest.approx(0.0, abs=1e-6)
    assert with_spot["half"]["expected_spot_trucks"] > 0


def test_promised_days_equal_hand_computed_path_days():
    # F1 -> D1: 90 via S (1 + 2 transit days, 1 day at S: 4 days), 10 direct (1 day).
    flows = pl.DataFrame(
        {
            "origin": ["F1"] * 3,
            "destination": ["D1"] * 3,
            "lane_origin": ["F1", "S", "F1"],
            "lane_destination": ["S", "D1", "D1"],
            "date": [DATES[0]] * 3,
            "volume": [90.0, 90.0, 10.0],
        }
    )
    at_95 = promise(flows, NODES, LANES, OPT, PromiseConfig(share=0.95)).table
    days = dict(zip(at_95["path"].to_list(), at_95["path_days"].to_list(), strict=True))
    assert days == {"F1 -> S -> D1": 4.0, "F1 -> D1": 1.0}
    assert at_95["promised_days"].unique().to_list() == [4.0]
    assert sorted(at_95["share"].to_list()) == pytest.approx([0.1, 0.9])
    at_10 = promise(flows, NODES, LANES, OPT, PromiseConfig(share=0.1)).table
    assert at_10["promised_days"].unique().to_list() == [1.0]
    dwell = OPT.model_copy(update={"dwell_days": {"FC": 0.5, "SC": 0.0, "DS": 0.0}})
    t = promise(flows, NODES, LANES, dwell, PromiseConfig()).table
    assert sorted(t["path_days"].to_list()) == [1.5, 3.5]
    with pytest.raises(DataError, match="transit_days"):
        promise(flows, NODES, LANES.drop("transit_days"), OPT, PromiseConfig())


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, df in (("nodes", NODES), ("lanes", LANES), ("forecast", forecast_table())):
        out[name] = tmp_path / f"{name}.parquet"
        df.write_parquet(out[name])
    plan = tmp_path / "plan"
    args = [
        "optimize",
        str(out["forecast"]),
        "--nodes",
        str(out["nodes"]),
        "--lanes",
        str(out["lanes"]),
        "-o",
        str(plan),
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    out["plan"] = plan
    return out


def sim(files, *extra: str, out: str = "sim"):
    args = [
        "simulate",
        str(files["plan"]),
        "--demand",
        str(files["forecast"]),
        "-o",
        str(files["nodes"].parent / out),
        "--samples",
        "20",
        "--seed",
        "2",
        *extra,
    ]
    return CliRunner().invoke(app, args)


def test_cli_simulate_writes_tables_and_is_reproducible(files):
    other = files["plan"].parent / "other"
    shutil.copytree(files["plan"], other)
    result = sim(files, "--json", "--compare", str(other))
    assert result.exit_code == 0, result.output
    out = files["nodes"].parent / "sim"
    assert {"samples.parquet", "pairs.parquet", "facilities.parquet", "summary.json"} <= {
        p.name for p in out.iterdir()
    }
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["samples"] == 20 and len(printed["plans"]) == 2
    again = sim(files, out="sim2")
    assert again.exit_code == 0, again.output
    a = pl.read_parquet(out / "samples.parquet").filter(pl.col("plan") == pl.col("plan").first())
    b = pl.read_parquet(files["nodes"].parent / "sim2" / "samples.parquet")
    assert a.drop("plan").equals(b.drop("plan"))


def test_cli_simulate_exit_codes(files, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulate]\nsampels = 3\n")
    assert sim(files, "--config", str(bad)).exit_code == 78
    wide = tmp_path / "wide.toml"
    wide.write_text("[simulate]\ninterval = 95\n")
    result = sim(files, "--config", str(wide))
    assert result.exit_code == 65 and "hi_95" in result.output
    files["plan"] = tmp_path / "no-plan"
    assert sim(files).exit_code == 66


def test_cli_promise(files, tmp_path):
    out = tmp_path / "promise.parquet"
    args = ["promise", str(files["plan"]), "--lanes", str(files["lanes"]), "-o", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out)
    assert set(table["path_days"].to_list()) <= {1.0, 4.0}
    no_days = tmp_path / "lanes.parquet"
    LANES.drop("transit_days").write_parquet(no_days)
    args[3] = str(no_days)
    assert CliRunner().invoke(app, args).exit_code == 65


def test_cli_simulate_reads_the_day_rows_of_a_forecast_with_a_grain_column(files):
    # A long-range forecast also holds week rows (dated on Mondays): routed as days, they
    # doubled those dates' demand.
    day = pl.read_parquet(files["forecast"])
    bands = [c for c in day.columns if c.startswith(("lo_", "hi_"))]
    keys = [c for c in day.columns if c not in ("date", "forecast", "model", *bands)]
    weeks = (
        day.group_by(*keys, pl.col("date").dt.truncate("1w"))
        .agg(pl.col("forecast", *bands).sum(), pl.col("model").first())
        .with_columns(pl.lit("week").alias("grain"))
    )
    both = pl.concat([day.with_columns(pl.lit("day").alias("grain")), weeks], how="diagonal")
    both.write_parquet(files["forecast"])
    assert sim(files, out="grain").exit_code == 0
    day.write_parquet(files["forecast"])
    assert sim(files, out="daily").exit_code == 0
    root = files["nodes"].parent
    a, b = (pl.read_parquet(root / o / "samples.parquet") for o in ("grain", "daily"))
    assert a.equals(b)
