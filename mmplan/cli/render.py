"""Terminal rendering of each command's outcome: a small summary dict per command (for
--json and the log), its Rich rendering on stderr, and the gate's JUnit XML and markdown.

Summaries are computed from the outputs, never from stage internals, so what a planner
reads is what was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from mmplan.evaluate import BacktestResult, GateResult
    from mmplan.evaluate.monitor import MonitorResult
    from mmplan.report import Report
    from mmplan.tables import Problem

__all__ = ["sample_summary", "print_sample", "validation_summary", "print_validation"]


def sample_summary(tables: Mapping[str, pl.DataFrame], outdir: str | Path) -> dict[str, Any]:
    """Facilities, lanes and the history's rows and dates."""
    h = tables["history"]
    return {
        "output": str(outdir),
        "facilities": tables["nodes"].height,
        "lanes": tables["lanes"].height,
        "history_rows": h.height,
        "first_date": str(h["date"].min()),
        "last_date": str(h["date"].max()),
    }


def print_sample(console: Console, summary: dict[str, Any]) -> None:
    """One line: what `mmplan sample` wrote."""
    console.print(
        f"wrote {summary['output']}: {summary['facilities']} facilities, {summary['lanes']} "
        f"lanes, {summary['history_rows']:,} history rows from {summary['first_date']} to "
        f"{summary['last_date']}"
    )


def validation_summary(
    file: str | Path, kind: str, rows: int, problems: list[Problem]
) -> dict[str, Any]:
    """The table checked, as which kind, its rows and every problem found."""
    return {
        "file": str(file),
        "kind": kind,
        "rows": rows,
        "problems": [p.describe() for p in problems],
    }


def print_validation(
    console: Console, summary: dict[str, Any], record: dict[str, Any] | None
) -> None:
    """What made the table (from its provenance), then its problems or that it is valid."""
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
    file, kind, problems = summary["file"], summary["kind"], summary["problems"]
    if problems:
        console.print(f"{file}: {len(problems)} problems as a {kind} table:", markup=False)
        for p in problems:
            console.print(f"  - {p}", markup=False)
    else:
        console.print(f"{file}: valid {kind} table, {summary['rows']:,} rows.", markup=False)


# --------------------------------------------------------------------------- forecast

__all__ += ["forecast_summary", "print_forecast", "print_notes"]


def forecast_summary(
    result: pl.DataFrame,
    output: str | Path,
    calibration: pl.DataFrame | None = None,
    notes: list[str] | None = None,
    grains: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per level and model, the horizon, the forecast total (of the day rows), any
    calibration, the grains written and why, and notes on what the run settled for the
    planner (e.g. a default level left out)."""
    from mmplan.tables import day_rows

    result = day_rows(result)  # a long-range forecast's weeks and months repeat its days
    lanes = result.filter(pl.col("level") == "lane")
    factors = None
    if calibration is not None:
        # The pooled factor of the narrowest interval per level, as the backtest prints it.
        pooled = calibration.filter(
            (pl.col("rule") == "all") & (pl.col("interval") == pl.col("interval").min())
        )
        factors = {
            "interval": int(pooled["interval"][0]) if pooled.height else None,
            "factors": dict(pooled.select("level", "factor").iter_rows()),
        }
    return {
        "output": str(output),
        "series": result.get_column("unique_id").n_unique(),
        "lanes": lanes.get_column("unique_id").n_unique(),
        "dates": [str(result["date"].min()), str(result["date"].max())],
        "levels": dict(result.group_by("level").agg(pl.col("unique_id").n_unique()).iter_rows()),
        "models": dict(
            lanes.group_by("model").agg(pl.col("unique_id").n_unique()).sort("model").iter_rows()
        ),
        "total_forecast": float(result.filter(pl.col("level") == "total")["forecast"].sum()),
        "calibration": factors,
        "grains": grains,
        "notes": list(notes or []),
    }


def print_forecast(console: Console, summary: dict[str, Any]) -> None:
    """Rich summary of a forecast run."""
    from rich.table import Table

    table = Table(title=f"forecast -> {summary['output']}", show_edge=False)
    table.add_column("lane model")
    table.add_column("lanes", justify="right")
    for model, n in summary["models"].items():
        table.add_row(model, f"{n:,}")
    console.print(table)
    console.print(
        f"{summary['series']:,} series ({summary['lanes']:,} lanes), dates "
        f"{summary['dates'][0]} .. {summary['dates'][1]}, total forecast "
        f"{summary['total_forecast']:,.0f} packages"
    )
    if summary.get("grains"):
        console.print(
            f"grains: {', '.join(summary['grains']['written'])} ({summary['grains']['why']})",
            markup=False,  # "[forecast] ..." is not Rich markup
        )
    cal = summary.get("calibration")
    if cal and cal["factors"]:
        factors = ", ".join(f"{level} x{f:.2f}" for level, f in cal["factors"].items())
        console.print(f"intervals calibrated on backtest errors ({cal['interval']}%): {factors}")
    print_notes(console, summary)


def print_notes(console: Console, summary: dict[str, Any]) -> None:
    """A summary's notes, one line each, in yellow: the run worked, but read these."""
    for note in summary.get("notes") or []:
        console.print(f"note: {note}", style="yellow", markup=False, highlight=False)


# --------------------------------------------------------------------------- backtest

__all__ += [
    "backtest_summary",
    "print_backtest",
    "print_gate",
    "gate_lines",
    "gate_junit",
    "gate_markdown",
]


def _fmt(value: Any, pct: bool = False) -> str:
    """A metric for people: '-' when undefined, percent for shares."""
    if value is None:
        return "-"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def _rule_text(g: GateResult) -> tuple[str, str, str]:
    """(threshold, measured, verdict) of a gate rule, as shown in every rendering."""
    pct = g.metric not in ("mase", "wape_ratio", "abs_tracking_signal")
    threshold = f"{g.metric} {g.op} {_fmt(g.threshold, pct)}"
    measured = _fmt(g.measured, pct)
    return threshold, measured, g.status


def backtest_summary(
    result: BacktestResult, outdir: str | Path, notes: list[str] | None = None
) -> dict[str, Any]:
    """What a planner reads after a backtest: per level, the primary run against naive,
    and notes on what the run settled (e.g. a default level left out)."""
    record = result.metrics_json
    primary, naive = record["primary"], record["baseline"]
    p = min(record["interval_levels"]) if record["interval_levels"] else None
    rows = []
    for level in record["levels"]:
        m = record["metrics"].get(primary, {}).get(level, {})
        n = record["metrics"].get(naive, {}).get(level, {})
        rows.append(
            {
                "level": level,
                "wape": m.get("wape"),
                "naive_wape": n.get("wape"),
                "skill": m.get("skill"),
                "bias": m.get("bias"),
                "mase": m.get("mase"),
                "coverage": m.get(f"coverage_{p}") if p else None,
            }
        )
    return {
        "output": str(outdir),
        "primary": primary,
        "baseline": naive,
        "runs": record["runs"],
        "cutoffs": record["cutoffs"],
        "horizon": record["horizon"],
        "coverage_interval": p,
        "levels": rows,
        "champions": (record.get("champions") or {}).get("counts"),
        # Per level, the factor that would have made the p% intervals cover p% of points.
        "calibration": {
            level: factors.get(str(p))
            for level, factors in (record.get("calibration") or {}).items()
        }
        if p
        else None,
        "gate": record["gate"],
        "notes": list(notes or []),
    }


def print_backtest(console: Console, summary: dict[str, Any]) -> None:
    """Rich table of the primary run's metrics per level, beside seasonal naive."""
    from rich.table import Table

    p = summary["coverage_interval"]
    table = Table(title=f"backtest {summary['primary']} -> {summary['output']}", show_edge=False)
    for col in ("level", "WAPE", "naive WAPE", "skill", "bias", "MASE", f"cover {p}%"):
        table.add_column(col, justify="left" if col == "level" else "right")
    for r in summary["levels"]:
        table.add_row(
            r["level"],
            _fmt(r["wape"], True),
            _fmt(r["naive_wape"], True),
            _fmt(r["skill"], True),
            _fmt(r["bias"], True),
            _fmt(r["mase"]),
            _fmt(r["coverage"], True),
        )
    console.print(table)
    cuts = summary["cutoffs"]
    console.print(
        f"{len(cuts)} cutoffs {cuts[0]} .. {cuts[-1]}, horizon {summary['horizon']} days, "
        f"runs: {', '.join(summary['runs'])}"
    )
    if summary.get("calibration"):
        factors = ", ".join(
            f"{level} x{f:.2f}" for level, f in summary["calibration"].items() if f is not None
        )
        console.print(
            f"interval calibration ({p}%): {factors} "
            "(calibration.parquet, for mmplan forecast --calibration)"
        )
    if summary["champions"]:
        counts = ", ".join(f"{m} {n}" for m, n in summary["champions"].items())
        console.print(f"champions: {counts} (champions.parquet, for mmplan forecast --champions)")
    print_notes(console, summary)


def gate_lines(gates: list[GateResult]) -> list[str]:
    """One plain line per rule, for logs and CI without a terminal."""
    lines = []
    for g in gates:
        threshold, measured, status = _rule_text(g)
        note = f" ({g.detail})" if g.detail else ""
        lines.append(
            f"gate {status}: {g.rule} level={g.level} {threshold} measured={measured}{note}"
        )
    return lines


def print_gate(
    console: Console, gates: list[GateResult], passed: bool, command: str = "backtest"
) -> None:
    """The gate verdict: a Rich table on a terminal, plain lines otherwise."""
    section = "monitor" if command == "monitor" else "gate"
    if not gates:
        console.print(f"gate: no rules configured in [{section}]; nothing to check.", markup=False)
        return
    if console.is_terminal:
        from rich.table import Table

        table = Table(title=f"{command} gate", show_edge=False)
        for col in ("rule", "level", "threshold", "measured", "result"):
            table.add_column(col, justify="right" if col == "measured" else "left")
        for g in gates:
            threshold, measured, status = _rule_text(g)
            style = {"pass": "green", "FAIL": "bold red"}.get(status, "yellow")
            table.add_row(g.rule, g.level, threshold, measured, f"[{style}]{status}[/]")
        console.print(table)
    else:
        for line in gate_lines(gates):
            console.print(line, markup=False)
    failed = sum(g.passed is False for g in gates)
    console.print(
        "gate: passed" if passed else f"gate: FAILED ({failed} of {len(gates)} rules)",
        markup=False,
    )


def gate_junit(gates: list[GateResult], seconds: float = 0.0, command: str = "backtest") -> str:
    """JUnit XML with one testcase per gate rule (failure / skipped as CI systems expect);
    `command` names the suite (the backtest gate, or monitor's alerts)."""
    import xml.etree.ElementTree as ET

    failures = sum(g.passed is False for g in gates)
    skipped = sum(g.passed is None for g in gates)
    counts = {
        "tests": str(len(gates)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
    }
    root = ET.Element(
        "testsuites", {"name": f"mmplan {command} gate", **counts, "time": f"{seconds:.3f}"}
    )
    suite = ET.SubElement(
        root, "testsuite", {"name": f"mmplan.{command}.gate", **counts, "time": f"{seconds:.3f}"}
    )
    for g in gates:
        threshold, measured, status = _rule_text(g)
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"mmplan.gate.{g.rule}",
                "name": f"{g.level}: {threshold}",
                "time": "0",
            },
        )
        text = f"{g.rule} at level {g.level}: {threshold}, measured {measured}"
        if g.detail:
            text += f" ({g.detail})"
        if g.passed is False:
            ET.SubElement(case, "failure", {"message": text, "type": "GateFailed"}).text = text
        elif g.passed is None:
            ET.SubElement(case, "skipped", {"message": text})
        ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def rule_table(gates: list[GateResult], section: str) -> list[str]:
    """Markdown lines of a rule table: one row per rule with its verdict."""
    if not gates:
        return [f"No rules configured in `[{section}]`."]
    lines = ["| rule | level | threshold | measured | result |", "|---|---|---|---|---|"]
    for g in gates:
        threshold, measured, status = _rule_text(g)
        shown = f"**{status}**" if status == "FAIL" else status
        note = f" ({g.detail})" if g.detail else ""
        lines.append(f"| {g.rule} | {g.level} | {threshold} | {measured}{note} | {shown} |")
    return lines


def gate_markdown(summary: dict[str, Any], gates: list[GateResult], passed: bool) -> str:
    """Markdown for a CI job summary: the verdict, each rule, and the metrics per level."""
    verdict = "passed" if passed else "FAILED"
    icon = ":white_check_mark:" if passed else ":x:"
    cuts = summary["cutoffs"]
    lines = [
        f"## {icon} mmplan backtest gate {verdict}",
        "",
        f"Model **{summary['primary']}** against **{summary['baseline']}**, {len(cuts)} cutoffs "
        f"{cuts[0]} .. {cuts[-1]}, horizon {summary['horizon']} days.",
        "",
    ]
    lines += rule_table(gates, "gate")
    p = summary["coverage_interval"]
    lines += [
        "",
        f"| level | WAPE | naive WAPE | skill | bias | MASE | coverage {p}% |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["levels"]:
        lines.append(
            f"| {r['level']} | {_fmt(r['wape'], True)} | {_fmt(r['naive_wape'], True)} | "
            f"{_fmt(r['skill'], True)} | {_fmt(r['bias'], True)} | {_fmt(r['mase'])} | "
            f"{_fmt(r['coverage'], True)} |"
        )
    if summary["champions"]:
        counts = ", ".join(f"{m}: {n}" for m, n in summary["champions"].items())
        lines += ["", f"Champions: {counts}."]
    return "\n".join(lines) + "\n"


def report_summary(output: str | Path, page: Report, seconds: float) -> dict[str, Any]:
    """What `mmplan report` wrote: the file, its size, its sections and any warnings."""
    size = Path(output).stat().st_size
    return {
        "output": str(output),
        "bytes": size,
        "megabytes": round(size / 1e6, 2),
        "seconds": round(seconds, 2),
        "sections": page.sections,
        "inputs": {k: v["sha256"] for k, v in page.record["inputs"].items()},
        "notes": page.notes,
    }


def print_report(console: Console, summary: dict[str, Any]) -> None:
    """One line for the page, then its warnings."""
    console.print(
        f"wrote {escape(summary['output'])}: {summary['megabytes']:.2f} MB "
        f"({summary['bytes']:,} bytes) in {summary['seconds']:.1f} s, sections "
        f"{', '.join(summary['sections'])}"
    )
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")


def monitor_summary(result: MonitorResult, outdir: str | Path) -> dict[str, Any]:
    """What a monitoring run reports: summary.json plus where it went."""
    return {"output": str(outdir), **result.summary}


def _monitor_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per level: WAPE, expected, ratio, skill, bias, coverage, max |TS| as text."""
    p = min(summary["interval_levels"]) if summary["interval_levels"] else None
    rows: list[tuple[str, ...]] = []
    for level, r in summary["levels"].items():
        rows.append(
            (
                level,
                _fmt(r.get("wape"), True),
                _fmt(r.get("expected_wape"), True),
                _fmt(r.get("wape_ratio")),
                _fmt(r.get("skill"), True),
                _fmt(r.get("bias"), True),
                _fmt(r.get(f"coverage_{p}") if p else None, True),
                _fmt(r.get("max_abs_tracking_signal")),
            )
        )
    return rows


_MONITOR_COLUMNS = ("level", "WAPE", "expected", "ratio", "skill", "bias", "cover", "max |TS|")


def _monitor_notes(summary: dict[str, Any]) -> list[str]:
    """The lines under the table: window, excess error, plan, notes."""
    lines = [
        f"forecast of {summary['forecast_date']}: {summary['observed_share']} periods observed "
        f"(to {summary['last_observed']}), {summary['drifting_series']} of "
        f"{summary['series']} series drifting"
    ]
    for level, r in summary["levels"].items():
        top = r.get("top_excess") or []
        if top:
            named = ", ".join(
                f"{t['unique_id']} {_fmt(t['share_of_excess'], True)}" for t in top[:3]
            )
            lines.append(f"excess error at {level}: {named}")
    for market, by_level in (summary.get("markets") or {}).items():
        shown = ", ".join(
            f"{lv} {_fmt(r.get('wape'), True)}"
            + (f" (x{r['wape_ratio']:.2f})" if r.get("wape_ratio") is not None else "")
            for lv, r in by_level.items()
        )
        lines.append(f"market {market}: WAPE {shown}")
    plan = summary.get("plan")
    if plan:
        lines.append(
            f"plan: {plan['observed_dates']} of {plan['plan_dates']} dates observed, overflow "
            f"{plan['overflow']:.0f} packages ({_fmt(plan['overflow_share'], True)}), idle "
            f"capacity {_fmt(plan['idle_share'], True)}, {plan['lanes_overflowing']} lanes "
            f"overflowing, {plan['facility_days_over']} facility-days over capacity"
        )
    return lines + [f"note: {n}" for n in summary["notes"]]


def print_monitor(console: Console, summary: dict[str, Any]) -> None:
    """Rich table of the scores per level, then the window, excess error and plan."""
    from rich.table import Table

    table = Table(title=f"monitor -> {summary['output']}", show_edge=False)
    for col in _MONITOR_COLUMNS:
        table.add_column(col, justify="left" if col == "level" else "right")
    for row in _monitor_rows(summary):
        table.add_row(*row)
    console.print(table)
    for line in _monitor_notes(summary):
        console.print(line, markup=False)


def monitor_markdown(summary: dict[str, Any], gates: list[GateResult], passed: bool) -> str:
    """Markdown for a CI job summary of a monitoring run: verdict, alerts, scores."""
    verdict = "passed" if passed else "FAILED"
    icon = ":white_check_mark:" if passed else ":x:"
    lines = [f"## {icon} mmplan monitor {verdict}", "", *rule_table(gates, "monitor"), ""]
    lines += ["| " + " | ".join(_MONITOR_COLUMNS) + " |", "|---" + "|---:" * 7 + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in _monitor_rows(summary)]
    lines += ["", *[f"- {line}" for line in _monitor_notes(summary)]]
    return "\n".join(lines) + "\n"
