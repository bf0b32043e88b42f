"""`mmplan report`: one self-contained HTML page from mmplan's outputs.

`build_report(paths, config, series)` reads each input with its kind's reader (a history,
a forecast, a backtest, plan, scenario, simulation or monitor folder, a promise table; see
mmplan.report.registry), checks that they are of one network (mmplan.report.checks),
renders each kind's section in page order and returns the page as a string with its
provenance record. Writing it is the caller's (the CLI writes it atomically under the
output's lock).

Modules: `registry` (input kinds, sections), `inputs` (reading and recognising the
inputs), `checks` (across inputs), `forecast`, `backtest`, `plan`, `scenarios`,
`simulation`, `promise`, `monitor` (one section each), `charts` (plotly figures), `markup`
(HTML pieces), `page` (the page and its header).
A new command's section is a module like `plan` that registers its `InputKind`, imported
below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmplan.config import Config
from mmplan.errors import UsageError
from mmplan.io import provenance
from mmplan.report import backtest as _backtest
from mmplan.report import forecast as _forecast
from mmplan.report import monitor as _monitor
from mmplan.report import plan as _plan
from mmplan.report import promise as _promise
from mmplan.report import scenarios as _scenarios
from mmplan.report import simulation as _simulation
from mmplan.report.checks import check_inputs, notes
from mmplan.report.inputs import Loaded
from mmplan.report.page import provenance_header, render_page
from mmplan.report.registry import KINDS, Context, InputKind, Section, register

__all__ = ["Report", "build_report", "KINDS", "InputKind", "register"]

_BUILT_IN = (
    _forecast,
    _backtest,
    _plan,
    _scenarios,
    _simulation,
    _promise,
    _monitor,
)  # each registers its kind when imported


@dataclass(frozen=True)
class Report:
    """A rendered page: its HTML, the sections it holds (anchors, in order), its
    provenance record and the warnings shown in its header."""

    html: str
    sections: list[str]
    record: dict[str, Any]
    notes: list[str]


def build_report(
    paths: Mapping[str, Path], config: Config, series: list[str] | None = None
) -> Report:
    """Read `paths` (kind -> path, kinds from `KINDS`), check them, render the page."""
    if not paths:
        names = ", ".join(f"--{k}" for k in sorted(KINDS, key=lambda k: KINDS[k].order))
        raise UsageError(f"nothing to report: give at least one input ({names}).")
    unknown = sorted(set(paths) - set(KINDS))
    if unknown:
        raise UsageError(f"unknown report input kind: {', '.join(unknown)}.")
    if series and "forecast" not in paths:
        raise UsageError("--series names forecast series: give --forecast too.")
    kinds = sorted(paths, key=lambda k: KINDS[k].order)
    inputs: dict[str, Loaded] = {k: KINDS[k].read(Path(paths[k])) for k in kinds}
    check_inputs(inputs)
    files = {s.label: s.path for loaded in inputs.values() for s in loaded.sources}
    record = provenance("report", config.report.model_dump(mode="json"), dict(files))
    hashes = {label: v["sha256"] for label, v in record["inputs"].items()}
    warnings = notes(inputs, hashes)
    ctx = Context(inputs, config.report, list(series or []), hashes)
    sections: list[Section] = []
    for kind in kinds:
        section = KINDS[kind].render(ctx)
        if section is not None:
            sections.append(section)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = provenance_header(inputs, hashes, record, warnings)
    html = render_page("mmplan report", generated, header, sections, record)
    return Report(html, [s.anchor for s in sections], record, warnings)
