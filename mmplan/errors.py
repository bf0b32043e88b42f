"""Errors that mmplan reports to its users, each carrying the exit code from DESIGN.md.

Library functions raise these; the CLI turns them into one paragraph on stderr and the
exit code, never a traceback. Anything else that escapes is a bug (exit 70).
"""

from __future__ import annotations

__all__ = [
    "EXIT_OK",
    "EXIT_CHECK_FAILED",
    "EXIT_USAGE",
    "EXIT_DATA",
    "EXIT_NO_INPUT",
    "EXIT_INFEASIBLE",
    "EXIT_INTERNAL",
    "EXIT_CANT_CREATE",
    "EXIT_LOCKED",
    "EXIT_CONFIG",
    "MmplanError",
    "UsageError",
    "DataError",
    "InputFileError",
    "InfeasibleError",
    "OutputError",
    "LockedError",
    "EngineUnavailableError",
    "ConfigError",
]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # the run worked and a check (gate, threshold) failed
EXIT_USAGE = 2
EXIT_DATA = 65  # EX_DATAERR
EXIT_NO_INPUT = 66  # EX_NOINPUT
EXIT_INFEASIBLE = 69  # EX_UNAVAILABLE: no feasible plan / solver gave no solution
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug
EXIT_CANT_CREATE = 73  # EX_CANTCREAT
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock, or the Dask cluster is unreachable
EXIT_CONFIG = 78  # EX_CONFIG


class MmplanError(Exception):
    """A problem the user can fix. The message is shown as is; `exit_code` is returned."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MmplanError):
    """The command line is wrong (a flag value out of range, conflicting options)."""

    exit_code = EXIT_USAGE


class DataError(MmplanError):
    """An input table breaks its contract: schema, types or values."""

    exit_code = EXIT_DATA


class InputFileError(MmplanError):
    """An input file is missing or unreadable (not Parquet, truncated, a folder)."""

    exit_code = EXIT_NO_INPUT


class InfeasibleError(MmplanError):
    """No feasible plan exists, or the solver stopped without finding one."""

    exit_code = EXIT_INFEASIBLE


class OutputError(MmplanError):
    """An output cannot be written (missing or read-only folder, disk full)."""

    exit_code = EXIT_CANT_CREATE


class LockedError(MmplanError):
    """Another run holds the lock on this output."""

    exit_code = EXIT_LOCKED


class EngineUnavailableError(MmplanError):
    """The Dask scheduler cannot be reached, has no workers, or lost them mid-run.

    A temporary failure like a held lock (EX_TEMPFAIL): the same run can succeed later.
    """

    exit_code = EXIT_LOCKED


class ConfigError(MmplanError):
    """The configuration file is wrong: unknown key, wrong type, value out of range."""

    exit_code = EXIT_CONFIG
