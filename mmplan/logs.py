"""Run events for log shippers: with `--log-format json`, one JSON object per line on stderr.

Events: `start` (command, arguments), `summary` (the command's counts and figures),
`done` (seconds) and `error` (exit code, message). In text mode nothing is emitted here
and people read the Rich summary instead.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

__all__ = ["set_format", "json_logs", "emit"]

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
