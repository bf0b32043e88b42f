"""The `mmplan` command line: a thin Typer layer over the library functions.

Each command parses its arguments, loads the config, reads its inputs, calls one
library function, writes its outputs atomically and prints a short summary to stderr.
Errors the user can fix become one paragraph and the exit code from DESIGN.md; anything
else is a bug (exit 70) whose traceback goes to a file. Heavy libraries are imported
inside the commands so that `mmplan --help` is instant.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mmplan import __version__
from mmplan.errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, MmplanError, UsageError
from mmplan.logs import emit, json_logs, set_format

app = typer.Typer(
    name="mmplan",
    help="Middle-mile planning: sample networks, validate tables, forecast lane volume, "
    "backtest forecasts and optimize truck plans. Every stage reads and writes Parquet.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (see configs/default.toml).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]
WaitOpt = Annotated[
    float,
    typer.Option("--wait", min=0, help="Seconds to wait for another run's lock on the output."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")]


class EngineKind(StrEnum):
    local = "local"
    dask = "dask"


EngineOpt = Annotated[
    EngineKind | None,
    typer.Option(
        "--engine", help="Where to fit models and solve dates: local or dask ([engine].kind)."
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 ([engine].scheduler); "
        "implies --engine dask."
    ),
]


def engine_flags(engine: EngineKind | None, scheduler: str | None) -> dict[str, Any]:
    """[engine] overrides from --engine and --scheduler (an address alone means Dask)."""
    if engine == EngineKind.local and scheduler is not None:
        raise UsageError(f"--scheduler {scheduler} needs --engine dask, not --engine local.")
    kind = engine.value if engine is not None else ("dask" if scheduler is not None else None)
    return {"kind": kind, "scheduler": scheduler}


def _console(quiet: bool = False):
    from rich.console import Console

    # With --log-format json, stderr carries only JSON events.
    return Console(stderr=True, quiet=quiet or json_logs(), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(console: Any, label: str) -> Iterator[Callable[[int, int, str], None]]:
    """A transient Rich progress bar on a terminal; elsewhere a callback that does nothing."""
    if not console.is_terminal or console.quiet:
        yield lambda done, total, text: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total, text: bar.update(
            task, completed=done, total=total, description=text
        )


def escape(text: str) -> str:
    """User text (paths, ids, config keys like [forecast]) must not be read as Rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def handled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn MmplanError into its exit code and unexpected exceptions into exit 70."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        started = time.perf_counter()
        emit("start", command=func.__name__, argv=sys.argv[1:])
        try:
            func(*args, **kwargs)
        except typer.Exit as exc:
            emit(
                "done",
                command=func.__name__,
                exit_code=exc.exit_code,
                seconds=round(time.perf_counter() - started, 3),
            )
            raise
        except typer.Abort:
            raise
        except MmplanError as exc:
            emit("error", command=func.__name__, exit_code=exc.exit_code, message=exc.message)
            _console().print(f"[bold red]error:[/] {escape(exc.message)}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _console().print("interrupted; no output was written.")
            raise typer.Exit(130) from None
        except Exception:
            text = traceback.format_exc()
            if debug:
                sys.stderr.write(text)
                where = "above"
            else:
                fd, name = tempfile.mkstemp(prefix="mmplan-crash-", suffix=".txt")
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
                where = f"in {name}"
            message = (
                f"internal error: this is a bug in mmplan {__version__}, not in your data. "
                f"The traceback is {where}; please report it with the command you ran."
            )
            emit("error", command=func.__name__, exit_code=EXIT_INTERNAL, message=message)
            _console().print(message, markup=False)
            raise typer.Exit(EXIT_INTERNAL) from None
        emit(
            "done",
            command=func.__name__,
            exit_code=0,
            seconds=round(time.perf_counter() - started, 3),
        )

    return wrapper


@contextlib.contextmanager
def about_file(path: Path, config: Path | None = None) -> Iterator[None]:
    """Name the input file in data errors, and the config file in configuration errors,
    raised by a library function that never saw either."""
    from mmplan.errors import ConfigError, DataError

    try:
        yield
    except DataError as exc:
        if str(path) in exc.message:
            raise
        raise DataError(f"{path}: {exc.message}") from None
    except ConfigError as exc:
        source = str(config) if config is not None else "the defaults and flags (no --config)"
        if source in exc.message:
            raise
        raise ConfigError(f"{source}: {exc.message}") from None


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        print(f"mmplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="json: one JSON event per line on stderr (for log shippers), no Rich output.",
        ),
    ] = LogFormat.text,
) -> None:
    """Middle-mile planning toolkit."""
    set_format(log_format.value)


@app.command()
@handled
def sample(
    outdir: Annotated[Path, typer.Argument(help="Folder to write history, nodes and lanes to.")],
    seed: Annotated[int | None, typer.Option(help="Random seed; same seed, same files.")] = None,
    regions: Annotated[int | None, typer.Option(min=1, help="Number of regions.")] = None,
    fcs: Annotated[int | None, typer.Option(min=1, help="Fulfillment centers.")] = None,
    scs: Annotated[int | None, typer.Option(min=1, help="Sort centers.")] = None,
    dss: Annotated[int | None, typer.Option(min=1, help="Delivery stations.")] = None,
    days: Annotated[int | None, typer.Option(min=28, help="Days of history.")] = None,
    start: Annotated[str | None, typer.Option(help="First history date, YYYY-MM-DD.")] = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a synthetic middle-mile network: history.parquet, nodes.parquet, lanes.parquet.

    Example: mmplan sample data/sample --seed 7 --fcs 2 --scs 6 --dss 40 --days 730
    """
    from mmplan.config import load_config
    from mmplan.io import output_folder, output_lock, provenance, write_parquet
    from mmplan.synthetic import sample as make_sample

    try:  # the config is read strictly, so the flag's text becomes a date here
        first = dt.date.fromisoformat(start) if start is not None else None
    except ValueError:
        raise UsageError(f"--start {start!r} is not a date; give it as YYYY-MM-DD.") from None
    flags = dict(seed=seed, regions=regions, fcs=fcs, scs=scs, dss=dss, days=days, start=first)
    cfg = load_config(config, sample=flags)
    tables = make_sample(cfg.sample)
    # No timings in this record: the same seed must give byte-identical files.
    record = provenance("sample", cfg.as_record()["sample"])
    with output_lock(outdir, wait), output_folder(outdir, record) as tmp:
        for name, df in tables.items():
            write_parquet(df, tmp / f"{name}.parquet", record)
    h = tables["history"]
    summary = {
        "output": str(outdir),
        "facilities": tables["nodes"].height,
        "lanes": tables["lanes"].height,
        "history_rows": h.height,
        "first_date": str(h["date"].min()),
        "last_date": str(h["date"].max()),
    }
    emit("summary", command="sample", **summary)
    if json_out:
        print(json.dumps(summary))
    _console(quiet).print(
        f"wrote {outdir}: {summary['facilities']} facilities, {summary['lanes']} lanes, "
        f"{h.height:,} history rows from {summary['first_date']} to {summary['last_date']}"
    )


@app.command()
@handled
def validate(
    file: Annotated[Path, typer.Argument(help="Any mmplan table (Parquet).")],
    kind: Annotated[
        str | None,
        typer.Option(
            help="history, forecast, nodes, lanes, demand, champions, calibration, or an "
            "output: trucks, flows, plan_nodes, unserved, metrics, points; guessed when omitted."
        ),
    ] = None,
    nodes: Annotated[
        Path | None, typer.Option(help="Nodes table, to check that lanes name known facilities.")
    ] = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check a table against its contract and report every problem found (exit 65 if any).

    With --config (itself checked: a broken one is exit 78), a demand table is checked for
    the column [optimize].column names.

    Example: mmplan validate data/sample/lanes.parquet --nodes data/sample/nodes.parquet
    """
    from mmplan.config import load_config
    from mmplan.errors import DataError
    from mmplan.io import read_parquet, read_provenance
    from mmplan.tables import KINDS, detect_kind
    from mmplan.tables import validate as validate_table

    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind {kind!r} is not a table kind; use one of {', '.join(KINDS)}.")
    cfg = load_config(config)
    df = read_parquet(file)
    record = read_provenance(file)
    kind = kind or detect_kind(df, (record or {}).get("command"))
    if kind is None:
        raise DataError(
            f"{file}: cannot tell which mmplan table this is from its columns "
            f"({', '.join(df.columns)}); pass --kind with one of {', '.join(KINDS)}."
        )
    node_table = read_parquet(nodes, what="nodes") if nodes is not None else None
    if kind == "demand":
        from mmplan.tables import validate_demand

        column = cfg.optimize.column if config is not None else "volume"
        problems = validate_demand(df, column)
    else:
        problems = validate_table(df, kind, node_table)
    console = _console(quiet)
    emit(
        "summary",
        command="validate",
        file=str(file),
        kind=kind,
        rows=df.height,
        problems=[p.describe() for p in problems],
    )
    if json_out:
        print(
            json.dumps(
                {
                    "file": str(file),
                    "kind": kind,
                    "rows": df.height,
                    "problems": [p.describe() for p in problems],
                    "provenance": record,
                },
                default=str,
            )
        )
    if record:
        made = record.get("command", "?")
        inputs = ", ".join(
            f"{k}={v['path']} (sha256 {v['sha256'][:12]})"
            for k, v in record.get("inputs", {}).items()
        )
        console.print(
            f"made by mmplan {record.get('versions', {}).get('mmplan', '?')} "
            f"`{made}`" + (f" from {inputs}" if inputs else ""),
            markup=False,
        )
    if problems:
        console.print(f"{file}: {len(problems)} problems as a {kind} table:", markup=False)
        for p in problems:
            console.print(f"  - {p.describe()}", markup=False)
        raise typer.Exit(65)
    console.print(f"{file}: valid {kind} table, {df.height:,} rows.", markup=False)


@app.command()
@handled
def forecast(
    history: Annotated[Path, typer.Argument(help="History table (Parquet).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Forecast Parquet to write.")],
    horizon: Annotated[int | None, typer.Option(help="Days ahead to forecast.")] = None,
    champions: Annotated[
        Path | None,
        typer.Option(help="champions.parquet from `mmplan backtest` with select = true."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="calibration.parquet from `mmplan backtest`: scale each level's intervals "
            "by the factors the backtest measured."
        ),
    ] = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Forecast every lane and every level of the hierarchy, reconciled, with intervals.

    Example: mmplan forecast data/sample/history.parquet -o out/forecast.parquet --horizon 28
    """
    from mmplan.config import load_config
    from mmplan.engine import open_engine
    from mmplan.forecasting import check_calibration, hierarchy_levels
    from mmplan.forecasting import forecast as run_forecast
    from mmplan.io import check_output_file, output_lock, provenance, write_parquet
    from mmplan.report import forecast_summary, print_forecast
    from mmplan.tables import load

    cfg = load_config(config, forecast={"horizon": horizon}, engine=engine_flags(engine, scheduler))
    check_output_file(output, (history, champions, calibration, config))
    with output_lock(output, wait):
        started = time.perf_counter()
        # Inputs first: a missing file is exit 66 without waiting for a cluster.
        hist = load(history, "history")
        chosen = load(champions, "champions") if champions is not None else None
        factors = None
        if calibration is not None:
            factors = load(calibration, "calibration")
            levels = [name for name, _ in hierarchy_levels(cfg.forecast, hist.columns)]
            check_calibration(factors, levels, cfg.forecast, str(calibration))
        with open_engine(cfg.engine) as runner:
            with progress_bar(_console(quiet), "forecast") as tick, about_file(history, config):
                result = run_forecast(
                    hist, cfg, champions=chosen, calibration=factors, progress=tick, engine=runner
                )
            inputs = (
                {"history": history}
                | ({"champions": champions} if champions else {})
                | ({"calibration": calibration} if calibration else {})
            )
            record = provenance(
                "forecast", cfg.as_record(), inputs, {"total": time.perf_counter() - started}
            )
        write_parquet(result, output, record)
    summary = forecast_summary(result, output, factors)
    emit("summary", command="forecast", **summary)
    if json_out:
        print(json.dumps(summary, default=str))
    print_forecast(_console(quiet), summary)


@app.command()
@handled
def backtest(
    history: Annotated[Path, typer.Argument(help="History table (Parquet).")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for points and metrics.")],
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when a [gate] rule fails.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Write gate rules as JUnit XML.")] = None,
    summary_md: Annotated[
        Path | None, typer.Option("--summary", help="Write a markdown summary for CI.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="metrics.json of an earlier run, for max_regression.")
    ] = None,
    windows: Annotated[
        int | None, typer.Option(min=1, help="Rolling-origin cutoffs ([backtest].windows).")
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(min=1, help="Days scored after each cutoff.")
    ] = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Rolling-origin backtest of the forecast pipeline, scored by pooled WAPE; CI gates.

    Writes OUTDIR/points.parquet, metrics.parquet, metrics.json, calibration.parquet (interval
    factors for `mmplan forecast --calibration`) and, with [backtest] select = true,
    champions.parquet.

    Example: mmplan backtest data/sample/history.parquet -o out/backtest --gate --junit gate.xml
    """
    from mmplan.evaluate import backtest as run_backtest
    from mmplan.evaluate import check_baseline, check_gate
    from mmplan.config import load_config
    from mmplan.engine import open_engine
    from mmplan.errors import InputFileError, OutputError
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
    from mmplan.report import (
        backtest_summary,
        gate_junit,
        gate_markdown,
        print_backtest,
        print_gate,
    )
    from mmplan.tables import load

    cfg = load_config(
        config,
        backtest={"windows": windows, "horizon": horizon},
        engine=engine_flags(engine, scheduler),
    )
    prior = None
    if baseline is not None:
        try:
            prior = json.loads(baseline.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputFileError(
                f"--baseline {baseline} is not a readable metrics.json ({exc}). Pass the "
                "metrics.json that an earlier `mmplan backtest` wrote."
            ) from None
        check_baseline(prior, str(baseline))
    check_output_folder(outdir, (history, baseline, config))
    for extra in (junit, summary_md):  # fail before minutes of fitting, not after
        if extra is not None and not extra.resolve().parent.is_dir():
            raise OutputError(f"cannot write {extra}: folder {extra.parent} does not exist.")
        if extra is not None:
            check_output_file(extra, (history, baseline, config))
    console = _console(quiet)
    with output_lock(outdir, wait):
        started = time.perf_counter()
        hist = load(history, "history")
        # Fail on a gate naming an unknown level before minutes of model fitting.
        check_gate(cfg.gate, cfg.forecast, hist.columns, str(config or "defaults"))
        with (
            open_engine(cfg.engine) as runner,
            progress_bar(console, "backtest") as tick,
            about_file(history, config),
        ):
            result = run_backtest(hist, cfg, baseline=prior, progress=tick, engine=runner)
        seconds = time.perf_counter() - started
        inputs = {"history": history} | ({"baseline": baseline} if baseline else {})
        record = provenance("backtest", cfg.as_record(), inputs, {"total": seconds})
        with output_folder(outdir, record) as tmp:
            write_parquet(result.points, tmp / "points.parquet", record)
            write_parquet(result.metrics, tmp / "metrics.parquet", record)
            write_parquet(result.calibration, tmp / "calibration.parquet", record)
            if result.champions is not None:
                write_parquet(result.champions, tmp / "champions.parquet", record)
            write_json(result.metrics_json | {"provenance": record}, tmp / "metrics.json")
    summary = backtest_summary(result, outdir)
    emit("summary", command="backtest", **summary, gate_passed=result.passed)
    if junit is not None:
        write_text(gate_junit(result.gates, seconds), junit)
    if summary_md is not None:
        write_text(gate_markdown(summary, result.gates, result.passed), summary_md)
    if json_out:
        print(json.dumps(summary, default=str))
    print_backtest(console, summary)
    print_gate(console, result.gates, result.passed)
    if gate and not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
@handled
def optimize(
    demand: Annotated[
        Path, typer.Argument(help="Forecast table, or origin/destination/date/volume.")
    ],
    nodes: Annotated[Path, typer.Option(help="Nodes table (Parquet).")],
    lanes: Annotated[Path, typer.Option(help="Lanes table (Parquet).")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Plan folder to write.")],
    column: Annotated[
        str | None, typer.Option(help="Demand column to plan for, e.g. forecast or hi_80.")
    ] = None,
    quantile: Annotated[
        str | None, typer.Option(help="Interval bound to plan for: hi_80 (same as --column).")
    ] = None,
    scenarios: Annotated[
        str | None,
        typer.Option(
            help="Plan several demand columns at once, e.g. forecast,hi_80,hi_95: one plan "
            "folder per column inside the output folder, solved together."
        ),
    ] = None,
    relax: Annotated[bool, typer.Option("--relax", help="Solve the LP relaxation only.")] = False,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    config: ConfigOpt = None,
    wait: WaitOpt = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Turn demand into a truck plan: trucks per lane per day, routes, binding capacity.

    Example: mmplan optimize out/forecast.parquet --nodes data/sample/nodes.parquet
    --lanes data/sample/lanes.parquet -o out/plan --column hi_80
    """
    if column is not None and quantile is not None and column != quantile:
        raise UsageError(f"--column {column} and --quantile {quantile} disagree; give one.")
    columns = [c.strip() for c in (scenarios or "").split(",") if c.strip()]
    if scenarios is not None and (not columns or len(set(columns)) != len(columns)):
        raise UsageError(f"--scenarios {scenarios!r}: name distinct columns, e.g. forecast,hi_80.")
    if columns and (column or quantile):
        raise UsageError("--scenarios names the columns to plan; drop --column/--quantile.")
    from mmplan.config import load_config
    from mmplan.engine import open_engine
    from mmplan.io import (
        check_output_folder,
        output_folder,
        output_lock,
        provenance,
        read_parquet,
        write_json,
        write_parquet,
    )
    from mmplan.optimizer import demand_columns, optimize_scenarios
    from mmplan.report import plan_summary, print_plan
    from mmplan.tables import load

    cfg = load_config(
        config,
        optimize={"relax": True if relax else None, "column": column or quantile},
        engine=engine_flags(engine, scheduler),
    )
    check_output_folder(outdir, (demand, nodes, lanes, config))
    with output_lock(outdir, wait):  # held while solving, so a second run fails fast
        started = time.perf_counter()
        node_table = load(nodes, "nodes")
        lane_table = load(lanes, "lanes", node_table)
        demand_table = demand_columns(
            read_parquet(demand, what="demand"), columns or [cfg.optimize.column], demand
        )
        planned = demand_table.columns[3:]  # after date, origin, destination
        with (
            open_engine(cfg.engine) as runner,
            progress_bar(_console(quiet), "optimize") as tick,
            about_file(demand, config),
        ):
            plans = optimize_scenarios(
                demand_table,
                node_table,
                lane_table,
                cfg.optimize,
                planned,
                progress=tick,
                engine=runner,
            )
        record = provenance(
            "optimize",
            cfg.as_record(),
            {"demand": demand, "nodes": nodes, "lanes": lanes},
            {"total": time.perf_counter() - started},
        )
        with output_folder(outdir, record) as tmp:
            for col, plan in plans.items():
                # One plan: the folder itself; scenarios: a plan folder per column.
                folder = tmp / col if columns else tmp
                folder.mkdir(exist_ok=True)
                for name in ("trucks", "flows", "nodes", "unserved"):
                    write_parquet(getattr(plan, name), folder / f"{name}.parquet", record)
                write_json(plan.summary, folder / "summary.json")
    summaries = {
        col: plan_summary(plan, outdir / col if columns else outdir) for col, plan in plans.items()
    }
    for summary in summaries.values():
        emit("summary", command="optimize", **summary)
        print_plan(_console(quiet), summary)
    if json_out:
        out = {"scenarios": summaries} if columns else next(iter(summaries.values()))
        print(json.dumps(out, default=str))


def main() -> None:
    """Entry point for the `mmplan` script and `python -m mmplan`."""
    app(prog_name="mmplan")


__all__ = ["app", "main", "EXIT_CHECK_FAILED"]
