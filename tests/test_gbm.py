"""`model = "LightGBM"`: the global model across series (mmplan.forecasting.gbm)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmplan.forecasting import forecast
from tests.conftest import START, fast_config, make_history


def gbm(**overrides):
    return fast_config(model="LightGBM", horizon=14, n_jobs=1, **overrides)


def weekday_lanes(days: int, idle: list[int], seed: int) -> pl.DataFrame:
    """Six lanes of two origins, every one idle on the weekdays in `idle` (0 = Monday)."""
    rng = np.random.default_rng(seed)
    dates = [START + dt.timedelta(days=k) for k in range(days)]
    busy = np.array([d.weekday() not in idle for d in dates], dtype=float)
    frames = []
    for i in range(6):
        level = rng.uniform(20, 400)
        frames.append(
            pl.DataFrame(
                {
                    "date": dates,
                    "origin": f"FC{i % 2}",
                    "destination": f"DS{i}",
                    "volume": rng.poisson(level * busy).astype(float),
                    "origin_region": "EAST",
                }
            )
        )
    return pl.concat(frames)


@settings(max_examples=4, deadline=None)
@given(idle=st.integers(0, 6).map(lambda d: [d]), seed=st.integers(0, 99))
def test_the_global_model_learns_the_weekdays_a_lane_does_not_run(idle, seed):
    # One idle weekday: with two, the lanes ship on 5 days of 7, an inter-demand interval
    # of 1.4 > sparse_adi, and the sparse rule gives them Croston instead.
    fc = forecast(weekday_lanes(140, idle, seed), gbm())
    lanes = fc.filter(pl.col("level") == "lane")
    off = (lanes.get_column("date").dt.weekday() - 1).is_in(idle)
    assert lanes.filter(off)["forecast"].max() < 0.05 * lanes.filter(~off)["forecast"].mean()
    assert set(lanes["model"]) == {"LightGBM"}


def test_forecasts_are_non_negative_ordered_and_add_up():
    fc = forecast(make_history(n_lanes=9, days=150), gbm(reconciliation="MinTrace(wls_var)"))
    assert (fc["lo_95"] >= 0).all()
    assert ((fc["lo_95"] <= fc["lo_80"]) & (fc["lo_80"] <= fc["forecast"])).all()
    assert ((fc["forecast"] <= fc["hi_80"]) & (fc["hi_80"] <= fc["hi_95"])).all()
    lanes = fc.filter(pl.col("level") == "lane").group_by("date").agg(pl.col("forecast").sum())
    total = fc.filter(pl.col("level") == "total").select("date", "forecast")
    both = lanes.join(total, on="date", suffix="_total")
    assert (
        (both["forecast"] - both["forecast_total"]).abs() <= 1e-6 * both["forecast_total"]
    ).all()


def test_a_rerun_is_identical_and_units_do_not_change_the_forecast():
    history = make_history(n_lanes=6, days=120, seed=3)
    first, again = forecast(history, gbm()), forecast(history, gbm())
    assert first.equals(again)
    scaled = forecast(history.with_columns(pl.col("volume") * 1000.0), gbm())
    lane = pl.col("level") == "lane"
    a = first.filter(lane)["forecast"].to_numpy()
    b = scaled.filter(lane)["forecast"].to_numpy() / 1000.0
    assert np.allclose(a, b, rtol=1e-3, atol=1e-6 * a.max())


def test_a_day_the_whole_network_was_closed_does_not_drag_the_next_days():
    # The last day has no rows at all (a holiday closure): the recursive model must not
    # carry that zero into the week after it.
    history = make_history(n_lanes=6, days=150, new_lane=False, closed_lane=False, sparse_every=0)
    end = history.get_column("date").max()
    closed = history.filter(pl.col("date") != end).vstack(
        history.filter(pl.col("date") == end).with_columns(pl.lit(0.0).alias("volume"))
    )
    fc = forecast(closed, gbm())
    total = fc.filter(pl.col("level") == "total").sort("date")["forecast"][:7].sum()
    week = history.filter(pl.col("date") > end - dt.timedelta(days=8), pl.col("date") < end)
    assert total > 0.8 * week["volume"].sum()


@pytest.mark.parametrize("chosen, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_mmplan_makes_openmp_wait_passively_unless_the_user_chose(chosen, expected):
    # Spinning OpenMP threads slowed two concurrent forecasts 2.3x (mmplan/__init__.py).
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if chosen is not None:
        env["OMP_WAIT_POLICY"] = chosen
    code = "import os, mmplan; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == expected, out.stderr


def test_a_local_level_carries_a_growing_network_past_the_largest_day_it_saw():
    # Trees cannot predict above the targets they were fitted on: with the whole history's
    # mean as the unit, a network growing 0.5% a day is forecast flat at its recent level.
    # With gbm_level_days the targets are ratios to the last 28 days, and growth goes on.
    rng = np.random.default_rng(4)
    days = 168
    growth = 1.005 ** np.arange(days)
    dates = [START + dt.timedelta(days=k) for k in range(days)]
    weekly = np.array([1.0, 1.1, 1.0, 0.9, 1.2, 0.6, 0.4])[[d.weekday() for d in dates]]
    history = pl.concat(
        pl.DataFrame(
            {
                "date": dates,
                "origin": f"FC{i % 2}",
                "destination": f"DS{i}",
                "volume": rng.poisson(100 * (i + 1) * growth * weekly).astype(float),
                "origin_region": "EAST",
            }
        )
        for i in range(4)
    )
    last_week = history.filter(pl.col("date") > max(dates) - dt.timedelta(days=7))
    seen = last_week["volume"].sum()  # the largest week of the history
    totals = {}
    for level in (0, 28):
        fc = forecast(history, gbm(gbm_level_days=level, lanes="model"))
        week2 = fc.filter(pl.col("level") == "total").sort("date")["forecast"][7:14]
        totals[level] = week2.sum()
    # The second week ahead is 5-7% above the last one seen (0.5% a day): the local level
    # gets there (7.0% here), the whole-history unit falls short (2.6%).
    assert totals[28] > 1.04 * seen
    assert totals[28] > 1.025 * totals[0]
