"""The lane rule of `lanes = "auto"` and the shares' weekday profiles (issue 12, item 2)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from mmplan.config import ForecastConfig
from mmplan.forecasting import forecast
from tests.conftest import START


def two_lanes(days: int, weekday_only: list[int], seed: int, level: float) -> pl.DataFrame:
    """One origin, two lanes: DS1 every day, DS2 only on the weekdays listed (0 = Monday)."""
    rng = np.random.default_rng(seed)
    dates = [START + dt.timedelta(days=k) for k in range(days)]
    ds2 = [level * 0.6 * (d.weekday() in weekday_only) for d in dates]
    return pl.DataFrame(
        {
            "date": dates * 2,
            "origin": "FC1",
            "destination": ["DS1"] * days + ["DS2"] * days,
            "volume": np.concatenate(
                [rng.poisson(level, days), rng.poisson(np.array(ds2) + 1e-9)]
            ).astype(float),
            "origin_region": "EAST",
        }
    )


@settings(max_examples=5, deadline=None)
@given(
    off=st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True),
    seed=st.integers(0, 1000),
    level=st.floats(50, 5000),
)
def test_a_share_keeps_its_own_weekday_profile_not_its_parents(off, seed, level):
    on = [d for d in range(7) if d not in off]
    history = two_lanes(120, on, seed, level)
    cfg = ForecastConfig(
        model="SeasonalNaive", lanes="share", horizon=14, n_jobs=1, validation_windows=0
    )
    fc = forecast(history, cfg)
    ds2 = fc.filter(pl.col("destination") == "DS2")
    weekday = ds2.get_column("date").dt.weekday() - 1
    idle = ds2.filter(weekday.is_in(off))
    busy = ds2.filter(~weekday.is_in(off))
    # DS2 never ships on its idle weekdays: its parent does (DS1 every day), so a flat share
    # would give it about 0.6 / 1.6 of the parent's volume there.
    # (shrinkage towards the flat share leaves at most a few percent of a busy day there)
    assert idle["forecast"].max() <= 0.05 * busy["forecast"].mean()
    assert (busy["forecast"] > 0).all()
    # The lanes still add up to their origin.
    origin = fc.filter(pl.col("level") == "origin").sort("date")["forecast"].to_numpy()
    lanes = (
        (fc.filter(pl.col("level") == "lane").group_by("date").agg(pl.col("forecast").sum()))
        .sort("date")["forecast"]
        .to_numpy()
    )
    np.testing.assert_allclose(lanes, origin, rtol=1e-9)


def test_auto_gives_a_lane_with_its_own_trend_its_own_model():
    # FC1's volume is flat while DS2 takes over from DS1: a share measured on the last
    # weeks lags behind DS2's growth, which its own model follows.
    days = 200
    t = np.arange(days)
    rng = np.random.default_rng(5)
    grow = 100 + 4.0 * t
    dates = [START + dt.timedelta(days=k) for k in range(days)]
    history = pl.DataFrame(
        {
            "date": dates * 3,
            "origin": "FC1",
            "destination": ["DS1"] * days + ["DS2"] * days + ["DS3"] * days,
            "volume": np.concatenate(
                [
                    rng.normal(1000 - 4.0 * t, 10).clip(0),
                    rng.normal(grow, 10).clip(0),
                    rng.normal(300, 10, days),
                ]
            ),
            "origin_region": "EAST",
        }
    )
    cfg = ForecastConfig(model="AutoETS", horizon=14, n_jobs=1)  # lanes = "auto", 2 windows
    fc = forecast(history, cfg)
    model = dict(
        fc.filter(pl.col("level") == "lane").select("destination", "model").unique().iter_rows()
    )
    assert model["DS2"] != "Share" and model["DS1"] != "Share"
    # and the forecast follows DS2's growth rather than its recent share
    ds2 = fc.filter(pl.col("destination") == "DS2")["forecast"].to_numpy()
    assert ds2[-1] > grow[-1]
    # intervals are ordered and non-negative, levels add up
    assert (fc["lo_80"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["hi_80"]).all()
    assert (fc["lo_95"] >= 0).all() and (fc["lo_95"] <= fc["lo_80"]).all()
    total = fc.filter(pl.col("level") == "total").sort("date")["forecast"].to_numpy()
    lanes = (
        (fc.filter(pl.col("level") == "lane").group_by("date").agg(pl.col("forecast").sum()))
        .sort("date")["forecast"]
        .to_numpy()
    )
    np.testing.assert_allclose(lanes, total, rtol=1e-9)


def test_the_validation_windows_pick_the_candidate_that_erred_least():
    # Strong weekday profile: SeasonalNaive(7) forecasts it, Naive (yesterday) does not.
    history = two_lanes(150, [0, 1, 2, 3, 4], seed=1, level=400)
    for model, candidates in (("Naive", ["SeasonalNaive"]), ("SeasonalNaive", ["Naive"])):
        cfg = ForecastConfig(
            model=model, candidates=candidates, lanes="model", horizon=14, n_jobs=1
        )
        fc = forecast(history, cfg)
        regular = fc.filter(pl.col("level") != "lane")["model"].unique().to_list()
        assert regular == ["SeasonalNaive"], (model, regular)
    # Without candidates the configured model stays, however it does.
    fc = forecast(history, ForecastConfig(model="Naive", lanes="model", horizon=14, n_jobs=1))
    assert fc.filter(pl.col("level") != "lane")["model"].unique().to_list() == ["Naive"]
