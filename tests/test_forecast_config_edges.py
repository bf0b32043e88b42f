"""Legal [forecast] values at their bounds run or are refused with 78, never crash (issue 13)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import polars as pl
import pytest

from mmplan.config import FORECAST_MODELS, load_config
from mmplan.errors import ConfigError
from mmplan.forecasting import forecast
from tests.conftest import fast_config, make_history


def _quiet_forecast(history: pl.DataFrame, **overrides: object) -> pl.DataFrame:
    """A forecast with statsforecast's prints kept off the test output."""
    with contextlib.redirect_stdout(io.StringIO()):
        return forecast(history, fast_config(n_jobs=1, **overrides))


@pytest.mark.parametrize("lanes", ["model", "share"])
@pytest.mark.parametrize("trend", ["ARIMA", "AutoETS"])
def test_mstl_with_a_season_of_one_day_fits_its_trend_and_says_so(lanes, trend):
    # It raised ModuleNotFoundError (supersmoother) inside statsforecast's MSTL: exit 70.
    history = make_history(n_lanes=4, days=90, sparse_every=0)
    fc = _quiet_forecast(history, model="MSTL", season_length=1, mstl_trend=trend, lanes=lanes)
    total = fc.filter(pl.col("level") == "total")
    assert set(total["model"]) == {f"MSTL({trend}, no season)"}
    assert fc["forecast"].is_finite().all() and (total["hi_80"] > total["lo_80"]).all()


@pytest.mark.slow
def test_mstl_with_a_season_of_one_day_keeps_the_yearly_season_on_long_series():
    history = make_history(n_lanes=2, days=560, sparse_every=0, new_lane=False)
    fc = _quiet_forecast(history, model="MSTL", season_length=1, lanes="share")
    assert set(fc.filter(pl.col("level") == "total")["model"]) == {"MSTL"}


# The searches (ARIMA, ETS, Theta) take seconds each; the others run in under one.
@pytest.mark.parametrize(
    "model",
    [
        pytest.param(m, marks=pytest.mark.slow) if m.startswith("Auto") else m
        for m in FORECAST_MODELS
    ],
)
@pytest.mark.parametrize("season_length", [1, 2])
def test_every_model_runs_with_the_shortest_seasons(model, season_length):
    history = make_history(n_lanes=3, days=70, seed=2, sparse_every=0, closed_lane=False)
    fc = _quiet_forecast(history, model=model, season_length=season_length, horizon=1)
    assert fc["forecast"].is_finite().all() and fc.height == fc["unique_id"].n_unique()


@pytest.mark.parametrize("levels", [[1], [99], [1, 99]])
def test_interval_levels_at_their_bounds(levels):
    fc = _quiet_forecast(make_history(n_lanes=3, days=70), levels=levels, horizon=1)
    for p in levels:
        assert (fc[f"lo_{p}"] <= fc["forecast"]).all() and (fc["forecast"] <= fc[f"hi_{p}"]).all()


@pytest.mark.parametrize(
    "column", ["volume", "date", "unique_id", "level", "forecast", "model", "lo_80"]
)
def test_hierarchy_level_on_a_contract_column_is_a_config_error(tmp_path: Path, column):
    # ["volume"] and ["date"] raised a polars DuplicateError: exit 70.
    path = tmp_path / "c.toml"
    path.write_text(f'[forecast]\nhierarchy = [["origin_region"], ["{column}"]]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "forecast.hierarchy" in message and repr(column) in message
    assert err.value.exit_code == 78
