"""Run events for log shippers: with `--log-format json`, one JSON object per line on stderr.

Events: `start` (command, arguments), `summary` (the command's counts and figures),
`done` (seconds) and `error` (exit code, message). In text mode nothing is emitted here
and people read the Rich summary instead.

Test hook: `checkpoint(name)` marks a moment where a kill matters (just before and just after
an output's atomic rename, a stage's progress). When the environment variable
`MMPLAN_STOP_AT` names it, the process stops itself there with SIGSTOP, so a test can wait
for the stop and then kill or interrupt the run at exactly that point, however fast or slow
the machine. `MMPLAN_STOP_AT=name:N` stops at the N-th time the checkpoint is reached;
several comma-separated entries stop at each. The variable is read once, at the first
checkpoint; unset, a checkpoint costs one dictionary lookup. Names in use:
`write_parquet.renaming` / `.renamed`, `write_text.renaming` / `.renamed`,
`output_folder.swapping` / `.old-moved` / `.swapped`, `forecast.fitting`,
`forecast.reconciling`, `optimize.solving` (the main thread, every tenth of a second while a
solve is in flight: reached only by solves that take longer), `optimize.date-started` (a
solving thread, as it begins a date), `optimize.date-solved`.

`output_in_place(path)` records an output this run has renamed into place complete, so that
a Ctrl-C or SIGTERM arriving afterwards is reported as what it is (the output was written)
and not as "no output was written"; `outputs_in_place()` lists those still there.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any, TextIO

__all__ = [
    "set_format",
    "json_logs",
    "emit",
    "checkpoint",
    "JsonLines",
    "output_in_place",
    "outputs_in_place",
    "forget_outputs",
]

# The outputs this run has renamed into place, complete (see output_in_place).
_IN_PLACE: list[str] = []


def output_in_place(path: os.PathLike[str] | str) -> None:
    """Record that output `path` is in place and complete (just after its atomic rename)."""
    _IN_PLACE.append(os.fspath(path))


def outputs_in_place() -> list[str]:
    """The outputs this run put in place that are still there, in the order written. A file
    renamed inside a temporary folder that was dropped or swapped in is gone from its path,
    so only outputs a user sees are listed."""
    return [p for p in dict.fromkeys(_IN_PLACE) if os.path.exists(p)]


def forget_outputs() -> None:
    """Start a run's record afresh (a process may run several commands, as tests do)."""
    _IN_PLACE.clear()


_FORMAT = {"value": "text"}


def set_format(value: str) -> None:
    """Choose text or JSON logs. JSON also makes every other line written to stderr (Click's
    usage text, library output) an event, and warnings `warning` events."""
    _FORMAT["value"] = value
    if value == "json":
        if not isinstance(sys.stderr, JsonLines):
            sys.stderr = JsonLines(sys.stderr)
        if warnings.showwarning is not _warning_event:
            _SHOW_WARNING[0] = warnings.showwarning
            warnings.showwarning = _warning_event
    else:
        if isinstance(sys.stderr, JsonLines):
            sys.stderr.flush_rest()
            sys.stderr = sys.stderr.raw
        if warnings.showwarning is _warning_event:
            warnings.showwarning = _SHOW_WARNING[0]


def json_logs() -> bool:
    return _FORMAT["value"] == "json"


def _write(record: dict[str, Any]) -> None:
    stream = sys.stderr.raw if isinstance(sys.stderr, JsonLines) else sys.stderr
    stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
    stream.flush()


def emit(event: str, **fields: Any) -> None:
    """Write one event line to stderr when JSON logs are on."""
    if not json_logs():
        return
    _write({"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields})


class JsonLines(io.TextIOBase):
    """stderr with JSON logs: each line anything else writes becomes a `stderr` event, so a
    log shipper never meets a line that is not JSON."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw
        self._rest = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._rest = (self._rest + text).split("\n")
        for line in lines:
            self._event(line)
        return len(text)

    def flush_rest(self) -> None:
        rest, self._rest = self._rest, ""
        self._event(rest)

    def _event(self, line: str) -> None:
        line = line.rstrip("\r")
        if line.strip():
            emit("stderr", text=line)

    def isatty(self) -> bool:
        return False


_SHOW_WARNING = [warnings.showwarning]  # what JSON logs replaced, put back for text logs


def _warning_event(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    emit("warning", category=category.__name__, message=str(message), where=f"{filename}:{lineno}")


STOP_AT_VARIABLE = "MMPLAN_STOP_AT"
_STOPS: dict[str, set[int]] | None = None  # checkpoint name -> occurrences to stop at
_SEEN: dict[str, int] = {}
_SEEN_LOCK = threading.Lock()  # checkpoints are reached from solver threads too


def _parse_stops(value: str) -> dict[str, set[int]]:
    stops: dict[str, set[int]] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, nth = entry.partition(":")
        stops.setdefault(name, set()).add(int(nth) if nth else 1)
    return stops


def checkpoint(name: str) -> None:
    """Test hook: stop this process (SIGSTOP) here when MMPLAN_STOP_AT names `name`."""
    global _STOPS
    if _STOPS is None:
        # Read at the first checkpoint, not at import: a forked test child sets it first.
        _STOPS = _parse_stops(os.environ.get(STOP_AT_VARIABLE, ""))
    if name not in _STOPS:
        return
    with _SEEN_LOCK:
        _SEEN[name] = _SEEN.get(name, 0) + 1
        stop = _SEEN[name] in _STOPS[name]
    if stop:
        os.kill(os.getpid(), signal.SIGSTOP)
