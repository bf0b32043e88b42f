"""Interval calibration: factors measured by the backtest, applied by the forecast."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmplan.backtesting import NEW_MODEL, backtest, calibrate
from mmplan.cli import app
from mmplan.config import BacktestConfig, Config
from mmplan.errors import EXIT_DATA, DataError
from mmplan.forecasting import forecast
from tests.conftest import fast_config, make_history

runner = CliRunner()


def points(actual, forecast_, half, level="lane", run="MSTL", model="MSTL") -> pl.DataFrame:
    f = np.asarray(forecast_, float)
    h = np.asarray(half, float)
    n = len(f)
    return pl.DataFrame(
        {
            "run": [run] * n,
            "level": [level] * n,
            "actual": np.asarray(actual, float),
            "forecast": f,
            "lo_80": np.maximum(f - h, 0),
            "hi_80": f + h,
            "model": [model] * n,
        }
    )


def test_factor_is_the_split_conformal_quantile_of_error_over_half_width():
    # Ratios |actual - forecast| / half-width are 1..10; ceil(11 x 0.8) = 9 -> the 9th.
    ratios = np.arange(1, 11, dtype=float)
    good = points(100 + 5 * ratios, np.full(10, 100.0), np.full(10, 5.0))
    ignored = pl.concat(
        [
            points([500.0], [100.0], [5.0], model=NEW_MODEL),  # unknown at the cutoff
            points([50.0], [0.0], [0.0], model="Zero/closed"),  # no width to scale
            points([900.0], [100.0], [5.0], run="SeasonalNaive"),  # another run
        ]
    )
    cal = calibrate(pl.concat([good, ignored]), "MSTL", ["total", "lane"], [80])
    lane = cal.filter(pl.col("level") == "lane").row(0, named=True)
    assert lane["factor"] == pytest.approx(9.0)
    assert lane["points"] == 10
    assert lane["coverage"] == pytest.approx(0.1)  # only ratio 1 is inside the raw interval
    total = cal.filter(pl.col("level") == "total").row(0, named=True)
    assert (total["factor"], total["points"]) == (1.0, 0)  # nothing to measure: unchanged


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e4), st.floats(0.1, 1e4), st.floats(0.01, 1e3)
        ),
        min_size=1,
        max_size=60,
    )
)
def test_scaled_intervals_cover_at_least_the_nominal_share_of_their_points(rows):
    actual, fc, half = map(np.array, zip(*rows, strict=True))
    pts = points(actual, fc, half)
    k = calibrate(pts, "MSTL", ["lane"], [80])["factor"][0]
    width = (pts["hi_80"] - pts["forecast"]).to_numpy()  # the half-width the table holds
    covered = np.abs(actual - fc) <= k * width * (1 + 1e-12)
    assert covered.mean() >= 0.8 - 1e-12


def test_forecast_scales_each_levels_half_widths_by_its_factor():
    history = make_history(n_lanes=6, days=120)
    cfg = fast_config(lanes="share", levels=[80, 95])
    raw = forecast(history, cfg)
    factors = {"total": 2.0, "origin_region": 1.5, "origin": 0.5, "lane": 1.25}
    cal = pl.DataFrame(
        [
            {"level": lv, "interval": p, "factor": f * (1.1 if p == 95 else 1.0)}
            for lv, f in factors.items()
            for p in (80, 95)
        ]
    )
    scaled = forecast(history, cfg, calibration=cal)
    assert scaled["forecast"].to_list() == raw["forecast"].to_list()  # points untouched
    both = raw.join(scaled, on=["unique_id", "date"], suffix="_c")
    k = both["level"].replace_strict(factors).to_numpy()
    f = both["forecast"].to_numpy()
    for p, mult in ((80, 1.0), (95, 1.1)):
        np.testing.assert_allclose(
            both[f"hi_{p}_c"].to_numpy() - f, k * mult * (both[f"hi_{p}"].to_numpy() - f),
            rtol=1e-9, atol=1e-9,
        )
        # Lower bounds move by the same factor until they reach zero.
        unclipped = (both[f"lo_{p}"].to_numpy() > 0) & (both[f"lo_{p}_c"].to_numpy() > 0)
        np.testing.assert_allclose(
            (f - both[f"lo_{p}_c"].to_numpy())[unclipped],
            (k * mult * (f - both[f"lo_{p}"].to_numpy()))[unclipped],
            rtol=1e-9, atol=1e-9,
        )
        assert (both[f"lo_{p}_c"] <= both["forecast"] + 1e-9).all()
        assert (both[f"lo_{p}_c"] >= 0).all()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda c: c.filter(pl.col("level") != "origin"), "no factor for origin@80"),
        (lambda c: c.with_columns(pl.lit(90).alias("interval")), "90, which this"),
        (lambda c: c.with_columns(pl.lit(-1.0).alias("factor")), "finite number >= 0"),
    ],
)
def test_a_calibration_for_another_configuration_is_refused(change, said):
    history = make_history(n_lanes=4, days=100)
    cal = pl.DataFrame(
        {"level": ["total", "origin_region", "origin", "lane"], "interval": [80] * 4,
         "factor": [1.0] * 4}
    )
    with pytest.raises(DataError, match=said):
        forecast(history, fast_config(lanes="share", levels=[80]), calibration=change(cal))


def test_backtest_then_calibrated_forecast_through_the_cli(tmp_path):
    history_file = tmp_path / "history.parquet"
    make_history(n_lanes=6, days=120).write_parquet(history_file)
    config = tmp_path / "fast.toml"
    config.write_text(
        '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nmin_history_days = 28\n'
        "n_jobs = 1\n\n[backtest]\nwindows = 2\nstep = 7\n"
    )
    res = runner.invoke(app, ["backtest", str(history_file), "-o", str(tmp_path / "bt"),
                              "--config", str(config)])
    assert res.exit_code == 0, res.output
    assert "interval calibration (80%)" in res.output
    cal_file = tmp_path / "bt" / "calibration.parquet"
    cal = pl.read_parquet(cal_file)
    assert set(cal["level"]) == {"total", "origin_region", "origin", "lane"}
    assert set(cal["interval"]) == {80, 95}
    # The factors are the backtest's own: recomputed from its points they agree.
    pts = pl.read_parquet(tmp_path / "bt" / "points.parquet")
    again = calibrate(pts, "SeasonalNaive", ["total", "origin_region", "origin", "lane"],
                      [80, 95])
    assert again.sort("level", "interval")["factor"].to_list() == pytest.approx(
        cal.sort("level", "interval")["factor"].to_list()
    )
    out = tmp_path / "fc.parquet"
    res = runner.invoke(app, ["forecast", str(history_file), "-o", str(out), "--config",
                              str(config), "--calibration", str(cal_file)])
    assert res.exit_code == 0, res.output
    good = out.read_bytes()
    # A calibration made for other intervals is exit 65 naming the file; nothing written.
    bad = tmp_path / "bad.parquet"
    cal.filter(pl.col("interval") == 80).write_parquet(bad)
    res = runner.invoke(app, ["forecast", str(history_file), "-o", str(out), "--config",
                              str(config), "--calibration", str(bad)])
    assert res.exit_code == EXIT_DATA
    assert str(bad) in res.output and "no factor for total@95" in res.output
    assert out.read_bytes() == good


def test_backtest_records_the_factors_in_metrics_json():
    history = make_history(n_lanes=5, days=110)
    cfg = Config(forecast=fast_config(n_jobs=1), backtest=BacktestConfig(windows=2, step=7))
    result = backtest(history, cfg)
    record = result.metrics_json["calibration"]
    table = {(r["level"], str(r["interval"])): r["factor"]
             for r in result.calibration.iter_rows(named=True)}
    assert {(lv, p): f for lv, d in record.items() for p, f in d.items()} == table
    assert all(math.isfinite(f) and f > 0 for f in table.values())


def test_exact_backtest_forecasts_give_a_zero_factor_the_forecast_accepts():
    # Nine of ten points hit exactly: the 80% factor is 0, and the forecast takes it.
    pts = points([100.0] * 9 + [130.0], [100.0] * 10, [5.0] * 10)
    cal = calibrate(pts, "MSTL", ["total", "origin_region", "origin", "lane"], [80])
    assert cal.filter(pl.col("level") == "lane")["factor"].item() == 0.0
    out = forecast(make_history(n_lanes=4, days=100), fast_config(lanes="share", levels=[80]),
                   calibration=cal)
    lanes = out.filter(pl.col("level") == "lane")
    assert (lanes["hi_80"] == lanes["forecast"]).all()
    assert (out.filter(pl.col("level") == "total")["hi_80"] > out.filter(
        pl.col("level") == "total")["forecast"]).all()
