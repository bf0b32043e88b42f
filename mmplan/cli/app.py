"""The Typer app and what every command shares: option types, engine flags, the
console and progress bar, and `handled`, which turns errors into exit codes.

Errors the user can fix become one paragraph and the exit code from DESIGN.md; anything
else is a bug (exit 70) whose traceback goes to a file. Nothing heavy is imported here,
so that `mmplan --help` is instant.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar

import typer

from mmplan import __version__
from mmplan.errors import EXIT_INTERNAL, MmplanError, UsageError
from mmplan.logs import emit, forget_outputs, json_logs, outputs_in_place, set_format

if TYPE_CHECKING:
    from rich.console import Console

    from mmplan.config import EngineConfig
    from mmplan.engine import Engine

T = TypeVar("T")

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


def stderr_console(quiet: bool = False) -> Console:
    """The stderr console for summaries and errors (silent with --quiet or JSON logs)."""
    from rich.console import Console

    # With --log-format json, stderr carries only JSON events.
    return Console(stderr=True, quiet=quiet or json_logs(), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(console: Console, label: str) -> Iterator[Callable[[int, int, str], None]]:
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


def _exit_now_if_solves_run(code: int) -> None:
    """Exit at once, without finalizing the interpreter, while an interrupted run's solver
    (SCIP, which cannot be interrupted) still runs on a thread: finalizing under it aborts
    the process (SIGABRT, exit 134). The output lock was released on the way here."""
    threads = sys.modules.get("mmplan.plan.threads")  # imported only if a run solved
    if threads is None or not threads.abandoned():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _stopped_message(what: str) -> str:
    """What a Ctrl-C or SIGTERM left: nothing, or (arriving after an output's rename) the
    outputs that were written completely before it."""
    done = outputs_in_place()
    if not done:
        return f"{what}; no output was written."
    return f"{what} after {', '.join(done)} was written completely; no other output was written."


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C is, so that the same cleanup runs (the
    temporary output and the lock files are removed) and the run ends with exit 143."""


EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a SIGTERM'd process


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While a command runs, SIGTERM raises Terminated in the main thread; the previous
    handler is put back afterwards (a test runner calls many commands in one process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def handled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn MmplanError into its exit code and unexpected exceptions into exit 70."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        started = time.perf_counter()
        forget_outputs()
        emit("start", command=func.__name__, argv=sys.argv[1:])
        try:
            with sigterm_raises():
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
            stderr_console().print(f"[bold red]error:[/] {escape(exc.message)}")
            raise typer.Exit(exc.exit_code) from None
        except Terminated:
            message = _stopped_message("terminated (SIGTERM)")
            emit("error", command=func.__name__, exit_code=EXIT_TERMINATED, message=message)
            stderr_console().print(message, markup=False)
            _exit_now_if_solves_run(EXIT_TERMINATED)
            raise typer.Exit(EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            message = _stopped_message("interrupted")
            stderr_console().print(message, markup=False)
            emit("interrupted", command=func.__name__, exit_code=130, message=message)
            _exit_now_if_solves_run(130)
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
            stderr_console().print(message, markup=False)
            raise typer.Exit(EXIT_INTERNAL) from None
        emit(
            "done",
            command=func.__name__,
            exit_code=0,
            seconds=round(time.perf_counter() - started, 3),
        )

    return wrapper


@contextlib.contextmanager
def about_file(
    path: Path, config: Path | None = None, others: tuple[Path, ...] = ()
) -> Iterator[None]:
    """Name the input file in data errors, and the config file in configuration errors,
    raised by a library function that never saw either; an error already naming `path`
    or one of the `others` (a scenario file) is left as it is."""
    from mmplan.errors import ConfigError, DataError

    try:
        yield
    except DataError as exc:
        if any(str(p) in exc.message for p in (path, *others)):
            raise
        raise DataError(f"{path}: {exc.message}") from None
    except ConfigError as exc:
        source = str(config) if config is not None else "the defaults and flags (no --config)"
        if source in exc.message:
            raise
        raise ConfigError(f"{source}: {exc.message}") from None


class EngineRun(NamedTuple):
    """What a stage function needs to run: the engine and a progress callback."""

    engine: Engine
    progress: Callable[[int, int, str], None]

    def call(self, stage: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`stage(*args, **kwargs)` on this engine, reporting to this progress bar."""
        return stage(*args, progress=self.progress, engine=self.engine, **kwargs)


@contextlib.contextmanager
def engine_run(
    engine: EngineConfig,
    console: Console,
    label: str,
    source: Path,
    config: Path | None,
    others: tuple[Path, ...] = (),
) -> Iterator[EngineRun]:
    """Open the engine, show a progress bar, and name `source` and `config` in the errors
    of the stage function run inside (see `about_file`)."""
    from mmplan.engine import open_engine

    with (
        open_engine(engine) as runner,
        progress_bar(console, label) as tick,
        about_file(source, config, others),
    ):
        yield EngineRun(runner, tick)


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


def summarize(command: str, summary: dict[str, Any], json_out: bool, **extra: Any) -> None:
    """Log a run's summary as an event and, with --json, print it on stdout."""
    emit("summary", command=command, **summary, **extra)
    if json_out:
        print(json.dumps(summary, default=str))
