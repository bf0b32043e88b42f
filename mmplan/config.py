"""Configuration: one TOML file, a section per stage, read into pydantic models.

Defaults live here; `configs/default.toml` spells out every key (a test keeps the two
equal). Unknown keys and wrong types are configuration errors (exit 78) that name the
file, the key and what is allowed. Configs are TOML only: nothing in them executes.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from mmplan.errors import ConfigError, InputFileError, UsageError

__all__ = [
    "Config",
    "SampleConfig",
    "ForecastConfig",
    "BacktestConfig",
    "GateConfig",
    "GateRules",
    "MonitorConfig",
    "MonitorRules",
    "MarketsConfig",
    "OverflowKey",
    "OptimizeConfig",
    "FleetConfig",
    "SimulateConfig",
    "PromiseConfig",
    "EngineConfig",
    "ReportConfig",
    "load_config",
    "FORECAST_MODELS",
    "RECONCILERS",
    "default_events",
]

# Models a planner may name: statsforecast classes (mmplan.forecasting.models), and LightGBM.
FORECAST_MODELS = (
    "AutoETS",
    "AutoTheta",
    "AutoARIMA",
    "MSTL",
    "SeasonalNaive",
    "Naive",
    "HistoricAverage",
    "CrostonOptimized",
    "CrostonClassic",
    "CrostonSBA",
    "ADIDA",
    "IMAPA",
    "TSB",
    "LightGBM",  # one global model across the series (mmplan.forecasting.gbm)
)
ModelName = Literal[FORECAST_MODELS]  # type: ignore[valid-type]

RECONCILERS = (
    "BottomUp",
    "TopDown(forecast_proportions)",
    "TopDown(average_proportions)",
    "TopDown(proportion_averages)",
    "MiddleOut",
    "MinTrace(ols)",
    "MinTrace(wls_struct)",
    "MinTrace(wls_var)",
    "MinTrace(mint_shrink)",
    "MinTrace(block_shrink)",
)
ReconcilerName = Literal[RECONCILERS]  # type: ignore[valid-type]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# A sample's event calendar reaches a year before its first day and past its last one, and a
# forecast of it up to 1096 days further: its days lie in 0002-01-01..9995-12-31.
SAMPLE_FIRST_DATE = dt.date(2, 1, 1)
SAMPLE_LAST_DATE = dt.date(9995, 12, 31)


class SampleConfig(Section):
    seed: int = Field(default=7, ge=0)
    regions: int = Field(default=3, ge=1)
    fcs: int = Field(default=5, ge=1)
    scs: int = Field(default=30, ge=1)
    dss: int = Field(default=300, ge=1)
    days: int = Field(default=730, ge=28)
    start: dt.date = dt.date(2024, 1, 1)
    market: str | None = Field(default=None, min_length=1, pattern=r"^[^/\s]+$")

    @field_validator("start")
    @classmethod
    def _days_fit_the_calendar(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        days = info.data.get("days")  # absent when days itself was refused
        room = (SAMPLE_LAST_DATE - value).days + 1
        if value < SAMPLE_FIRST_DATE or (isinstance(days, int) and days > room):
            raise PydanticCustomError(
                "sample_dates",
                "a sample's {days} days from start {start} must lie within {first}..{last} "
                "(the event calendar and a forecast need the years around them); "
                "choose a start in that range and at most that many days",
                {
                    "days": days,
                    "start": str(value),
                    "first": str(SAMPLE_FIRST_DATE),
                    "last": str(SAMPLE_LAST_DATE),
                },
            )
        return value


def default_events() -> dict[str, list[dt.date]]:
    """Retail events whose dates are known in advance (US calendar, 2023-2027)."""
    d = dt.date
    return {
        "prime_day": [
            d(2023, 7, 11),
            d(2023, 7, 12),
            d(2024, 7, 16),
            d(2024, 7, 17),
            d(2025, 7, 8),
            d(2025, 7, 9),
            d(2025, 7, 10),
            d(2025, 7, 11),
            d(2026, 7, 14),
            d(2026, 7, 15),
            d(2027, 7, 13),
            d(2027, 7, 14),
        ],
        "black_friday": [
            d(2023, 11, 24),
            d(2024, 11, 29),
            d(2025, 11, 28),
            d(2026, 11, 27),
            d(2027, 11, 26),
        ],
        "cyber_monday": [
            d(2023, 11, 27),
            d(2024, 12, 2),
            d(2025, 12, 1),
            d(2026, 11, 30),
            d(2027, 11, 29),
        ],
        "christmas": [d(y, 12, 25) for y in range(2023, 2028)],
    }


# Columns a hierarchy level may not group by: the history's measures and the forecast
# table's own columns (lo_<p>/hi_<p> too).
_NOT_LEVEL_COLUMNS = frozenset(
    {"date", "volume", "unique_id", "level", "forecast", "model", "ds", "y"}
)


class ForecastConfig(Section):
    # The history's period; every count below (horizon, *_days) is in periods of it.
    freq: Literal["auto", "day", "week", "month"] = "auto"
    # Up to three years: past `long_range_after` days a daily history is forecast with a
    # temporal hierarchy (mmplan.forecasting.temporal), not daily models run that long.
    horizon: int = Field(default=28, ge=1, le=1096)
    levels: list[int] = Field(default_factory=lambda: [80, 95])
    hierarchy: list[list[str]] = Field(default_factory=lambda: [["origin_region"], ["origin"]])
    model: ModelName = "LightGBM"
    # Models the validation windows try against `model` for the regular series; the one
    # with the lowest lane error there forecasts (mmplan.forecasting.pipeline.forecast).
    candidates: list[ModelName] = Field(default_factory=list)
    # None: by frequency (7 days, 52 weeks, 12 months; mmplan.forecasting.frequency.season).
    season_length: int | None = Field(default=None, ge=1)
    mstl_trend: Literal["ARIMA", "AutoARIMA", "AutoETS"] = "ARIMA"
    intervals: Literal["model", "conformal"] = "model"
    sparse_model: ModelName = "CrostonOptimized"
    sparse_adi: float = Field(default=1.32, gt=1.0)
    short_model: ModelName = "SeasonalNaive"
    min_history_days: int = Field(default=56, ge=1)
    closed_after_days: int = Field(default=28, ge=1)
    max_history_gap_days: int = Field(default=365, ge=1)
    fit_days: int | None = Field(default=None, ge=28)
    lanes: Literal["auto", "share", "model"] = "auto"
    share_days: int = Field(default=56, ge=7)
    # LightGBM targets relative to the mean of the last N periods (0: the whole history's).
    gbm_level_days: int = Field(default=0, ge=0)
    validation_windows: int = Field(default=2, ge=0, le=12)
    max_model_lanes: int = Field(default=5000, ge=0)
    reconciliation: ReconcilerName = "MinTrace(wls_var)"
    middle_level: str | None = None
    n_jobs: int = Field(default=-1, ge=-1)
    default_events: bool = True
    # The events given are merged over default_events() (see _events_merged).
    events: dict[str, list[dt.date]] = Field(default_factory=dict, validate_default=True)
    # The long-range forecast (mmplan.forecasting.temporal): on for a daily history when
    # `long_range` is true or the horizon exceeds `long_range_after` days.
    long_range: bool = False
    long_range_after: int = Field(default=90, ge=1)
    long_range_days: int = Field(default=28, ge=1)  # days whose daily forecasts weigh fully
    long_range_weeks: int = Field(default=26, ge=0)  # weeks whose weekly forecasts enter
    long_range_model: ModelName = "MSTL"  # the model of every grain's fit

    @field_validator("levels")
    @classmethod
    def _levels_in_range(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one interval level, e.g. [80, 95]")
        if any(not 0 < p < 100 for p in value):
            raise ValueError("interval levels are percentages strictly between 0 and 100")
        return sorted(set(value))

    @field_validator("events")
    @classmethod
    def _events_merged(
        cls, value: dict[str, list[dt.date]], info: ValidationInfo
    ) -> dict[str, list[dt.date]]:
        # A [forecast.events] table adds to the default calendar rather than replacing it
        # (one custom event used to drop Prime Day and the rest silently): an event named
        # like a default replaces its dates, an empty list drops it, and
        # default_events = false drops them all.
        merged = {**default_events(), **value} if info.data.get("default_events", True) else value
        return {name: sorted(set(days)) for name, days in merged.items() if days}

    @field_validator("n_jobs")
    @classmethod
    def _jobs_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("n_jobs is a number of processes (>= 1) or -1 for all cores")
        return value

    @field_validator("hierarchy")
    @classmethod
    def _hierarchy_named(cls, value: list[list[str]]) -> list[list[str]]:
        for chain in value:
            if not chain or len(set(chain)) != len(chain):
                raise ValueError(f"a hierarchy chain must name distinct columns, got {chain}")
        # Checked here rather than when the history is read, so the error names the file.
        for chain in value:
            # A level groups lanes by attribute columns: the history's date and volume, and
            # the forecast table's own columns, cannot be one.
            taken = [c for c in chain if c in _NOT_LEVEL_COLUMNS or c.startswith(("lo_", "hi_"))]
            if taken:
                raise ValueError(
                    f"a hierarchy level groups lanes by attribute columns (e.g. origin_region); "
                    f"{', '.join(repr(c) for c in taken)} is a column of the history or forecast "
                    f"contract, not an attribute. Remove it from {chain}"
                )
        names = ["/".join(chain) for chain in value]
        for name in names:
            if names.count(name) > 1 or name in ("total", "lane"):
                raise ValueError(f"level '{name}' is listed twice, or is reserved (total, lane)")
        return value


class BacktestConfig(Section):
    """Rolling-origin backtest: `windows` cutoffs `step` periods apart, each scored `horizon`
    periods (the history's days, weeks or months: [forecast] freq).

    The last cutoff is `horizon` periods before the history ends, so every window is scored
    on a full horizon of actuals.
    """

    windows: int = Field(default=4, ge=1)
    step: int = Field(default=7, ge=1)
    horizon: int | None = Field(default=None, ge=1, le=366)
    select: bool = False
    select_by: Literal["series", "level"] = "series"
    candidates: list[ModelName] = Field(
        default_factory=lambda: ["MSTL", "AutoETS", "SeasonalNaive"]
    )

    @field_validator("candidates")
    @classmethod
    def _candidates_distinct(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"candidates must name at least one model, each once; got {value}")
        return value


NonNegative = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


class GateRules(Section):
    """CI gate rules, each keyed by hierarchy level (total, ..., lane) and checked on the
    backtest of the configured model. A level the hierarchy does not produce is an error."""

    max_wape: dict[str, NonNegative] = Field(default_factory=dict)
    max_abs_bias: dict[str, NonNegative] = Field(default_factory=dict)
    min_coverage: dict[str, Share] = Field(default_factory=dict)
    max_coverage: dict[str, Share] = Field(default_factory=dict)
    coverage_interval: int | None = Field(default=None, gt=0, lt=100)
    beat_naive_by: dict[str, Annotated[float, Field(lt=1)]] = Field(default_factory=dict)
    max_regression: dict[str, NonNegative] = Field(default_factory=dict)


class GateConfig(GateRules):
    """[gate]: the rules, and per market ([gate.markets.<name>]) rules that override them
    level by level for that market's scores."""

    markets: dict[str, GateRules] = Field(default_factory=dict)


OverflowKey = Literal["lane", "network"]


class MonitorRules(Section):
    """`mmplan monitor` alert rules, in the shapes of [gate]: each keyed by hierarchy level.
    A level the forecast lacks is an error."""

    max_wape: dict[str, NonNegative] = Field(default_factory=dict)
    max_wape_ratio: dict[str, NonNegative] = Field(default_factory=dict)
    min_coverage: dict[str, Share] = Field(default_factory=dict)
    coverage_interval: int | None = Field(default=None, gt=0, lt=100)
    max_abs_tracking_signal: dict[str, NonNegative] = Field(default_factory=dict)


class MonitorConfig(MonitorRules):
    """[monitor]: the rules, the plan's overflow rule (keyed by `lane` and `network`), the
    drift flag, and per market ([monitor.markets.<name>]) overrides of the level rules."""

    max_overflow_share: dict[OverflowKey, Share] = Field(default_factory=dict)
    drift_bound: float = Field(default=4.0, gt=0)
    top_series: int = Field(default=5, ge=1, le=1000)
    markets: dict[str, MonitorRules] = Field(default_factory=dict)


class MarketsConfig(Section):
    """Markets: a history column naming each lane's market; backtest and monitor then also
    score every market on its own (a scoreboard market x level x metric)."""

    column: str | None = Field(default=None, min_length=1)


NodeKind = Literal["FC", "SC", "DS"]


def _sort_centres() -> list[NodeKind]:
    """By default only sort centres forward other facilities' volume."""
    return ["SC"]


MAX_UNSERVED_PENALTY = 1e8  # per package; see OptimizeConfig.unserved_penalty


class FleetConfig(Section):
    """Trucks in use per day: network-wide and per origin facility (None / absent: no limit)."""

    total: int | None = Field(default=None, ge=0)
    origin: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # Re-solve the dates a budget binds on with one more truck a day, and report the saving.
    marginal_value: bool = True

    @property
    def limited(self) -> bool:
        return self.total is not None or bool(self.origin)


def _dwell() -> dict[NodeKind, float]:
    """Days a package spends at a facility before its next lane (none at its destination)."""
    return {"FC": 0.0, "SC": 1.0, "DS": 0.0}


class OptimizeConfig(Section):
    column: str = Field(default="forecast", min_length=1)
    solver: Literal["SCIP", "CP-SAT"] = "SCIP"
    lp_solver: Literal["GLOP", "PDLP"] = "GLOP"
    relax: bool = False
    time_limit: float = Field(default=120.0, gt=0)
    relative_gap: float = Field(default=0.01, ge=0, lt=1)
    transit_kinds: list[NodeKind] = Field(default_factory=_sort_centres)
    # At most 1e8 per package: the objective is then penalty x unserved volume, and past 1e8
    # its digits swamp the operating cost (measured on a 13-facility sample, 7 dates with
    # unserved volume: operating gap 0.8% at 1e8, 13% at 1e9, 18% at 1e10); inf fails 69.
    unserved_penalty: float | None = Field(default=None, gt=0, le=MAX_UNSERVED_PENALTY)
    workers: int = Field(default=2, ge=1)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    # The demand rows planned (a forecast's `grain` column; a table without one is daily):
    # week or month plans one MIP per period, trucks as loads (mmplan.plan.grain).
    grain: Literal["day", "week", "month"] = "day"
    # Days a lane runs in an ISO week (Monday first): a week's loads are trucks a day times
    # this, a month's times the month's days among the first this-many weekdays.
    operating_days_per_week: int = Field(default=7, ge=1, le=7)
    # Days spent at each kind of facility a package leaves (mmplan promise); transit_days
    # and dwell are not used when choosing trucks.
    dwell_days: dict[NodeKind, Annotated[float, Field(ge=0)]] = Field(default_factory=_dwell)

    # Same plan every run: phases stop on work limits (LP rounds, SCIP nodes), not on
    # shares of the wall clock; time_limit still bounds the run (summary: deterministic).
    deterministic: bool = True
    seed: int = Field(default=0, ge=0)
    # Slope scaling: passes (the first from the LP, the rest restarted from memory) of at
    # most slope_rounds flow LPs; the restricted MIP searches the pool_size best plans' lanes.
    slope_passes: int = Field(default=8, ge=1)
    slope_rounds: int = Field(default=20, ge=1)
    pool_size: int = Field(default=8, ge=1)
    # SCIP's node limits with deterministic: the restricted MIP, then the full MIP.
    restricted_nodes: int = Field(default=2000, ge=1)
    mip_nodes: int = Field(default=5000, ge=1)
    # The restricted MIP keys commodities by demand pair (strong linking per pair, a far
    # tighter LP) when that gives at most this many flow columns (pairs x lanes kept).
    disaggregate_columns: int = Field(default=100_000, ge=0)
    # ... and so does the full MIP, up to this many (pairs x lanes). Off by default: on the
    # 13-facility sample at 1e3 x demand it stopped within gap on a worse plan (304 trucks
    # against 296; operating gap 0.83% against 0.49% origin-keyed).
    disaggregate_mip_columns: int = Field(default=0, ge=0)


class SimulateConfig(Section):
    """`mmplan simulate`: Monte Carlo of a plan against the forecast's distribution."""

    samples: int = Field(default=200, ge=1)
    seed: int = 0
    # The interval whose width gives each parent's sigma (lo_<p>, hi_<p> of the forecast).
    interval: int = Field(default=80, gt=0, lt=100)
    # Lag-1 autocorrelation across dates of the network total's noise (of each origin's when
    # the forecast has no total rows), and of each origin's and lane's own share noise.
    # Chosen on 12-cutoff backtests of the real sets and the sample (benchmarks/joint_model.py):
    # the network's error persists over the horizon, a share's much less.
    total_autocorrelation: float = Field(default=0.8, ge=0, lt=1)
    autocorrelation: float = Field(default=0.3, ge=0, lt=1)
    # Price of a package the plan's trucks cannot carry, per package (not the model penalty).
    shortfall_cost: float = Field(default=10.0, ge=0)
    # Spot trucks at this multiple of cost_per_truck (unset: no spot trucks).
    spot_premium: float | None = Field(default=None, ge=1)


class PromiseConfig(Section):
    """`mmplan promise`: the share of volume the promised days must cover."""

    share: float = Field(default=0.95, gt=0, le=1)


# [protocol://]host:port, as `dask scheduler` prints it; IPv6 hosts in brackets.
_SCHEDULER_ADDRESS = re.compile(r"^([a-z]+://)?(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):\d{1,5}$")


class EngineConfig(Section):
    """Where model fitting and per-date solving run: this machine, or a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    # validate_default: a Dask engine without an address must fail even when the key is absent.
    scheduler: str | None = Field(default=None, validate_default=True)
    series_per_task: int = Field(default=100, ge=1)
    # Finite and at most a day: dask cannot parse inf, and a longer wait is a hung run.
    connect_timeout: float = Field(default=10.0, gt=0, le=86400, allow_inf_nan=False)

    @field_validator("scheduler")
    @classmethod
    def _scheduler_given_for_dask(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("kind") == "dask":
                raise PydanticCustomError(
                    "scheduler_missing",
                    "a Dask engine needs the scheduler's address: pass --scheduler ADDRESS or "
                    "set [engine].scheduler, e.g. tcp://10.0.0.5:8786",
                )
            return value
        if not _SCHEDULER_ADDRESS.match(value):
            raise ValueError(
                "a scheduler address is [protocol://]host:port, e.g. tcp://10.0.0.5:8786"
            )
        return value


class ReportConfig(Section):
    """What `mmplan report` draws: aggregates and the top series, never every lane."""

    top_series: int = Field(default=6, ge=1, le=50)
    worst_series: int = Field(default=10, ge=1, le=100)
    top_lanes: int = Field(default=10, ge=1, le=100)
    history_periods: int = Field(default=91, ge=7, le=3660)
    max_facilities: int = Field(default=60, ge=1, le=1000)


class Config(Section):
    sample: SampleConfig = Field(default_factory=SampleConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    markets: MarketsConfig = Field(default_factory=MarketsConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    promise: PromiseConfig = Field(default_factory=PromiseConfig)

    def as_record(self) -> dict[str, Any]:
        """The effective config as plain JSON-able data, for provenance metadata."""
        return self.model_dump(mode="json")


def _allowed(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The keys allowed where an unknown key was found, for the error message."""
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type):
            return ""
        current = field.annotation
    fields = getattr(current, "model_fields", None)
    return ", ".join(sorted(fields)) if fields else ""


# Flags whose name is not "--" + the key they set.
_FLAG_NAMES: dict[tuple[Any, ...], str] = {("engine", "kind"): "--engine"}
# A key whose error is caused by another key's value (the scheduler is missing *because* the
# kind is dask): when that other key came from a flag, the flag is to blame, not the file.
_CAUSED_BY: dict[tuple[Any, ...], tuple[str, str]] = {
    ("engine", "scheduler"): ("engine", "kind"),
    ("sample", "start"): ("sample", "days"),  # --days runs past the calendar's end
}


def _flag(key: tuple[Any, ...]) -> str:
    return _FLAG_NAMES.get(key, "--" + str(key[1]).replace("_", "-"))


def _describe(error: Mapping[str, Any], source: str) -> str:
    key = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        allowed = _allowed(Config, tuple(error["loc"]))
        return f"{source}: unknown key '{key}'" + (f"; allowed here: {allowed}" if allowed else "")
    hint = ""
    if error["type"].startswith("date") and isinstance(error.get("input"), str):
        hint = " (write TOML dates without quotes: 2024-01-01)"
    return f"{source}: key '{key}' = {error.get('input')!r} is not allowed: {error['msg']}{hint}"


def load_config(path: str | Path | None = None, **overrides: dict[str, Any]) -> Config:
    """Read a TOML config (or the defaults when `path` is None) and apply overrides.

    `overrides` maps a section name to the keys to set, e.g. forecast={"horizon": 14};
    None values are ignored so CLI flags that were not given leave the file's value.
    """
    source = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise InputFileError(f"config path {p} is a folder; give the TOML file inside it.")
        if not p.is_file():
            raise InputFileError(f"config file not found: {p}. Check the --config path.")
        try:
            # utf-8-sig: an editor's byte-order mark is not a TOML syntax error.
            data = tomllib.loads(p.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a UTF-8 text file; configs are TOML.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc}). Fix the syntax.") from None
    for section, values in overrides.items():
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(
                f"{source}: '{section}' must be a table ([{section}] with keys), "
                f"not {data[section]!r}."
            )
        for key, value in (values or {}).items():
            if value is not None:
                data.setdefault(section, {})[key] = value
    flags = {
        (section, key)
        for section, values in overrides.items()
        for key, value in (values or {}).items()
        if value is not None
    }
    try:
        # Strict: a wrong type is an error (DESIGN), not coerced ("7" is not the number 7).
        # Flags arrive already typed, so strictness costs them nothing.
        return Config.model_validate(data, strict=True)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"][:2])
            if loc in flags:  # a command-line flag, not the file
                raise UsageError(
                    f"{_flag(loc)} {error.get('input')!r} is not allowed: {error['msg']}."
                ) from None
            cause = _CAUSED_BY.get(loc)
            if cause in flags:
                raise UsageError(
                    f"{_flag(cause)} {data[cause[0]][cause[1]]!r}: {error['msg']}."
                ) from None
        problems = "; ".join(_describe(e, source) for e in exc.errors())
        raise ConfigError(
            f"bad configuration: {problems}. See configs/default.toml for every key."
        ) from None
