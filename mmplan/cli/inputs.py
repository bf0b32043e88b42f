"""Turning flags and input files into what the library functions take.

Flag texts are parsed here (dates, table kinds, scenario lists) so a usage error stops a
run before anything is read; input tables are read and checked against their contracts.
Heavy libraries are imported inside the functions: a usage error costs no Polars import.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

from mmplan.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

    from mmplan.config import Config
    from mmplan.evaluate import BacktestSetup, Baseline
    from mmplan.evaluate.monitor import MonitorSetup
    from mmplan.plan.simulation import PlanTables
    from mmplan.scenario_file import ScenarioDef, ScenarioFile

__all__ = [
    "ForecastInputs",
    "PlanInputs",
    "read_backtest_inputs",
    "backtest_notes",
    "parse_date",
    "check_kind",
    "parse_scenarios",
    "scenario_file",
    "ScenarioInputs",
    "read_scenario_inputs",
    "SimulateInputs",
    "read_simulate_inputs",
    "read_baseline",
    "read_forecast_inputs",
    "read_plan_inputs",
    "check_report_request",
    "read_monitor_inputs",
    "read_store",
]


def parse_date(flag: str, text: str | None) -> dt.date | None:
    """A YYYY-MM-DD flag as a date: the config is read strictly, so text becomes a date here."""
    try:
        return dt.date.fromisoformat(text) if text is not None else None
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a date; give it as YYYY-MM-DD.") from None


def check_kind(kind: str | None) -> None:
    """UsageError unless --kind names a table kind (or is omitted)."""
    from mmplan.tables import KINDS

    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind {kind!r} is not a table kind; use one of {', '.join(KINDS)}.")


def scenario_file(scenarios: str | None, grain: str = "day") -> Path | None:
    """--scenarios FILE.toml: a scenario file (None when --scenarios names columns); a
    UsageError with a week or month grain, which scenario files do not plan."""
    if scenarios is not None and scenarios.strip().lower().endswith(".toml"):
        if grain != "day":
            raise UsageError(
                f"--scenarios {scenarios.strip()} plans daily demand only; drop --grain "
                f"{grain} (or [optimize] grain), or plan columns with --scenarios "
                "forecast,hi_80."
            )
        return Path(scenarios.strip())
    return None


def parse_scenarios(scenarios: str | None, column: str | None, quantile: str | None) -> list[str]:
    """The columns --scenarios names (none without it, or a scenario file), checked against
    --column/--quantile."""
    if scenario_file(scenarios) is not None:
        return []
    if column is not None and quantile is not None and column != quantile:
        raise UsageError(f"--column {column} and --quantile {quantile} disagree; give one.")
    columns = [c.strip() for c in (scenarios or "").split(",") if c.strip()]
    if scenarios is not None and (not columns or len(set(columns)) != len(columns)):
        raise UsageError(f"--scenarios {scenarios!r}: name distinct columns, e.g. forecast,hi_80.")
    if columns and (column or quantile):
        raise UsageError("--scenarios names the columns to plan; drop --column/--quantile.")
    return columns


def read_baseline(baseline: Path | None) -> Baseline | None:
    """The --baseline metrics.json (None without one), checked for what the gate reads."""
    from mmplan.evaluate import read_baseline as parse_baseline

    if baseline is None:
        return None
    return parse_baseline(functools.partial(baseline.read_text, encoding="utf-8"), str(baseline))


def read_backtest_inputs(
    history: Path, cfg: Config, config: Path | None, baseline: Baseline | None, gate: bool
) -> BacktestSetup:
    """Read the history and check every backtest input: a [gate] rule naming an unknown
    level fails here, before minutes of model fitting. With `gate` (--gate) and no [gate]
    rules, the default gate applies (mmplan.evaluate.gates.default_gate)."""
    from mmplan.evaluate import prepare_backtest
    from mmplan.evaluate.gates import default_gate, has_rules
    from mmplan.io import read_table

    hist = read_table(history, "history", max_gap_days=cfg.forecast.max_history_gap_days)
    if gate and not has_rules(cfg.gate):
        cfg = cfg.model_copy(update={"gate": default_gate(cfg.forecast, hist.columns)})
    return prepare_backtest(hist, cfg, baseline, source=str(config or "defaults"))


class ForecastInputs(NamedTuple):
    """What `mmplan forecast` reads: the history and the optional backtest outputs."""

    history: pl.DataFrame
    champions: pl.DataFrame | None
    calibration: pl.DataFrame | None

    @property
    def backtest_tables(self) -> dict[str, pl.DataFrame | None]:
        """The backtest's champions and calibration, as `forecast()` takes them."""
        return {"champions": self.champions, "calibration": self.calibration}


def backtest_notes(setup: BacktestSetup) -> list[str]:
    """What the backtest summary notes about its inputs: default levels left out."""
    from mmplan.forecasting import hierarchy_notes

    return hierarchy_notes(setup.config.forecast, setup.history.columns)


def read_forecast_inputs(
    history: Path, champions: Path | None, calibration: Path | None, cfg: Config
) -> ForecastInputs:
    """Read and check the history, champions and calibration tables; the calibration
    must have a factor for every level the config forecasts."""
    from mmplan.forecasting import check_calibration, compact_keys, hierarchy_levels
    from mmplan.io import read_table

    # Compact here, so the String original is freed before the forecast (gigabytes at 100k).
    hist = compact_keys(
        read_table(history, "history", max_gap_days=cfg.forecast.max_history_gap_days)
    )
    chosen = read_table(champions, "champions") if champions is not None else None
    factors = None
    if calibration is not None:
        factors = read_table(calibration, "calibration")
        levels = [name for name, _ in hierarchy_levels(cfg.forecast, hist.columns)]
        check_calibration(factors, levels, cfg.forecast, str(calibration))
    return ForecastInputs(hist, chosen, factors)


class PlanInputs(NamedTuple):
    """What `mmplan optimize` reads: demand (keys and one column per plan) and the network."""

    demand: pl.DataFrame
    nodes: pl.DataFrame
    lanes: pl.DataFrame
    planned: list[str]


class ScenarioInputs(NamedTuple):
    """What `mmplan optimize --scenarios FILE.toml` reads: the plan inputs, the scenario file,
    and which table column holds each column a scenario names."""

    plan: PlanInputs
    scenarios: ScenarioFile
    planned: dict[str, str]


def read_scenario_inputs(
    demand: Path, nodes: Path, lanes: Path, path: Path, base: str
) -> ScenarioInputs:
    """Read the scenario file first (78 on a bad key), then the plan inputs with the base
    column and every column a scenario names (65, naming the scenario, when one is missing)."""
    from mmplan.errors import DataError
    from mmplan.io import read_parquet
    from mmplan.plan import demand_rows
    from mmplan.scenario_file import load_scenarios

    spec = load_scenarios(path)
    table = read_parquet(demand, what="demand")
    planned = {base: demand_rows(table, base, demand).columns[-1]}
    for s in spec.scenario:
        if s.column is None or s.column in planned:
            continue
        try:
            planned[s.column] = demand_rows(table, s.column, demand).columns[-1]
        except DataError as exc:
            raise DataError(f"{path}: scenario '{s.name}', key 'column': {exc.message}") from None
    columns = list(dict.fromkeys(planned.values()))
    read = read_plan_inputs(demand, nodes, lanes, columns)
    return ScenarioInputs(read, spec, planned)


class SimulateInputs(NamedTuple):
    """What `mmplan simulate` reads: the plans by name, the forecast, nodes and lanes."""

    plans: dict[str, PlanTables]
    forecast: pl.DataFrame
    nodes: pl.DataFrame
    lanes: pl.DataFrame
    nodes_path: Path
    lanes_path: Path


def check_daily_plan(plandir: Path, record: dict | None = None) -> None:
    """DataError (65) for a week or month plan (optimize --grain, told by its provenance):
    its trucks are loads per period, and simulate, promise and monitor read trucks a day."""
    from mmplan.errors import DataError
    from mmplan.io import read_provenance

    if record is None:
        record = read_provenance(plandir / "trucks.parquet") or {}
    grain = record.get("config", {}).get("optimize", {}).get("grain", "day")
    if grain != "day":
        raise DataError(
            f"{plandir}: a {grain} plan (optimize --grain {grain}: trucks are loads per "
            f"{grain}); this command reads a daily plan's trucks. Run it on a plan made with "
            "--grain day."
        )


def plan_network(plandir: Path, nodes: Path | None, lanes: Path | None) -> tuple[Path, Path]:
    """--nodes and --lanes, or the ones the plan was made from (its provenance); 66 when
    neither is known, 65 for a week or month plan (its trucks are loads per period)."""
    from mmplan.errors import InputFileError
    from mmplan.io import read_provenance

    record = read_provenance(plandir / "trucks.parquet") or {}
    check_daily_plan(plandir, record)
    made = record.get("inputs", {})
    out = []
    for flag, given in (("nodes", nodes), ("lanes", lanes)):
        path = given or (Path(made[flag]["path"]) if flag in made else None)
        if path is None:
            raise InputFileError(
                f"{plandir}: its provenance names no {flag} table; pass --{flag} FILE."
            )
        out.append(path)
    return out[0], out[1]


def plan_scenario(plandir: Path) -> ScenarioDef | None:
    """The scenario a plan folder of `optimize --scenarios FILE.toml` was planned on, as its
    summary.json records it (None for any other plan); 65 when that record is unreadable."""
    import json

    from mmplan.errors import DataError
    from mmplan.scenario_file import ScenarioDef

    path = plandir / "summary.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text()).get("scenario")
        if not record:
            return None
        fields = {"name": record["name"], "change": record.get("changes", [])}
        if record.get("fleet") is not None:
            fields["fleet"] = record["fleet"]
        return ScenarioDef.model_validate(fields)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise DataError(
            f"{path}: its 'scenario' record (the changes the plan was made with) cannot be "
            f"read: {str(exc).splitlines()[0]}. Re-run mmplan optimize --scenarios."
        ) from None


def read_simulate_inputs(
    plandirs: list[Path], demand: Path, nodes: Path | None, lanes: Path | None
) -> SimulateInputs:
    """Each plan folder's trucks and nodes (by folder name, or path when names repeat), the
    forecast, and the network of the first plan (or --nodes/--lanes)."""
    from mmplan.io import read_parquet, read_table
    from mmplan.plan.simulation import PlanTables
    from mmplan.tables import day_rows

    names = [p.name for p in plandirs]
    if len(set(names)) != len(names):
        names = [f"{p}#{i + 1}" if i else str(p) for i, p in enumerate(plandirs)]
    plans = {
        name: PlanTables(
            read_parquet(p / "trucks.parquet", what="plan trucks"),
            read_parquet(p / "nodes.parquet", what="plan nodes"),
            plan_scenario(p),
        )
        for name, p in zip(names, plandirs, strict=True)
    }
    nodes_path, lanes_path = plan_network(plandirs[0], nodes, lanes)
    node_table = read_table(nodes_path, "nodes")
    lane_table = read_table(lanes_path, "lanes", node_table)
    # A long-range forecast's week and month rows are not days to route (DESIGN: day rows).
    forecast = day_rows(read_table(demand, "forecast"))
    return SimulateInputs(plans, forecast, node_table, lane_table, nodes_path, lanes_path)


def read_plan_inputs(
    demand: Path, nodes: Path, lanes: Path, columns: list[str], grain: str = "day"
) -> PlanInputs:
    """Read and check the nodes, the lanes (naming known nodes) and the demand `columns` of
    the `grain` rows (a table without a grain column is daily)."""
    from mmplan.io import read_parquet, read_table
    from mmplan.plan import demand_columns

    node_table = read_table(nodes, "nodes")
    lane_table = read_table(lanes, "lanes", node_table)
    picked = demand_columns(read_parquet(demand, what="demand"), columns, demand, grain)
    return PlanInputs(picked.table, node_table, lane_table, picked.planned)


def check_report_request(paths: dict[str, Path], series: list[str] | None) -> None:
    """Usage errors of `mmplan report`, before anything is read: no input at all, or
    --series without the forecast it names series of."""
    if not paths:
        raise UsageError(
            "nothing to report: give at least one input (--history, --forecast, --backtest, "
            "--plan, --scenarios, --simulation, --promise or --monitor)."
        )
    if series and "forecast" not in paths:
        raise UsageError("--series names forecast series: give --forecast too.")


def read_store(store: Path | None, sha: str) -> pl.DataFrame | None:
    """The per-series sums of every earlier run in a monitoring store (--append), but the
    forecast `sha`'s own (a re-run replaces it). None without a store or with an empty one."""
    import polars as pl

    from mmplan.io import read_parquet

    if store is None or not store.is_dir():
        return None
    files = [f for f in sorted(store.glob("forecast_date=*/*.parquet")) if f.stem != sha]
    cols = ["scope", "level", "unique_id", "points", "sum_error", "sum_abs_error"]
    frames = [
        read_parquet(f, what="monitoring store").select(cols).filter(pl.col("scope") == "series")
        for f in files
    ]
    return pl.concat(frames, how="vertical_relaxed") if frames else None


def read_monitor_inputs(
    paths: dict[str, Path | None], cfg: Config, config: Path | None, gate: bool
) -> MonitorSetup:
    """Read and check what `mmplan monitor` takes: `paths` has forecast, actuals and
    optionally plan (a plan folder), lanes, baseline and store. With `gate` and no
    [monitor] rules, the default rules apply (mmplan.evaluate.alerts.default_monitor)."""
    import dataclasses

    from mmplan.evaluate.alerts import default_monitor, has_monitor_rules
    from mmplan.evaluate.monitor import MonitorSetup, PlanTables, prepare_monitor
    from mmplan.io import read_table, sha256_file

    forecast, history = cast(Path, paths["forecast"]), cast(Path, paths["actuals"])
    prior = read_baseline(paths.get("baseline"))
    fc = read_table(forecast, "forecast")
    hist = read_table(history, "history", max_gap_days=cfg.forecast.max_history_gap_days)
    plan, folder = None, paths.get("plan")
    if folder is not None:
        check_daily_plan(folder)
        lanes = paths.get("lanes")
        plan = PlanTables(
            read_table(folder / "trucks.parquet", "trucks"),
            read_table(folder / "nodes.parquet", "plan_nodes"),
            read_table(lanes, "lanes") if lanes is not None else None,
        )
    sha = sha256_file(forecast)
    earlier = read_store(paths.get("store"), sha)
    raw = MonitorSetup(fc, hist, cfg, sha, prior, plan, earlier, (str(forecast), str(history)))
    setup = prepare_monitor(raw, source=str(config or "defaults"))
    if gate and not has_monitor_rules(cfg.monitor):
        fcfg = setup.config.forecast
        levels = ["total", *("/".join(c) for c in fcfg.hierarchy), "lane"]
        rules = default_monitor(cfg.monitor, levels, fcfg.levels)
        setup = dataclasses.replace(
            setup, config=setup.config.model_copy(update={"monitor": rules})
        )
    return setup
