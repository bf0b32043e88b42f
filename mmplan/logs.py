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
solve is in flight: reached only by solves that take longer), `optimize.date-solved`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

__all__ = ["set_format", "json_logs", "emit", "checkpoint"]

_FORMAT = {"value": "text"}


def set_format(value: str) -> None:
    _FORMAT["value"] = value


def json_logs() -> bool:
    return _FORMAT["value"] == "json"


def emit(event: str, **fields: Any) -> None:
    """Write one event line to stderr when JSON logs are on."""
    if not json_logs():
        return
    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields}
    sys.stderr.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
    sys.stderr.flush()


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
