"""Writing a command's outputs: each folder is built aside and swapped in whole
(`mmplan.io.output_folder`), so a killed run leaves the old output or the new one.

The layout of each output folder is decided here: a sample's three tables, a backtest's
points, metrics and calibration, and a plan folder per scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmplan.io import (
    check_output_file,
    check_output_folder,
    output_folder,
    output_lock,
    provenance,
    write_json,
    write_parquet,
    write_text,
)

if TYPE_CHECKING:
    import polars as pl

    from mmplan.config import Config
    from mmplan.evaluate import BacktestResult
    from mmplan.evaluate.monitor import MonitorResult
    from mmplan.plan import Plan, ScenarioResult
    from mmplan.plan.simulation import SimulationResult

__all__ = [
    "check_output_folder",
    "run_record",
    "write_sample",
    "check_backtest_outputs",
    "write_backtest",
    "write_gate_reports",
    "check_monitor_outputs",
    "write_monitor",
    "append_store",
    "plan_folder",
    "write_plans",
    "write_scenarios",
    "write_simulation",
    "write_table",
]

PLAN_TABLES = ("trucks", "flows", "nodes", "unserved")


def run_record(command: str, cfg: Config, seconds: float, **inputs: Path | None) -> dict[str, Any]:
    """The provenance of a run that took `seconds` and read `inputs` (the omitted ones
    left out)."""
    given: dict[str, str | Path] = {k: path for k, path in inputs.items() if path is not None}
    return provenance(command, cfg.as_record(), given, {"total": seconds})


def write_sample(
    outdir: Path, tables: Mapping[str, pl.DataFrame], record: dict[str, Any], wait: float
) -> None:
    """Write each sample table as OUTDIR/<name>.parquet, under the folder's lock."""
    with output_lock(outdir, wait), output_folder(outdir, record) as tmp:
        for name, df in tables.items():
            write_parquet(df, tmp / f"{name}.parquet", record)


def check_backtest_outputs(
    outdir: Path,
    junit: Path | None,
    summary_md: Path | None,
    inputs: tuple[Path | None, ...],
    command: str = "backtest",
) -> None:
    """Refuse an output folder and --junit/--summary files that cannot be written (or
    would be deleted: inside OUTDIR), before minutes of fitting rather than after."""
    from mmplan.errors import OutputError

    check_output_folder(outdir, inputs)
    for flag, extra in (("--junit", junit), ("--summary", summary_md)):
        if extra is None:
            continue
        # The next backtest into OUTDIR replaces the folder whole, and the file with it.
        if extra.resolve().is_relative_to(outdir.resolve()):
            raise OutputError(
                f"cannot write {flag} {extra}: it is inside the output folder {outdir}, "
                f"which the next {command} replaces whole (deleting the file). Write it "
                f"beside the folder, e.g. {flag} {outdir.parent / extra.name}."
            )
        check_output_file(extra, inputs)


def write_backtest(outdir: Path, result: BacktestResult, record: dict[str, Any]) -> None:
    """OUTDIR/points, metrics, calibration (and champions) .parquet and metrics.json."""
    with output_folder(outdir, record) as tmp:
        write_parquet(result.points, tmp / "points.parquet", record)
        write_parquet(result.metrics, tmp / "metrics.parquet", record)
        # `backtest` always measures calibration; the field is optional only for results
        # built by hand, and writing None fails as it did before this helper existed.
        write_parquet(result.calibration, tmp / "calibration.parquet", record)
        if result.champions is not None:
            write_parquet(result.champions, tmp / "champions.parquet", record)
        if result.markets is not None:
            write_parquet(result.markets, tmp / "markets.parquet", record)
        write_json(result.metrics_json | {"provenance": record}, tmp / "metrics.json")


def write_gate_reports(
    result: BacktestResult | MonitorResult,
    summary: dict[str, Any],
    seconds: float,
    junit: Path | None,
    summary_md: Path | None,
    command: str = "backtest",
) -> None:
    """The gate verdict (a backtest's or a monitoring run's) as JUnit XML and as a
    markdown summary, for those asked for."""
    from mmplan.cli.render import gate_junit, gate_markdown, monitor_markdown

    if junit is not None:
        write_text(gate_junit(result.gates, seconds, command), junit)
    if summary_md is not None:
        markdown = monitor_markdown if command == "monitor" else gate_markdown
        write_text(markdown(summary, result.gates, result.passed), summary_md)


def plan_folder(root: Path, column: str, scenarios: bool) -> Path:
    """Where a plan goes: one plan is the output folder itself; with --scenarios, each
    planned column gets a plan folder of its name inside it."""
    return root / column if scenarios else root


def write_plans(
    outdir: Path, plans: Mapping[str, Plan], record: dict[str, Any], *, scenarios: bool
) -> dict[str, Path]:
    """Each plan's tables and summary.json, in its `plan_folder`; returns those folders."""
    with output_folder(outdir, record) as tmp:
        for col, plan in plans.items():
            folder = plan_folder(tmp, col, scenarios)
            folder.mkdir(exist_ok=True)
            for name in PLAN_TABLES:
                write_parquet(getattr(plan, name), folder / f"{name}.parquet", record)
            for name, table in plan.extra.items():  # a week or month plan's fleet, capacity
                write_parquet(table, folder / f"{name}.parquet", record)
            write_json(plan.summary, folder / "summary.json")
    return {col: plan_folder(outdir, col, scenarios) for col in plans}


def check_monitor_outputs(
    outdir: Path,
    junit: Path | None,
    summary_md: Path | None,
    store: Path | None,
    inputs: tuple[Path | None, ...],
) -> None:
    """As `check_backtest_outputs`, plus a --append store outside OUTDIR whose folder exists."""
    from mmplan.errors import OutputError

    check_backtest_outputs(outdir, junit, summary_md, inputs, "monitor")
    if store is None:
        return
    if store.resolve().is_relative_to(outdir.resolve()):
        raise OutputError(
            f"cannot append to {store}: it is inside the output folder {outdir}, which the "
            "next monitor run replaces whole. Keep the store beside it."
        )
    if store.exists() and not store.is_dir():
        raise OutputError(f"cannot append to {store}: it is a file; the store is a folder.")
    if not store.resolve().parent.is_dir():
        raise OutputError(
            f"cannot append to {store}: folder {store.resolve().parent} does not exist."
        )


def write_monitor(outdir: Path, result: MonitorResult, record: dict[str, Any]) -> None:
    """OUTDIR/scores, alerts (and with a plan plan_lanes, plan_facilities) .parquet and
    summary.json, swapped in whole."""
    with output_folder(outdir, record) as tmp:
        write_parquet(result.scores, tmp / "scores.parquet", record)
        write_parquet(result.alerts, tmp / "alerts.parquet", record)
        if result.plan is not None:
            write_parquet(result.plan.lanes, tmp / "plan_lanes.parquet", record)
            write_parquet(result.plan.facilities, tmp / "plan_facilities.parquet", record)
        write_json(result.summary | {"provenance": record}, tmp / "summary.json")


def append_store(store: Path, result: MonitorResult, record: dict[str, Any], wait: float) -> Path:
    """Add this run's scores to the monitoring store: one Parquet file per forecast,
    STORE/forecast_date=<origin>/<forecast SHA-256>.parquet (a Hive-partitioned dataset),
    written atomically; a re-run of the same forecast replaces its file."""
    from mmplan.errors import OutputError

    sha, date = result.summary["forecast_sha256"], result.summary["forecast_date"]
    with output_lock(store, wait):
        # A run killed mid-write leaves a hidden temporary file; we hold the lock, so it is
        # stale (and it would trip a reader that lists the folder without a glob).
        for stale in store.glob("forecast_date=*/.*.tmp"):
            stale.unlink(missing_ok=True)
        part = store / f"forecast_date={date}"
        try:
            part.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot append to {store}: {exc.strerror}.") from None
        # The partition's value lives in the path; the file keeps the other columns.
        return write_parquet(result.scores.drop("forecast_date"), part / f"{sha}.parquet", record)


def write_scenarios(
    outdir: Path, result: ScenarioResult, record: dict[str, Any]
) -> dict[str, Path]:
    """PLANDIR/<scenario>/ (a complete plan folder; closed.parquet with a facility down;
    only summary.json for a scenario that could not be planned) and comparison.parquet."""
    with output_folder(outdir, record) as tmp:
        for name, sp in result.plans.items():
            folder = tmp / name
            folder.mkdir()
            if sp.plan is None:
                write_json({"status": sp.status, "message": sp.message}, folder / "summary.json")
                continue
            for table in PLAN_TABLES:
                write_parquet(getattr(sp.plan, table), folder / f"{table}.parquet", record)
            if sp.closed.height:
                write_parquet(sp.closed, folder / "closed.parquet", record)
            write_json(sp.plan.summary, folder / "summary.json")
        write_parquet(result.comparison, tmp / "comparison.parquet", record)
    return {name: outdir / name for name in result.plans}


def write_simulation(outdir: Path, result: SimulationResult, record: dict[str, Any]) -> None:
    """OUT/samples.parquet, pairs.parquet, facilities.parquet and summary.json."""
    with output_folder(outdir, record) as tmp:
        for name in ("samples", "pairs", "facilities"):
            write_parquet(getattr(result, name), tmp / f"{name}.parquet", record)
        write_json(result.summary, tmp / "summary.json")


def write_table(df: pl.DataFrame, path: Path, record: dict[str, Any]) -> None:
    """One Parquet file, written atomically with its provenance."""
    write_parquet(df, path, record)
