"""The `mmplan` command line: a thin Typer layer over the library functions.

Each command parses its arguments, loads the config, reads its inputs, calls one
library function, writes its outputs atomically and prints a short summary to stderr.
`mmplan.cli.app` holds what the commands share; each command lives in a module of its
name. Heavy libraries are imported inside the commands so that `mmplan --help` is instant.
"""

from __future__ import annotations

import sys
from importlib import import_module

from mmplan.cli.app import app
from mmplan.logs import set_format

__all__ = ["app", "main"]

# Importing a command's module registers it on `app`; `mmplan --help` lists the commands
# in this order, the order a planner runs them in.
COMMANDS = (
    "sample",
    "validate",
    "forecast",
    "backtest",
    "optimize",
    "simulate",
    "promise",
    "monitor",
    "report",
)
for _name in COMMANDS:
    import_module(f"mmplan.cli.{_name}")


def main() -> None:
    """Entry point for the `mmplan` script and `python -m mmplan`."""
    # JSON logs from the start: Click reports a mistyped command before any callback runs.
    argv = sys.argv[1:]
    if "--log-format=json" in argv or any(
        a == "--log-format" and b == "json" for a, b in zip(argv, argv[1:], strict=False)
    ):
        set_format("json")
    app(prog_name="mmplan")
