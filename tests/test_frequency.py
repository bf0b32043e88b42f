"""Weekly and monthly histories: frequency detection, period arithmetic, forecasts and
backtests at the history's own frequency, and the refusal of dates that do not fit it."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from conftest import fast_config, make_history
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import ForecastConfig
from mmplan.evaluate.backtest import cutoffs
from mmplan.forecasting import event_features, forecast, lane_series
from mmplan.forecasting.frequency import (
    FREQS,
    detect_freq,
    future_dates,
    n_periods,
    period_range,
    periods_between,
    resolve,
    season,
    shift,
)
from mmplan.tables import validate_history

runner = CliRunner()

starts = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31))
offsets = st.lists(st.integers(0, 80), min_size=2, max_size=30, unique=True)


@given(start=starts, freq=st.sampled_from(FREQS), ks=offsets)
def test_detected_frequency_is_the_one_the_dates_were_made_at(start, freq, ks):
    if freq == "month":
        start = start.replace(day=1)
    elif freq == "day":
        ks = [*ks, ks[0] + 1]  # two consecutive days: neither weekly nor monthly
    dates = [shift(start, k, freq) for k in ks]
    # Weeks whose every date happens to be the 1st of a month (Mar 1 and Nov 1 share a
    # weekday) read as monthly, as the frequency module documents.
    assume(freq != "week" or not all(d.day == 1 for d in dates))
    assert detect_freq(pl.Series(dates * 2, dtype=pl.Date)) == freq  # duplicates: many lanes


@given(start=starts, length=st.integers(3, 60), missing=st.integers(1, 58))
def test_a_daily_history_missing_a_day_is_still_daily(start, length, missing):
    dates = [start + dt.timedelta(days=k) for k in range(length) if k != missing % (length - 1)]
    assert detect_freq(dates) == "day"


def test_fewer_than_two_dates_are_daily():
    assert detect_freq([]) == "day" and detect_freq([dt.date(2025, 3, 1)] * 3) == "day"


@given(start=starts, freq=st.sampled_from(FREQS), n=st.integers(-40, 40))
def test_period_arithmetic_agrees_with_itself(start, freq, n):
    if freq == "month":
        start = start.replace(day=1)
    moved = shift(start, n, freq)
    assert n_periods(start, moved, freq) == n
    frame = pl.DataFrame({"a": [start], "b": [moved]})
    assert frame.select(periods_between(pl.col("a"), pl.col("b"), freq)).item() == n
    dates = future_dates(start, 5, freq)
    assert dates[0] == shift(start, 1, freq) and dates[-1] == shift(start, 5, freq)
    assert frame.select(period_range(start, shift(start, 4, freq), freq)).item().len() == 5
    assert detect_freq(dates) == freq or freq == "week" and all(d.day == 1 for d in dates)


def test_the_season_follows_the_frequency_unless_set():
    dates = pl.Series([dt.date(2024, 1, 1), dt.date(2024, 2, 1)], dtype=pl.Date)
    assert season(resolve(ForecastConfig(), dates)) == 12
    sundays = pl.Series([dt.date(2024, 1, 7), dt.date(2024, 3, 3)], dtype=pl.Date)
    assert season(resolve(ForecastConfig(), sundays)) == 52
    assert season(ForecastConfig()) == 7  # unresolved auto: days
    assert season(resolve(ForecastConfig(season_length=4), dates)) == 4
    assert resolve(ForecastConfig(freq="day"), dates).freq == "day"  # explicit: kept


def test_an_event_marks_the_period_that_holds_it():
    events = {"black_friday": [dt.date(2024, 11, 29)]}
    weeks = pl.Series([dt.date(2024, 11, 18) + dt.timedelta(weeks=k) for k in range(3)])
    assert event_features(weeks, events, "week")["event_black_friday"].to_list() == [0, 1, 0]
    months = pl.Series([dt.date(2024, m, 1) for m in (10, 11, 12)])
    assert event_features(months, events, "month")["event_black_friday"].to_list() == [0, 1, 0]


def test_backtest_cutoffs_step_in_periods():
    start, end = dt.date(2022, 1, 1), dt.date(2024, 12, 1)
    assert cutoffs(start, end, 3, 2, 4, 24, "month") == [
        dt.date(2024, 4, 1),
        dt.date(2024, 6, 1),
        dt.date(2024, 8, 1),
    ]
    monday = dt.date(2024, 12, 30)
    assert cutoffs(dt.date(2023, 1, 2), monday, 2, 1, 4, 52, "week") == [
        dt.date(2024, 11, 25),
        dt.date(2024, 12, 2),
    ]


def periods(history: pl.DataFrame, every: str) -> pl.DataFrame:
    """The history summed to weeks (ISO: dated by their Monday) or months (by their 1st)."""
    return (
        history.with_columns(pl.col("date").dt.truncate(every))
        .group_by("date", "origin", "destination", "origin_region", maintain_order=True)
        .agg(pl.col("volume").sum())
    )


def old_history(days: int) -> pl.DataFrame:
    """make_history's lanes, all regular and open throughout, ending 2024-12-31."""
    h = make_history(n_lanes=3, days=days, new_lane=False, closed_lane=False, sparse_every=0)
    back = (dt.date(2024, 12, 31) - h.get_column("date").max()).days
    return h.with_columns(pl.col("date") + pl.duration(days=back))


@pytest.fixture(scope="module")
def weekly() -> pl.DataFrame:
    # 115 weeks: two yearly seasons of 52 to train on, and room for a short backtest.
    return periods(old_history(7 * 115), "1w")


def test_a_weekly_history_is_forecast_in_weeks_without_zero_filled_days(weekly):
    end = weekly.get_column("date").max()
    series, _ = lane_series(weekly, freq="week")
    assert series.get_column("date").dt.weekday().unique().to_list() == [1]
    assert series.height == weekly.height  # every row a week, none a filled-in day
    fc = forecast(weekly, fast_config(horizon=4, reconciliation="BottomUp"))
    assert fc.get_column("date").unique().sort().to_list() == [
        end + dt.timedelta(weeks=k) for k in range(1, 5)
    ]
    # SeasonalNaive at the weekly frequency's season repeats the lane a year (52 weeks) ago.
    lane = fc.filter(pl.col("level") == "lane").join(
        weekly.with_columns(pl.col("date") + pl.duration(weeks=52)),
        on=["origin", "destination", "date"],
    )
    assert lane.height == 4 * 3 and (lane["forecast"] - lane["volume"]).abs().max() < 1e-6


def test_weekly_forecast_and_backtest_run_through_the_cli(tmp_path, weekly):
    path = tmp_path / "weekly.parquet"
    weekly.write_parquet(path)
    toml = tmp_path / "weekly.toml"
    toml.write_text(
        '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 4\nmin_history_days = 8\n'
        'reconciliation = "BottomUp"\nlanes = "model"\nn_jobs = 1\n'
        "[backtest]\nwindows = 2\nstep = 1\n"
    )
    out = tmp_path / "fc.parquet"
    result = runner.invoke(app, ["forecast", str(path), "-o", str(out), "--config", str(toml)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).get_column("date").dt.weekday().unique().to_list() == [1]
    result = runner.invoke(
        app, ["backtest", str(path), "-o", str(tmp_path / "bt")] + ["--config", str(toml)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    end = weekly.get_column("date").max()
    assert metrics["cutoffs"] == [str(end - dt.timedelta(weeks=k)) for k in (5, 4)]
    points = pl.read_parquet(tmp_path / "bt" / "points.parquet")
    assert sorted(points.get_column("step").unique().to_list()) == [1, 2, 3, 4]
    # Both runs (the configured SeasonalNaive and the naive baseline) repeat the week 52
    # weeks before: 2 runs x 2 cutoffs x 4 steps x 3 lanes.
    lanes = points.filter(pl.col("level") == "lane").join(
        weekly.select(
            pl.concat_str(pl.lit("lane:"), "origin", pl.lit("/"), "destination").alias("unique_id"),
            (pl.col("date") + pl.duration(weeks=52)).alias("date"),
            "volume",
        ),
        on=["unique_id", "date"],
    )
    assert lanes.get_column("run").n_unique() == 2
    assert lanes.height == 2 * 2 * 4 * 3
    assert (lanes["forecast"] - lanes["volume"]).abs().max() < 1e-6


def test_a_monthly_history_is_forecast_in_months():
    monthly = periods(old_history(3 * 365), "1mo")
    fc = forecast(monthly, fast_config(model="AutoETS", horizon=3, min_history_days=6))
    end = monthly.get_column("date").max()
    assert fc.get_column("date").unique().sort().to_list() == [
        shift(end, k, "month") for k in (1, 2, 3)
    ]
    assert fc["model"].unique().to_list() == ["AutoETS"]
    total = fc.filter(pl.col("level") == "total")["forecast"]
    monthly_total = monthly.group_by("date").agg(pl.col("volume").sum())["volume"].mean()
    # A month's forecast is a month's volume, not a day's: within a third of the mean month.
    assert ((total / monthly_total - 1).abs() < 1 / 3).all()


@pytest.mark.parametrize(
    ("freq", "bad_date"),
    [("week", dt.date(2024, 12, 3)), ("month", dt.date(2024, 11, 15))],  # a Tuesday; mid-month
)
def test_dates_off_an_explicit_frequency_are_refused_naming_the_rows(tmp_path, freq, bad_date):
    history = periods(old_history(400), "1w" if freq == "week" else "1mo")
    rows = [3, 7]
    bad = history.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(rows))
        .then(pl.lit(bad_date))
        .otherwise(pl.col("date"))
        .alias("date")
    ).unique(["origin", "destination", "date"], keep="first", maintain_order=True)
    path = tmp_path / "history.parquet"
    bad.write_parquet(path)
    toml = tmp_path / "freq.toml"
    toml.write_text(f'[forecast]\nfreq = "{freq}"\n')
    result = runner.invoke(
        app, ["forecast", str(path), "-o", str(tmp_path / "f.parquet"), "--config", str(toml)]
    )
    assert result.exit_code == 65, result.output
    text = " ".join(result.output.split())
    named = bad.with_row_index().filter(pl.col("date") == bad_date)["index"].to_list()
    assert f'freq = "{freq}"' in text and str(bad_date) in text
    assert f"{len(named)} rows: {', '.join(map(str, named))}" in text
    # Under auto nothing is refused: the dates are irregular, so the history is daily.
    assert validate_history(bad, 365, "auto") == [] and detect_freq(bad["date"]) == "day"
    assert validate_history(history, 365, freq) == []
