"""The `mmplan` command line: a thin Typer layer over the library functions.

Each command parses its arguments, loads the config, reads its inputs, calls one
library function, writes its outputs atomically and prints a short summary to stderr.
`mmplan.cli.app` holds what the commands share; each command lives in a module of its
name. Heavy libraries are imported inside the commands so that `mmplan --help` is instant.
"""

from __future__ import annotations

from importlib import import_module

from mmplan.cli.app import app

__all__ = ["app", "main"]

# Importing a command's module registers it on `app`; `mmplan --help` lists the commands
# in this order, the order a planner runs them in.
COMMANDS = ("sample", "validate", "forecast", "backtest", "optimize")
for _name in COMMANDS:
    import_module(f"mmplan.cli.{_name}")


def main() -> None:
    """Entry point for the `mmplan` script and `python -m mmplan`."""
    app(prog_name="mmplan")
