"""Reading what a report is made from: a history, a forecast, a backtest, plan, scenario,
simulation or monitor folder, and a promise table.

Every table is read with `mmplan.io.read_table` (a monitor's, scenario comparison's,
simulation's or promise's with `read_parquet` and a check of its columns and their types),
so a missing or unreadable file is exit 66 and a table that breaks its contract is exit 65
naming the file. A folder is recognised by the files `mmplan backtest`, `optimize` (with or
without `--scenarios`), `simulate` or `monitor` writes into it; any other folder is exit 65
naming it and what it lacks. Each file read becomes a `Source`: its path, the provenance
mmplan stored in its Parquet metadata (or the folder's manifest.json), and the SHA-256 the
folder's manifest recorded for it, so the page can say whether a file changed since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mmplan.errors import DataError, InputFileError
from mmplan.io import read_parquet, read_provenance, read_table
from mmplan.tables import day_rows

__all__ = [
    "Source",
    "Loaded",
    "HistoryInput",
    "ForecastInput",
    "BacktestInput",
    "PlanInput",
    "MonitorInput",
    "ScenariosInput",
    "SimulationInput",
    "PromiseInput",
    "read_history",
    "read_forecast",
    "read_backtest",
    "read_plan",
    "read_monitor",
    "read_scenarios",
    "read_simulation",
    "read_promise",
    "interval_levels",
]

# The command whose manifest.json a kind's folder carries.
WRITERS = {"plan": "optimize", "scenario": "optimize", "simulation": "simulate"}
BACKTEST_FILES = ("points.parquet", "metrics.parquet")
PLAN_FILES = ("trucks.parquet", "flows.parquet", "nodes.parquet", "unserved.parquet")
MONITOR_FILES = ("scores.parquet", "alerts.parquet")
MONITOR_PLAN_FILES = ("plan_lanes.parquet", "plan_facilities.parquet")
SCENARIO_COSTS = (
    "truck_cost",
    "package_cost",
    "handling_cost",
    "extra_capacity_cost",
    "unserved_penalty_cost",
)
SIMULATION_FILES = ("samples.parquet", "pairs.parquet", "facilities.parquet")
MONITOR_COLUMNS = {
    "scores.parquet": ("scope", "level", "unique_id", "wape", "bias", "sum_actual"),
    "alerts.parquet": ("rule", "level", "metric", "op", "threshold", "measured", "status"),
    "plan_lanes.parquet": ("origin", "destination", "date", "actual", "capacity", "overflow"),
    "plan_facilities.parquet": ("node", "date", "actual", "capacity", "over", "utilization"),
}
# What `optimize --scenarios FILE.toml` and `simulate` write (README: Scenarios, Simulation).
FOLDER_COLUMNS = {
    "comparison.parquet": (
        "scenario",
        "status",
        "message",
        *SCENARIO_COSTS,
        "total_cost",
        "trucks",
        "unserved_volume",
        "closed_facility_volume",
        "binding_facilities",
        "delta_total_cost",
        "delta_trucks",
        "delta_unserved_volume",
    ),
    "samples.parquet": ("plan", "sample", "total_cost", "shortfall_cost", "unserved_volume"),
    "pairs.parquet": ("plan", "origin", "destination", "demand", "unserved", "service_level"),
    "facilities.parquet": ("plan", "facility", "demand", "unserved", "service_level"),
}
# Of FOLDER_COLUMNS, those that hold text; every other one must hold numbers.
TEXT_COLUMNS = {"scenario", "status", "message", "binding_facilities", "plan", "origin"}
TEXT_COLUMNS |= {"destination", "facility"}
PROMISE_COLUMNS = ("origin", "destination", "date", "path", "path_days", "volume", "promised_days")
SIMULATION_KEYS = (
    "p_any_unserved",
    "expected_unserved_volume",
    "expected_shortfall_cost",
    "cost_mean",
    "cost_p50",
    "cost_p90",
    "cost_p99",
    "service_level",
)


@dataclass(frozen=True)
class Source:
    """One file a report read: its label on the page, its path, the provenance mmplan
    stored with it, and the SHA-256 its folder's manifest.json recorded (None outside a
    folder)."""

    label: str
    path: Path
    record: dict[str, Any] | None
    manifest_sha256: str | None = None


@dataclass(frozen=True)
class Loaded:
    """An input read and checked: its kind (`forecast`, `plan`, ...), the path given on
    the command line, the kind's data, and every file read for it."""

    kind: str
    path: Path
    data: Any
    sources: list[Source] = field(default_factory=list)

    def record(self) -> dict[str, Any] | None:
        """The provenance of the run that wrote it: a folder's manifest.json, or the
        record in a file's Parquet metadata."""
        manifest = getattr(self.data, "manifest", None)
        if manifest:
            return dict(manifest)
        return self.sources[0].record if self.sources else None


@dataclass(frozen=True)
class HistoryInput:
    table: pl.DataFrame


@dataclass(frozen=True)
class ForecastInput:
    table: pl.DataFrame
    levels: list[int]  # interval levels p with lo_p and hi_p columns, narrowest first


@dataclass(frozen=True)
class BacktestInput:
    points: pl.DataFrame
    metrics: pl.DataFrame
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class PlanInput:
    trucks: pl.DataFrame
    flows: pl.DataFrame
    nodes: pl.DataFrame
    unserved: pl.DataFrame
    summary: dict[str, Any]
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class ScenariosInput:
    comparison: pl.DataFrame  # one row per scenario, base first
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class SimulationInput:
    samples: pl.DataFrame
    pairs: pl.DataFrame
    facilities: pl.DataFrame
    summary: dict[str, Any]  # per plan (in `plans`, in the order simulated) and the demand
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class PromiseInput:
    table: pl.DataFrame  # one row per pair, date and path (what `mmplan promise` writes)


@dataclass(frozen=True)
class MonitorInput:
    scores: pl.DataFrame
    alerts: pl.DataFrame
    summary: dict[str, Any]
    plan_lanes: pl.DataFrame | None  # with --plan only
    plan_facilities: pl.DataFrame | None
    manifest: dict[str, Any] | None


def interval_levels(columns: list[str]) -> list[int]:
    """The interval levels p that have both lo_p and hi_p columns, narrowest first."""
    found = []
    for name in columns:
        if name.startswith("lo_") and name[3:].isdigit() and f"hi_{name[3:]}" in columns:
            found.append(int(name[3:]))
    return sorted(found)


def read_history(path: Path) -> Loaded:
    """A history table, checked against its contract."""
    table = read_table(path, "history")
    return Loaded("history", path, HistoryInput(table), [Source("history", path, _record(path))])


def read_forecast(path: Path) -> Loaded:
    """A forecast table, checked against its contract (levels add up, intervals ordered)."""
    table = day_rows(read_table(path, "forecast"))  # a long-range forecast: its days
    data = ForecastInput(table, interval_levels(table.columns))
    return Loaded("forecast", path, data, [Source("forecast", path, _record(path))])


def _record(path: Path) -> dict[str, Any] | None:
    return read_provenance(path)


def _folder(path: Path, what: str, needs: tuple[str, ...], hint: str) -> dict[str, Any] | None:
    """Check that `path` is a folder holding `needs` (66 if it does not exist, 65 if it
    is something else); returns its manifest.json, if any."""
    if not path.exists():
        raise InputFileError(f"{what} folder not found: {path}. Check the path and try again.")
    if not path.is_dir():
        raise DataError(f"{path} is not a {what} folder but a file; {hint}")
    manifest = _manifest(path)
    command = (manifest or {}).get("command")
    wanted = WRITERS.get(what, what)
    if command is not None and command != wanted:
        raise DataError(
            f"{path} is not a {what} folder: its manifest.json says `mmplan {command}` wrote "
            f"it. {hint}"
        )
    missing = [name for name in needs if not (path / name).is_file()]
    if missing:
        inner = sorted(p.name for p in path.iterdir() if (p / "summary.json").is_file())
        extra = (
            f" It holds plan folders ({', '.join(inner[:4])}): give one of them"
            + (", or the whole folder with --scenarios." if scenario_folder(path) else ".")
            if inner and what == "plan"
            else ""
        )
        raise DataError(
            f"{path} is not a {what} folder: it has no {', '.join(missing)}.{extra} {hint}"
        )
    return manifest


def scenario_folder(path: Path) -> bool:
    """Whether `path` is what `optimize --scenarios FILE.toml` writes (a comparison)."""
    return (path / "comparison.parquet").is_file()


def _manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a readable mmplan manifest ({exc}).") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not an mmplan manifest: it holds no JSON object.")
    return data


def _sources(
    folder: Path, kind: str, names: tuple[str, ...], manifest: dict[str, Any] | None
) -> list[Source]:
    files = (manifest or {}).get("files", {})
    return [
        Source(f"{kind}/{name}", folder / name, _record(folder / name), files.get(name))
        for name in names
    ]


def read_backtest(path: Path) -> Loaded:
    """The folder `mmplan backtest` writes: points and metrics (and its manifest)."""
    hint = "Give the folder `mmplan backtest HISTORY -o OUTDIR` wrote."
    manifest = _folder(path, "backtest", BACKTEST_FILES, hint)
    points = read_table(path / "points.parquet", "points")
    metrics = read_table(path / "metrics.parquet", "metrics")
    for column in ("skill", "sum_abs_error", "sum_actual"):
        if column not in metrics.columns:
            raise DataError(f"{path / 'metrics.parquet'}: column {column} is missing. {hint}")
    data = BacktestInput(points, metrics, manifest)
    return Loaded("backtest", path, data, _sources(path, "backtest", BACKTEST_FILES, manifest))


def read_plan(path: Path) -> Loaded:
    """The folder `mmplan optimize` writes: trucks, flows, nodes, unserved, summary.json."""
    hint = "Give the folder `mmplan optimize ... -o PLANDIR` wrote."
    manifest = _folder(path, "plan", (*PLAN_FILES, "summary.json"), hint)
    kinds = {"trucks": "trucks", "flows": "flows", "nodes": "plan_nodes", "unserved": "unserved"}
    tables = {name: read_table(path / f"{name}.parquet", kind) for name, kind in kinds.items()}
    summary = _summary_json(path / "summary.json", "plan")
    data = PlanInput(**tables, summary=summary, manifest=manifest)
    return Loaded("plan", path, data, _sources(path, "plan", PLAN_FILES, manifest))


def _summary_json(path: Path, what: str) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not a {what} summary ({exc}).") from None
    if not isinstance(summary, dict):
        raise DataError(f"{path} is not a {what} summary: no JSON object.")
    return summary


def _monitor_table(folder: Path, name: str, hint: str) -> pl.DataFrame:
    table = read_parquet(folder / name, what="monitor")
    missing = [c for c in MONITOR_COLUMNS[name] if c not in table.columns]
    if missing:
        raise DataError(
            f"{folder / name}: column {', '.join(missing)} is missing; it is not what "
            f"`mmplan monitor` writes. {hint}"
        )
    return table


def read_monitor(path: Path) -> Loaded:
    """The folder `mmplan monitor` writes: scores, alerts, summary.json (and with --plan
    plan_lanes, plan_facilities)."""
    hint = "Give the folder `mmplan monitor --forecast F --actuals H -o OUTDIR` wrote."
    manifest = _folder(path, "monitor", (*MONITOR_FILES, "summary.json"), hint)
    summary = _summary_json(path / "summary.json", "monitor")
    if not isinstance(summary.get("levels"), dict):
        raise DataError(f"{path / 'summary.json'} is not a monitor summary: no levels. {hint}")
    scores, alerts = (_monitor_table(path, name, hint) for name in MONITOR_FILES)
    names: tuple[str, ...] = MONITOR_FILES
    lanes = facilities = None
    if summary.get("plan") is not None:
        for name in MONITOR_PLAN_FILES:
            if not (path / name).is_file():
                raise DataError(
                    f"{path} is not a whole monitor folder: its summary.json has a plan "
                    f"check but {name} is missing. {hint}"
                )
        lanes, facilities = (_monitor_table(path, name, hint) for name in MONITOR_PLAN_FILES)
        names = (*MONITOR_FILES, *MONITOR_PLAN_FILES)
    data = MonitorInput(scores, alerts, summary, lanes, facilities, manifest)
    return Loaded("monitor", path, data, _sources(path, "monitor", names, manifest))


def _table(folder: Path, name: str, what: str, hint: str) -> pl.DataFrame:
    table = read_parquet(folder / name, what=what)
    missing = [c for c in FOLDER_COLUMNS[name] if c not in table.columns]
    if missing:
        raise DataError(
            f"{folder / name}: column {', '.join(missing)} is missing; it is not what "
            f"`mmplan {WRITERS[what]}` writes. {hint}"
        )
    # An all-null column (a figure no scenario has) is Null-typed, not a wrong type.
    numbers = [c for c in FOLDER_COLUMNS[name] if c not in TEXT_COLUMNS]
    wrong = [c for c in numbers if not (table.schema[c].is_numeric() or table.schema[c] == pl.Null)]
    if wrong:
        types = ", ".join(f"{c} is {table.schema[c]}" for c in wrong)
        raise DataError(f"{folder / name}: {types}, not numbers. {hint}")
    return table


def read_scenarios(path: Path) -> Loaded:
    """The folder `mmplan optimize ... --scenarios FILE.toml` writes: comparison.parquet and
    a folder per scenario (a complete plan, or only summary.json for one that failed)."""
    hint = "Give the folder `mmplan optimize ... --scenarios FILE.toml -o PLANDIR` wrote."
    if path.is_dir() and not scenario_folder(path) and (path / "trucks.parquet").is_file():
        hint = "It is a single plan: give it with --plan. " + hint
    manifest = _folder(path, "scenario", ("comparison.parquet",), hint)
    comparison = _table(path, "comparison.parquet", "scenario", hint)
    if comparison.is_empty():  # optimize always writes the base row first
        raise DataError(f"{path / 'comparison.parquet'} has no rows, not even the base. {hint}")
    names = comparison.get_column("scenario").to_list()
    if missing := [n for n in names if not (path / str(n) / "summary.json").is_file()]:
        raise DataError(
            f"{path} is not a whole scenario folder: comparison.parquet names scenario "
            f"{', '.join(map(str, missing[:5]))} but its folder has no summary.json. {hint}"
        )
    data = ScenariosInput(comparison, manifest)
    names_read = ("comparison.parquet",)
    return Loaded("scenarios", path, data, _sources(path, "scenarios", names_read, manifest))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_simulation(path: Path) -> Loaded:
    """The folder `mmplan simulate` writes: samples, pairs, facilities and summary.json."""
    hint = "Give the folder `mmplan simulate PLANDIR --demand FORECAST -o OUT` wrote."
    manifest = _folder(path, "simulation", (*SIMULATION_FILES, "summary.json"), hint)
    summary = _summary_json(path / "summary.json", "simulation")
    plans = summary.get("plans")
    where = path / "summary.json"
    if not isinstance(plans, dict) or not plans:
        raise DataError(f"{where} is not a simulation summary: it has no plans. {hint}")
    for name, entry in plans.items():
        lacks = [k for k in SIMULATION_KEYS if not isinstance(entry, dict) or k not in entry]
        if lacks:
            raise DataError(f"{where}: plan {name} has no {', '.join(lacks)}. {hint}")
        if wrong := [k for k in SIMULATION_KEYS if not _is_number(entry[k])]:
            raise DataError(f"{where}: plan {name}'s {', '.join(wrong)} is not a number. {hint}")
    samples, pairs, facilities = (_table(path, n, "simulation", hint) for n in SIMULATION_FILES)
    for name, table in zip(SIMULATION_FILES, (samples, pairs, facilities), strict=True):
        if strange := sorted(set(table.get_column("plan").to_list()) - set(plans)):
            raise DataError(
                f"{path / name}: plan {', '.join(map(str, strange[:5]))} is not in "
                f"summary.json ({', '.join(plans)}): the files are of different runs. {hint}"
            )
    data = SimulationInput(samples, pairs, facilities, summary, manifest)
    sources = _sources(path, "simulation", SIMULATION_FILES, manifest)
    return Loaded("simulation", path, data, sources)


def read_promise(path: Path) -> Loaded:
    """The table `mmplan promise PLANDIR --lanes LANES -o PROMISE.parquet` writes."""
    table = read_parquet(path, what="promise")
    if missing := [c for c in PROMISE_COLUMNS if c not in table.columns]:
        raise DataError(
            f"{path}: column {', '.join(missing)} is missing; it is not what `mmplan promise` "
            "writes. Give the file `mmplan promise PLANDIR --lanes LANES -o PROMISE.parquet` "
            "wrote."
        )
    numeric = ("path_days", "volume", "promised_days")
    if wrong := [c for c in numeric if not table.schema[c].is_numeric()]:
        raise DataError(
            f"{path}: column {', '.join(wrong)} is not numeric "
            f"({', '.join(str(table.schema[c]) for c in wrong)}); `mmplan promise` writes numbers."
        )
    return Loaded("promise", path, PromiseInput(table), [Source("promise", path, _record(path))])
