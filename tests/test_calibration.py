"""Interval calibration: factors measured by the backtest, applied by the forecast."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import BacktestConfig, Config
from mmplan.errors import EXIT_DATA, EXIT_NO_INPUT, DataError
from mmplan.evaluate import NEW_MODEL, backtest, calibrate
from mmplan.forecasting import forecast
from mmplan.forecasting.calibration import conformal_factor, side_factors
from tests.conftest import fast_config, make_history

runner = CliRunner()
LEVELS = ["total", "origin_region", "origin", "lane"]


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


def table(cfg, factors: dict, rules: dict | None = None, horizon: int | None = None):
    """A calibration table for `cfg`: pooled factors per level (x1.25 at 95), extra rules."""
    rows = [
        {"level": lv, "rule": "all", "interval": p, "factor": f * (1.25 if p == 95 else 1.0)}
        for lv, f in factors.items()
        for p in cfg.levels
    ]
    rows += [
        {"level": lv, "rule": rule, "interval": p, "factor": f}
        for (lv, rule), f in (rules or {}).items()
        for p in cfg.levels
    ]
    return pl.DataFrame(rows).with_columns(
        model=pl.lit(cfg.model),
        lanes=pl.lit(cfg.lanes),
        reconciliation=pl.lit(cfg.reconciliation),
        horizon=pl.lit(horizon or cfg.horizon, pl.Int64),
        format=pl.lit(2, pl.Int64),
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
    cfg = fast_config(levels=[80], model="MSTL")
    cal = calibrate(pl.concat([good, ignored]), "MSTL", ["total", "lane"], cfg, 7)
    lane = {r["rule"]: r for r in cal.filter(pl.col("level") == "lane").iter_rows(named=True)}
    assert set(lane) == {"all", "regular"}
    assert lane["all"]["factor"] == pytest.approx(9.0) == lane["regular"]["factor"]
    assert lane["all"]["points"] == 10
    assert lane["all"]["coverage"] == pytest.approx(0.1)  # only ratio 1 is inside raw
    total = cal.filter(pl.col("level") == "total").row(0, named=True)
    assert (total["rule"], total["factor"], total["points"]) == ("all", 1.0, 0)
    assert set(cal["model"]) == {"MSTL"} and set(cal["horizon"]) == {7}


def test_a_sparse_lane_gets_its_own_factor_and_leaves_regular_lanes_alone():
    regular = points(100 + 5 * np.linspace(0, 1.4, 20), np.full(20, 100.0), np.full(20, 5.0))
    sparse = points(
        np.full(10, 17.0), np.full(10, 0.4), np.full(10, 1.0), model="CrostonOptimized/sparse"
    )
    cal = calibrate(pl.concat([regular, sparse]), "MSTL", ["lane"], fast_config(levels=[80]), 7)
    k = dict(cal.select("rule", "factor").iter_rows())
    assert k["regular"] <= 1.4 + 1e-9
    assert k["sparse"] == pytest.approx(16.6)
    assert k["all"] > k["regular"]


@given(
    st.lists(
        st.tuples(st.floats(0, 1e4), st.floats(0.1, 1e4), st.floats(0.01, 1e3)),
        min_size=1,
        max_size=60,
    )
)
def test_scaled_intervals_cover_at_least_the_nominal_share_of_their_points(rows):
    actual, fc, half = map(np.array, zip(*rows, strict=True))
    pts = points(actual, fc, half)
    cal = calibrate(pts, "MSTL", ["lane"], fast_config(levels=[80]), 7)
    k = cal.filter(pl.col("rule") == "all")["factor"].item()
    width = (pts["hi_80"] - pts["forecast"]).to_numpy()  # the half-width the table holds
    covered = np.abs(actual - fc) <= k * width * (1 + 1e-12)
    assert covered.mean() >= 0.8 - 1e-12
    # ... and the factor is the smallest that does: one notch less leaves too few inside.
    ratios = np.sort(np.abs(actual - fc) / width)
    below = ratios[ratios < k * (1 - 1e-9)]
    assert len(below) < math.ceil((len(ratios) + 1) * 0.8)


def compare(raw: pl.DataFrame, scaled: pl.DataFrame, k: np.ndarray, p: int, mult: float):
    both = raw.join(scaled, on=["unique_id", "date"], suffix="_c")
    f = both["forecast"].to_numpy()
    np.testing.assert_allclose(
        both[f"hi_{p}_c"].to_numpy() - f,
        k * mult * (both[f"hi_{p}"].to_numpy() - f),
        rtol=1e-9,
        atol=1e-9,
    )
    # Lower bounds move by the same factor until they reach zero.
    unclipped = (both[f"lo_{p}"].to_numpy() > 0) & (both[f"lo_{p}_c"].to_numpy() > 0)
    np.testing.assert_allclose(
        (f - both[f"lo_{p}_c"].to_numpy())[unclipped],
        (k * mult * (f - both[f"lo_{p}"].to_numpy()))[unclipped],
        rtol=1e-9,
        atol=1e-9,
    )
    assert (both[f"lo_{p}_c"] <= both["forecast"] + 1e-9).all()
    assert (both[f"lo_{p}_c"] >= 0).all()


def test_forecast_scales_each_levels_half_widths_by_its_factor():
    history = make_history(n_lanes=6, days=120)
    cfg = fast_config(lanes="share", levels=[80, 95])
    raw = forecast(history, cfg)
    factors = {"total": 2.0, "origin_region": 1.5, "origin": 0.5, "lane": 1.25}
    scaled = forecast(history, cfg, calibration=table(cfg, factors))
    assert scaled["forecast"].to_list() == raw["forecast"].to_list()  # points untouched
    k = raw["level"].replace_strict(factors).to_numpy()
    compare(raw, scaled, k, 80, 1.0)
    compare(raw, scaled, k, 95, 1.25)


def test_per_lane_models_take_the_factor_of_their_rule():
    history = make_history(n_lanes=8, days=120)  # lanes 0 and 4 are sparse
    cfg = fast_config(lanes="model", levels=[80])
    raw = forecast(history, cfg)
    factors = {"total": 1.0, "origin_region": 1.0, "origin": 1.0, "lane": 2.0}
    cal = table(cfg, factors, rules={("lane", "regular"): 1.5, ("lane", "sparse"): 3.0})
    scaled = forecast(history, cfg, calibration=cal)
    rule = raw["model"].str.split("/").list.get(1, null_on_oob=True).fill_null("regular")
    lane = raw["level"] == "lane"
    k = np.where(
        lane & (rule == "sparse"),
        3.0,
        np.where(lane & (rule == "regular"), 1.5, np.where(lane, 2.0, 1.0)),
    )
    assert (lane & (rule == "sparse")).any() and (lane & (rule == "regular")).any()
    compare(raw, scaled, k, 80, 1.0)


def test_a_wider_interval_stays_at_least_as_wide_after_calibration():
    history = make_history(n_lanes=4, days=100)
    cfg = fast_config(lanes="share", levels=[80, 95])
    cal = table(cfg, dict.fromkeys(LEVELS, 1.0)).with_columns(
        pl.when(pl.col("interval") == 80).then(5.0).otherwise(0.2).alias("factor")
    )
    out = forecast(history, cfg, calibration=cal)
    assert (out["hi_95"] >= out["hi_80"] - 1e-9).all()
    assert (out["lo_95"] <= out["lo_80"] + 1e-9).all()
    # At least the t(6) ratio of the two quantiles (2.447 / 1.440) wider, on both sides
    # (below until the lower bound reaches zero): 0.2 alone would leave it narrower.
    f = out["forecast"].to_numpy()
    above80, above95 = out["hi_80"].to_numpy() - f, out["hi_95"].to_numpy() - f
    assert (above80 > 0).sum() > len(f) // 2  # closed lanes' zero intervals aside
    np.testing.assert_array_less(1.699 * above80, above95 + 1e-6)
    below80, below95 = f - out["lo_80"].to_numpy(), f - out["lo_95"].to_numpy()
    unclipped = out["lo_95"].to_numpy() > 0
    assert unclipped.any()
    np.testing.assert_array_less((1.699 * below80)[unclipped], below95[unclipped] + 1e-6)


def test_exact_backtest_forecasts_give_a_zero_factor_the_forecast_accepts():
    # Nine of ten points hit exactly: the 80% factor is 0, and the forecast takes it.
    cfg = fast_config(lanes="share", levels=[80])
    pts = points([100.0] * 9 + [130.0], [100.0] * 10, [5.0] * 10)
    cal = calibrate(pts, "MSTL", LEVELS, cfg, cfg.horizon)
    assert cal.filter((pl.col("level") == "lane") & (pl.col("rule") == "all"))["factor"].item() == 0
    out = forecast(make_history(n_lanes=4, days=100), cfg, calibration=cal)
    lanes = out.filter(pl.col("level") == "lane")
    assert (lanes["hi_80"] == lanes["forecast"]).all()
    total = out.filter(pl.col("level") == "total")
    assert (total["hi_80"] > total["forecast"]).all()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda c: c.filter(pl.col("level") != "origin"), "no factor for origin@80"),
        (lambda c: c.with_columns(pl.lit(90).alias("interval")), "90, which this"),
        (lambda c: c.with_columns(pl.lit(-1.0).alias("factor")), "finite number >= 0"),
        (lambda c: c.with_columns(pl.lit("AutoETS").alias("model")), "model AutoETS, not"),
        (lambda c: c.with_columns(pl.lit("model").alias("lanes")), "lanes model, not share"),
        (
            lambda c: c.with_columns(pl.lit(3).cast(pl.Int64).alias("horizon")),
            "over 3 days ahead, shorter than this forecast's 7",
        ),
        (lambda c: c.with_columns(pl.lit("weekly").alias("rule")), "rule"),
    ],
)
def test_a_calibration_for_another_forecast_is_refused(change, said):
    cfg = fast_config(lanes="share", levels=[80])
    cal = table(cfg, dict.fromkeys(LEVELS, 1.0))
    with pytest.raises(DataError, match=said):
        forecast(make_history(n_lanes=4, days=100), cfg, calibration=change(cal))


def test_backtest_then_calibrated_forecast_through_the_cli(tmp_path):
    history_file = tmp_path / "history.parquet"
    make_history(n_lanes=6, days=120).write_parquet(history_file)
    config = tmp_path / "fast.toml"
    config.write_text(
        '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nmin_history_days = 28\n'
        "n_jobs = 1\n\n[backtest]\nwindows = 2\nstep = 7\n"
    )
    res = runner.invoke(
        app, ["backtest", str(history_file), "-o", str(tmp_path / "bt"), "--config", str(config)]
    )
    assert res.exit_code == 0, res.output
    assert "interval calibration (80%)" in res.output
    cal_file = tmp_path / "bt" / "calibration.parquet"
    cal = pl.read_parquet(cal_file)
    assert set(cal["level"]) == set(LEVELS)
    assert set(cal["interval"]) == {80, 95}
    # The factors are the backtest's own: recomputed from its points they agree.
    pts = pl.read_parquet(tmp_path / "bt" / "points.parquet")
    cfg = fast_config(model="SeasonalNaive", lanes="share")
    again = calibrate(pts, "SeasonalNaive", LEVELS, cfg, 7)
    key = ["level", "rule", "interval"]
    assert again.sort(key)["factor"].to_list() == pytest.approx(cal.sort(key)["factor"].to_list())
    for args in (["--kind", "calibration"], []):  # named, and recognised by its columns
        res = runner.invoke(app, ["validate", str(cal_file), *args])
        assert res.exit_code == 0 and "valid calibration table" in res.output, res.output
    out = tmp_path / "fc.parquet"
    res = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(out),
            "--config",
            str(config),
            "--calibration",
            str(cal_file),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "intervals calibrated on backtest errors (80%)" in res.output
    good = out.read_bytes()
    # A calibration made for other intervals is exit 65 naming the file; nothing written.
    bad = tmp_path / "bad.parquet"
    cal.filter(pl.col("interval") == 80).write_parquet(bad)
    res = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(out),
            "--config",
            str(config),
            "--calibration",
            str(bad),
        ],
    )
    assert res.exit_code == EXIT_DATA
    assert str(bad) in res.output and "no factor for total@95" in res.output
    # A longer forecast than the backtest measured is refused the same way.
    res = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(out),
            "--config",
            str(config),
            "--calibration",
            str(cal_file),
            "--horizon",
            "14",
        ],
    )
    assert res.exit_code == EXIT_DATA and "shorter than this forecast's 14" in res.output
    res = runner.invoke(
        app,
        [
            "forecast",
            str(history_file),
            "-o",
            str(out),
            "--config",
            str(config),
            "--calibration",
            str(tmp_path / "missing.parquet"),
        ],
    )
    assert res.exit_code == EXIT_NO_INPUT
    assert out.read_bytes() == good


def test_backtest_records_the_pooled_factors_in_metrics_json():
    history = make_history(n_lanes=5, days=110)
    cfg = Config(forecast=fast_config(n_jobs=1), backtest=BacktestConfig(windows=2, step=7))
    result = backtest(history, cfg)
    record = result.metrics_json["calibration"]
    pooled = {
        (r["level"], str(r["interval"])): r["factor"]
        for r in result.calibration.filter(pl.col("rule") == "all").iter_rows(named=True)
    }
    assert {(lv, p): f for lv, d in record.items() for p, f in d.items()} == pooled
    assert all(math.isfinite(f) and f >= 0 for f in pooled.values())
    assert set(result.calibration["horizon"]) == {7}


# --- The validation windows' factors per side (mmplan.forecasting.calibration.side_factors)


@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=0, max_size=80),
    st.sampled_from([80, 95]),
)
def test_side_factors_widen_only_the_side_the_errors_lean_to(ratios, p):
    r = np.array(ratios, dtype=float)
    sides = side_factors(r, p)
    k = conformal_factor(np.sort(np.abs(r)), p)
    assert sides.symmetric == k
    # Never narrower than the symmetric factor, and one side at most is widened ...
    assert sides.lower >= k and sides.upper >= k and min(sides.lower, sides.upper) == k
    # ... so the windows' own ratios are covered at least as often as p% claims.
    if r.size:
        inside = ((-sides.lower <= r) & (r <= sides.upper)).mean()
        assert inside >= min(math.ceil((r.size + 1) * p / 100), r.size) / r.size - 1e-12
        lean = float(np.median(r))
        wide = abs(lean) + conformal_factor(np.sort(np.abs(r - lean)), p)
        if lean > 0:
            assert sides.upper == max(k, wide) and sides.lower == k
        elif lean < 0:
            assert sides.lower == max(k, wide) and sides.upper == k


def test_windows_that_all_forecast_under_widen_the_upper_side():
    # Ten ratios 1..2 (every window under its actuals): the symmetric 80% factor is the 9th,
    # 1 + 8/9; centred on the median 1.5 the spread's 9th is 0.5, so the upper side reaches 2.
    sides = side_factors(np.linspace(1.0, 2.0, 10), 80)
    assert sides.symmetric == pytest.approx(1.0 + 8 / 9)
    assert sides.lower == sides.symmetric
    assert sides.upper == pytest.approx(2.0)


def growing_history(growth: float, seed: int) -> pl.DataFrame:
    """make_history's regular lanes, their volume growing by `growth` a day."""
    history = make_history(
        n_lanes=6, days=160, seed=seed, new_lane=False, closed_lane=False, sparse_every=0
    )
    day = (pl.col("date") - pl.col("date").min()).dt.total_days()
    return history.with_columns((pl.col("volume") * (1 + growth * day)).round())


def test_a_growing_networks_intervals_reach_further_above_its_forecast():
    # SeasonalNaive repeats last week, so in every validation window it is under a network
    # growing 2% a day: the aggregates' intervals lean up, where their actuals will be.
    cfg = fast_config(lanes="share", levels=[80], validation_windows=2, horizon=14, n_jobs=1)
    out = forecast(growing_history(0.02, seed=3), cfg)
    for level in ("total", "origin_region", "origin"):
        rows = out.filter(pl.col("level") == level)
        f = rows["forecast"].to_numpy()
        above, below = rows["hi_80"].to_numpy() - f, f - rows["lo_80"].to_numpy()
        assert (below > 0).all() and (above > 1.05 * below).all(), level


@settings(max_examples=6)
@given(st.floats(-0.004, 0.03), st.integers(0, 50))
def test_side_factors_keep_intervals_ordered_non_negative_and_levels_adding_up(growth, seed):
    cfg = fast_config(lanes="share", levels=[80, 95], validation_windows=2, n_jobs=1)
    out = forecast(growing_history(growth, seed), cfg)
    assert (out["lo_95"] >= 0).all()
    assert (out["lo_95"] <= out["lo_80"] + 1e-9).all()
    assert (out["lo_80"] <= out["forecast"] + 1e-9).all()
    assert (out["forecast"] <= out["hi_80"] + 1e-9).all()
    assert (out["hi_80"] <= out["hi_95"] + 1e-9).all()
    total = out.filter(pl.col("level") == "total").sort("date")["forecast"].to_numpy()
    lanes = (
        out.filter(pl.col("level") == "lane")
        .group_by("date")
        .agg(pl.col("forecast").sum())
        .sort("date")["forecast"]
        .to_numpy()
    )
    np.testing.assert_allclose(lanes, total, rtol=1e-9)
