"""Long-range forecasts (mmplan.forecasting.temporal): the grains add up at every level,
480-day intervals are non-negative, ordered and widen, short horizons keep the daily path,
bad keys are exit 78, and monitoring scores a forecast with a `grain` column."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmplan.config import Config, ForecastConfig, SampleConfig, load_config
from mmplan.errors import ConfigError
from mmplan.forecasting import forecast
from mmplan.forecasting.temporal import grain_summary, projection, temporal_spec
from mmplan.synthetic import sample
from mmplan.tables import day_rows, validate_forecast

# A tiny network (1 FC, 1 SC, 2 DSs) over two years and a month: enough for the weekly and
# monthly fits' two seasons, small enough for seconds.
CUTOFF = dt.date(2025, 1, 31)


def _fast(**extra: object) -> ForecastConfig:
    return ForecastConfig(
        model="SeasonalNaive",
        long_range_model="SeasonalNaive",
        reconciliation="MinTrace(wls_struct)",
        validation_windows=0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    cfg = SampleConfig(seed=5, regions=1, fcs=1, scs=1, dss=2, days=800, start=dt.date(2023, 1, 1))
    return sample(cfg)["history"]


@pytest.fixture(scope="module")
def long(history: pl.DataFrame) -> pl.DataFrame:
    return forecast(history.filter(pl.col("date") <= CUTOFF), _fast(horizon=480))


def test_every_grain_covers_the_horizon_and_adds_up_at_every_level(long):
    assert validate_forecast(long) == []  # per grain levels add up; days sum to weeks, months
    assert set(long["grain"].unique()) == {"day", "week", "month"}
    days = long.filter(pl.col("grain") == "day")
    assert days["date"].min() == CUTOFF + dt.timedelta(days=1)
    assert days["date"].n_unique() == 480
    for grain, unit in (("week", "1w"), ("month", "1mo")):
        rows = long.filter(pl.col("grain") == grain).select("unique_id", "date", "forecast")
        sums = days.group_by("unique_id", pl.col("date").dt.truncate(unit)).agg(
            pl.col("forecast").sum().alias("s")
        )
        joined = rows.join(sums, on=["unique_id", "date"], how="full", coalesce=True)
        assert joined.null_count().sum_horizontal().item() == 0  # same periods both ways
        np.testing.assert_allclose(joined["forecast"], joined["s"], rtol=1e-9, atol=1e-6)
        by_level = rows.join(long.select("unique_id", "level").unique(), on="unique_id")
        per = by_level.group_by("level", "date").agg(pl.col("forecast").sum())
        total = per.filter(pl.col("level") == "total").select("date", pl.col("forecast").alias("t"))
        per = per.join(total, on="date")
        np.testing.assert_allclose(per["forecast"], per["t"], rtol=1e-9)
    months = long.filter(pl.col("grain") == "month")["date"]
    assert (months.dt.day() == 1).all()
    weeks = long.filter(pl.col("grain") == "week")["date"]
    assert (weeks.dt.weekday() == 1).all()  # ISO Mondays


def test_480_days_give_non_negative_ordered_intervals_that_widen(long):
    assert (long["lo_95"] >= 0).all()
    ordered = (
        (long["lo_95"] <= long["lo_80"] + 1e-9)
        & (long["lo_80"] <= long["forecast"] + 1e-9)
        & (long["forecast"] <= long["hi_80"] + 1e-9)
        & (long["hi_80"] <= long["hi_95"] + 1e-9)
    )
    assert ordered.all()
    total = long.filter((pl.col("level") == "total") & (pl.col("grain") == "day"))
    width = (total["hi_80"] - total["lo_80"]).to_numpy()
    assert width[-60:].mean() > width[:28].mean()


def test_short_horizons_keep_the_daily_table(history):
    train = history.filter(pl.col("date") <= CUTOFF)
    daily = forecast(train, _fast(horizon=14))
    assert "grain" not in daily.columns
    assert daily["date"].n_unique() == 14
    # the long-range keys do not touch a horizon below long_range_after
    same = forecast(train, _fast(horizon=14, long_range_after=30, long_range_days=7))
    assert same.equals(daily)
    assert grain_summary(daily, _fast(horizon=14))["written"] == ["day"]


def test_long_range_true_forces_the_grains_and_the_summary_says_why(history):
    cfg = _fast(horizon=100, long_range=True, long_range_after=200)
    fc = forecast(history.filter(pl.col("date") <= CUTOFF), cfg)
    summary = grain_summary(fc, cfg)
    assert summary == {"written": ["day", "week", "month"], "why": "[forecast] long_range = true"}
    assert day_rows(fc)["date"].n_unique() == 100


def test_monitor_scores_the_day_rows_of_a_long_range_forecast(history, long):
    from mmplan.evaluate.monitor import MonitorSetup, monitor

    setup = MonitorSetup(forecast=long, history=history, config=Config(), forecast_sha256="x")
    result = monitor(setup)
    points = result.points.filter(pl.col("run") == "forecast")
    days_seen = history.filter(pl.col("date") > CUTOFF)["date"].n_unique()
    assert points["date"].n_unique() == days_seen  # one point per observed day, no weeks
    assert points.select("unique_id", "date").is_duplicated().sum() == 0


@pytest.mark.parametrize(
    "text",
    ["long_range_after = 0", 'long_range = "yes"', "long_range_weeks = -1", "long_range_dayz = 3"],
)
def test_bad_long_range_keys_are_config_errors(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(f"[forecast]\n{text}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.exit_code == 78 and str(path) in str(err.value)


@settings(max_examples=25, deadline=None)
@given(
    end=st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)),
    horizon=st.integers(40, 120),
    seed=st.integers(0, 2**16),
)
def test_coherent_base_forecasts_are_left_as_they_are(end, horizon, seed):
    """A projection onto the days: base forecasts whose weeks and months already are the
    sums of their days come back unchanged, whatever the weights."""
    spec = temporal_spec(end, horizon)
    weeks = [i for i, p in enumerate(spec.periods["week"]) if len(p.days) == 7]
    months = [i for i, p in enumerate(spec.periods["month"]) if len(p.days) == p.length]
    days = np.random.default_rng(seed).uniform(0, 100, horizon)
    base = np.concatenate(
        [days, spec.summing("week")[weeks] @ days, spec.summing("month")[months] @ days]
    )
    rec = projection(spec, {"week": weeks, "month": months}, near_days=14) @ base
    np.testing.assert_allclose(rec, days, rtol=1e-6, atol=1e-6)


def test_the_default_long_range_model_with_calendar_events_forecasts_480_days():
    # MSTL's ARIMA trend crashed ("zero-size array") on event columns summed into weeks and
    # months of this three-year sample; the coarse grains now fit without them and the days
    # keep them.
    three = SampleConfig(
        seed=3, regions=1, fcs=1, scs=2, dss=6, days=1095, start=dt.date(2023, 1, 1)
    )
    cfg = ForecastConfig(horizon=480, validation_windows=0, model="SeasonalNaive")
    assert cfg.default_events and cfg.long_range_model == "MSTL"
    fc = forecast(sample(three)["history"], cfg)
    assert validate_forecast(fc) == []
    assert set(fc["grain"].unique()) == {"day", "week", "month"}


# A monthly lane whose volume moved elsewhere in its last month (the shipped sample's DS001
# at a 2025-03-31 cutoff): MSTL's ARIMA trend raised ValueError on it, and the month grain
# of every long-range forecast of that history failed with it (exit 70).
COLLAPSED = [19635.0, 17094.0, 19237.0, 17692.0, 18450.0, 18734.0, 20308.0, 20591.0, 20851.0]
COLLAPSED += [23818.0, 25265.0, 25279.0, 22160.0, 21375.0, 20794.0, 20553.0, 21217.0, 20198.0]
COLLAPSED += [24411.0, 23725.0, 23577.0, 25410.0, 25350.0, 32574.0, 24720.0, 19745.0, 1070.0]


def test_a_series_its_model_cannot_fit_takes_the_short_model_labelled_failed():
    months = [dt.date(2023 + i // 12, i % 12 + 1, 1) for i in range(len(COLLAPSED))]
    steady = [v * 0.5 + 3000 for v in COLLAPSED[:-1]] + [12000.0]
    history = pl.DataFrame(
        {
            "date": months * 2,
            "origin": ["A"] * (2 * len(months)),
            "destination": ["X"] * len(months) + ["Y"] * len(months),
            "volume": COLLAPSED + steady,
        }
    )
    cfg = ForecastConfig(
        freq="month",
        horizon=12,
        model="MSTL",
        min_history_days=25,
        closed_after_days=1,
        default_events=False,
        lanes="model",
        validation_windows=0,
        reconciliation="MinTrace(wls_struct)",
    )
    fc = forecast(history, cfg)
    labels = dict(fc.unique("unique_id").select("unique_id", "model").iter_rows())
    # The collapsed lane (and the aggregates holding it) fail MSTL; the steady lane keeps it.
    assert labels["lane:A/X"] == "SeasonalNaive/failed"
    assert labels["lane:A/Y"] == "MSTL"
    assert validate_forecast(fc) == []
    assert fc.select(pl.col("forecast", "lo_80", "hi_80").is_finite().all()).row(0) == (
        True,
        True,
        True,
    )
    assert (fc["forecast"] > 0).all()


def test_a_series_whose_month_fit_is_a_fallback_keeps_its_own_days():
    # Two series with the same daily forecast (10 a day) and month forecasts twice their
    # days' sums: the one whose month fit is long_range_model takes its far days' level from
    # the months; the one whose month fit fell back (a young lane's historic average) keeps
    # its own days, which a fallback must not move.
    from mmplan.forecasting.temporal import GrainFit, _reconcile

    cfg = ForecastConfig(long_range_model="MSTL", long_range_days=7)
    spec = temporal_spec(dt.date(2025, 1, 31), 59)  # February and March 2025, whole
    ids = pl.Series("unique_id", ["lane:F/A", "lane:F/B"])
    days = np.full((2, 59), 10.0)
    months = [i for i, p in enumerate(spec.periods["month"]) if len(p.days) == p.length]
    assert len(months) == 2
    month_point = 2 * days @ spec.summing("month").T
    labels = pl.DataFrame({"unique_id": ids, "model": ["MSTL", "HistoricAverage/short"]})
    fit = GrainFit(month_point, {}, {}, labels)
    day = GrainFit(days, {}, {}, labels.with_columns(model=pl.lit("MSTL")))
    rec = _reconcile(spec, day, {"week": None, "month": fit}, {"month": months}, ids, cfg)
    march = spec.periods["month"][months[1]].days  # all past long_range_days
    assert rec[0, march].sum() == pytest.approx(month_point[0, months[1]], rel=0.01)
    np.testing.assert_allclose(rec[1], days[1])  # the fallback is left out
