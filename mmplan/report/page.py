"""The HTML page: a provenance header, a contents line, the sections, plotly.js once.

The page is one file with nothing outside it: the style sheet and plotly.js are inline
(plotly.js once, in the head; every figure is a `<div>` with its own small script), no
font, image or script is fetched, and the report's own provenance record is embedded as
JSON (`<script type="application/json" id="mmplan-provenance">`) for tools to read.
"""

from __future__ import annotations

import json
from typing import Any

from mmplan.report import charts
from mmplan.report.inputs import Loaded
from mmplan.report.markup import esc, short_sha, table
from mmplan.report.registry import Section

__all__ = ["render_page", "provenance_header"]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0;color:#222;background:#fafafa}
header,section{max-width:1180px;margin:0 auto;padding:12px 24px}
header{border-bottom:1px solid #ddd;background:#fff;max-width:none}
header>*{max-width:1180px;margin-left:auto;margin-right:auto}
h1{font-size:22px;margin:8px auto 4px}h2{font-size:19px;border-bottom:2px solid #0072B2;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
nav a{margin-right:14px;color:#0072B2}
table{border-collapse:collapse;font-size:13px;margin:6px 0 14px;background:#fff}
th,td{border:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f8}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 12px}
.tile{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;min-width:110px}
.tile .value{font-size:17px;font-weight:600}.tile .label{font-size:12px;color:#666}
.note{font-size:13px;color:#555}.warn{background:#fff4e5;border-left:4px solid #E69F00;
padding:6px 10px}details{margin:6px 0}pre{font-size:12px;max-height:360px;overflow:auto;
background:#f6f6f6;padding:8px}.chart{background:#fff;border:1px solid #eee;margin:8px 0}
"""


def _made_from(record: dict[str, Any] | None) -> str:
    inputs = (record or {}).get("inputs", {})
    return "<br>".join(
        f"{esc(name)}: {esc(v.get('path'))} {short_sha(v.get('sha256'))}"
        for name, v in inputs.items()
        if isinstance(v, dict)
    )


def provenance_header(
    inputs: dict[str, Loaded], hashes: dict[str, str], record: dict[str, Any], notes: list[str]
) -> str:
    """Each input with its SHA-256, the command and versions that wrote it, what it was
    made from, and its config (folded); then the report's own run and any warnings."""
    rows, details = [], []
    for kind, loaded in inputs.items():
        made = loaded.record() or {}
        versions = made.get("versions", {})
        for source in loaded.sources:
            own = source.record or made
            rows.append(
                [
                    esc(source.label),
                    f"<code>{esc(source.path)}</code>",
                    short_sha(hashes.get(source.label)),
                    esc(f"mmplan {own.get('command', '?')}") if own else "not written by mmplan",
                    esc(versions.get("mmplan", "-")),
                    _made_from(own),
                ]
            )
        if made:
            text = json.dumps(
                {k: made.get(k) for k in ("command", "versions", "config", "timings")},
                indent=1,
                sort_keys=True,
                default=str,
            )
            details.append(
                f"<details><summary>{esc(kind)}: config and versions</summary>"
                f"<pre>{esc(text)}</pre></details>"
            )
    headers = ["input", "path", "SHA-256", "written by", "mmplan", "made from"]
    versions = ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())
    warn = "".join(f'<p class="warn">{esc(n)}</p>' for n in notes)
    return (
        f'<div id="provenance"><h3>Inputs</h3>{table(headers, rows)}{"".join(details)}'
        f'<p class="note">Report written by mmplan report ({esc(versions)}).</p>{warn}</div>'
    )


def render_page(
    title: str,
    generated: str,
    header: str,
    sections: list[Section],
    record: dict[str, Any],
) -> str:
    """The whole page as one string: plotly.js inline once, every figure a div."""
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = []
    count = 0
    for section in sections:
        pieces = [f'<section id="{esc(section.anchor)}"><h2>{esc(section.title)}</h2>']
        for part in section.parts:
            if part.figure is not None:
                count += 1
                div = charts.figure_div(part.figure, f"{section.anchor}-chart-{count}")
                pieces.append(f'<div class="chart">{div}</div>')
            else:
                pieces.append(part.html)
        pieces.append("</section>")
        body.append("".join(pieces))
    # "</" inside a JSON string must not close the script element it sits in.
    data = json.dumps(record, sort_keys=True, default=str).replace("</", "<\\/")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{charts.plotly_js()}</script>'
        f'<script type="application/json" id="mmplan-provenance">{data}</script>'
        f"</head><body><header><h1>{esc(title)}</h1>"
        f'<p class="note">Written {esc(generated)}. Every chart is interactive: hover for '
        "values, drag to zoom, double-click to reset.</p>"
        f"<nav>{nav}</nav>{header}</header>{''.join(body)}</body></html>\n"
    )
