"""The history's frequency (day, week or month) and the period arithmetic every stage uses.

A history has one row per lane and *period*: a day, a week or a month. A period is dated
by its first day: a week by the weekday it starts on (any weekday, the same for every
row), a month by the 1st. `[forecast] freq = "auto"` (the default) reads the frequency from
the history's distinct dates:

- month: every date is the 1st of a month (a missing month is a zero, like a missing day);
- week: every date falls on the same weekday (gaps are then whole weeks);
- day: anything else, including months dated by their last day or weeks on mixed weekdays,
  which are then zero-filled day by day. `auto` never refuses a history.

An explicit `freq = "week"` or `"month"` refuses dates that do not fit it
(mmplan.tables.validate_history names the rows). Every count of the forecast config
(`horizon`, `min_history_days`, `closed_after_days`, `share_days`, `fit_days`, backtest
`step` and `horizon`) is a number of periods; the default season follows the frequency
(7 days, 52 weeks, 12 months) unless `season_length` is set.

Every stage works through these helpers (`shift`, `period_range`, `future_dates`,
`periods_between`) rather than adding days, so a weekly history is never zero-filled on
the six days between its rows.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from typing import Literal

import polars as pl

from mmplan.config import ForecastConfig

__all__ = [
    "Freq",
    "FREQS",
    "SEASON",
    "PER_YEAR",
    "detect_freq",
    "resolve",
    "config_freq",
    "season",
    "statsforecast_freq",
    "unit",
    "shift",
    "period_range",
    "future_dates",
    "periods_between",
    "n_periods",
    "period_start",
]

Freq = Literal["day", "week", "month"]
FREQS: tuple[Freq, ...] = ("day", "week", "month")
# The default season of each frequency: the week for days, the year for weeks and months.
SEASON: dict[Freq, int] = {"day": 7, "week": 52, "month": 12}
# Periods in a year (rules' "last year" window).
PER_YEAR: dict[Freq, int] = {"day": 365, "week": 52, "month": 12}
_INTERVAL: dict[Freq, str] = {"day": "1d", "week": "1w", "month": "1mo"}


def detect_freq(dates: pl.Series | Iterable[dt.date]) -> Freq:
    """The frequency of a history's dates (module docstring): month, week, else day.

    Fewer than two distinct dates say nothing about a frequency: day.
    """
    days = pl.Series("date", dates, dtype=pl.Date).drop_nulls().unique()
    if days.len() < 2:
        return "day"
    if (days.dt.day() == 1).all():
        return "month"
    if days.dt.weekday().n_unique() == 1:
        return "week"
    return "day"


def resolve(cfg: ForecastConfig, dates: pl.Series) -> ForecastConfig:
    """`cfg` with `freq = "auto"` replaced by the frequency detected from `dates`."""
    if cfg.freq != "auto":
        return cfg
    return cfg.model_copy(update={"freq": detect_freq(dates)})


def config_freq(cfg: ForecastConfig) -> Freq:
    """The config's frequency. A config not yet resolved against a history (`auto`) counts
    in days, as mmplan did before it read frequencies: `forecast` and `backtest` resolve
    it first, so only direct callers of the stage's parts see this."""
    return "day" if cfg.freq == "auto" else cfg.freq


def season(cfg: ForecastConfig) -> int:
    """The effective season length: `season_length` if set, else the frequency's."""
    return cfg.season_length if cfg.season_length is not None else SEASON[config_freq(cfg)]


def statsforecast_freq(freq: Freq) -> str:
    """The frequency string statsforecast steps its forecast dates by (polars offsets)."""
    return _INTERVAL[freq]


def unit(freq: Freq) -> str:
    """The period's name, for messages: "days", "weeks", "months"."""
    return f"{freq}s"


def shift(date: dt.date, n: int, freq: Freq) -> dt.date:
    """`date` moved by `n` periods (negative: back). A month keeps its day, clipped to the
    month's length (the 1st, in a monthly history)."""
    if freq == "day":
        return date + dt.timedelta(days=n)
    if freq == "week":
        return date + dt.timedelta(weeks=n)
    year, month = divmod(date.month - 1 + n, 12)
    year += date.year
    last = calendar.monthrange(year, month + 1)[1]
    return date.replace(year=year, month=month + 1, day=min(date.day, last))


def period_range(start: pl.Expr | dt.date, end: pl.Expr | dt.date, freq: Freq) -> pl.Expr:
    """A list expression: the periods from `start` to `end`, both included."""
    return pl.date_ranges(start, end, interval=_INTERVAL[freq])


def future_dates(end: dt.date, n: int, freq: Freq) -> pl.Series:
    """The `n` periods after `end`: a forecast's dates."""
    return pl.date_range(shift(end, 1, freq), shift(end, n, freq), _INTERVAL[freq], eager=True)


def periods_between(start: pl.Expr, end: pl.Expr, freq: Freq) -> pl.Expr:
    """Whole periods from `start` to `end` (Date expressions): 0 for the same period."""
    if freq == "day":
        return (end - start).dt.total_days()
    if freq == "week":
        return (end - start).dt.total_days() // 7
    months = end.dt.year().cast(pl.Int64) * 12 + end.dt.month().cast(pl.Int64)
    return months - (start.dt.year().cast(pl.Int64) * 12 + start.dt.month().cast(pl.Int64))


def n_periods(start: dt.date, end: dt.date, freq: Freq) -> int:
    """Whole periods from `start` to `end` (dates)."""
    if freq == "day":
        return (end - start).days
    if freq == "week":
        return (end - start).days // 7
    return (end.year - start.year) * 12 + end.month - start.month


def period_start(day: dt.date, anchor: dt.date, freq: Freq) -> dt.date:
    """The first day of the period holding `day`; `anchor` is any period's date (a week's
    weekday)."""
    if freq == "day":
        return day
    if freq == "week":
        return day - dt.timedelta(days=(day - anchor).days % 7)
    return day.replace(day=1)
