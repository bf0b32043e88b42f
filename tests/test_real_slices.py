"""Real histories through forecast and backtest with the default config.

Two small slices of the project's real daily histories are vendored under tests/data/real/
(see its README): births in six states (strong weekly profile, Christmas and New Year) and
pizzas of nine kinds (low counts, days the shop was closed). The synthetic sample builds its
lanes as shares of their origin, so these are the cases where that assumption does not hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app

runner = CliRunner()
REAL = Path(__file__).parent / "data" / "real"
SLICES = ["birthdays_slice", "pizza_slice"]


@pytest.fixture(scope="module", params=SLICES)
def real(request, tmp_path_factory):
    """One slice, its default forecast (14 days) and a 2-cutoff default backtest."""
    history = REAL / f"{request.param}.parquet"
    out = tmp_path_factory.mktemp(request.param)
    toml = out / "bt.toml"
    toml.write_text("[backtest]\nwindows = 2\nstep = 7\nhorizon = 14\n")
    fc = runner.invoke(
        app, ["forecast", str(history), "-o", str(out / "fc.parquet"), "--horizon", "14"]
    )
    bt = runner.invoke(
        app, ["backtest", str(history), "-o", str(out / "bt"), "--config", str(toml)]
    )
    return history, out, fc, bt


def test_the_default_forecast_is_coherent_ordered_and_non_negative(real):
    history, out, fc, _ = real
    assert fc.exit_code == 0, fc.output
    f = pl.read_parquet(out / "fc.parquet")
    lanes = pl.read_parquet(history).select("origin", "destination").unique()
    assert f.filter(pl.col("level") == "lane").select("origin", "destination").unique().height == (
        lanes.height
    )
    assert f.get_column("date").n_unique() == 14
    assert (f["lo_95"] >= 0).all()
    assert ((f["lo_95"] <= f["lo_80"]) & (f["lo_80"] <= f["forecast"])).all()
    assert ((f["forecast"] <= f["hi_80"]) & (f["hi_80"] <= f["hi_95"])).all()
    by_origin = (
        f.filter(pl.col("level") == "lane")
        .group_by("origin", "date")
        .agg(pl.col("forecast").sum().alias("lanes"))
        .join(f.filter(pl.col("level") == "origin"), on=["origin", "date"])
    )
    assert (
        (by_origin["lanes"] - by_origin["forecast"]).abs() <= 1e-6 * by_origin["forecast"] + 1e-9
    ).all()
    total = f.filter(pl.col("level") == "total").sort("date")["forecast"]
    origins = f.filter(pl.col("level") == "origin").group_by("date").agg(pl.col("forecast").sum())
    assert ((origins.sort("date")["forecast"] - total).abs() <= 1e-6 * total).all()


def test_each_lane_is_shared_or_modelled_by_the_validation_rule(real):
    _, out, fc, _ = real
    assert fc.exit_code == 0, fc.output
    lane_models = (
        pl.read_parquet(out / "fc.parquet")
        .filter(pl.col("level") == "lane")
        .group_by("unique_id")
        .agg(pl.col("model").unique())
    )
    # One rule per lane over the whole horizon, and the label says which.
    assert (lane_models["model"].list.len() == 1).all()
    assert set(lane_models["model"].list.first()) <= {"Share", "LightGBM", "Zero/closed"}


def test_the_default_backtest_beats_the_per_lane_seasonal_naive_at_every_level(real):
    _, out, _, bt = real
    assert bt.exit_code == 0, bt.output
    metrics = json.loads((out / "bt" / "metrics.json").read_text())
    assert metrics["baseline"] == "naive" and len(metrics["cutoffs"]) == 2
    primary = metrics["metrics"][metrics["primary"]]
    naive = metrics["metrics"]["naive"]
    for level in metrics["levels"]:
        assert primary[level]["wape"] < naive[level]["wape"], level
        assert primary[level]["skill"] > 0, level
    # In-window calibration: lane intervals cover near nominal on days never fitted on
    # (2 cutoffs x 14 days x 6-9 lanes; 168-252 points, so a wide band).
    assert 0.65 <= primary["lane"]["coverage_80"] <= 0.95
    assert 0.85 <= primary["lane"]["coverage_95"] <= 1.0
