"""The monitoring section: how the forecast did against the actuals that followed it.

From the folder `mmplan monitor` writes: the window scored (summary.json), the alerts
(alerts.parquet, failed rules first), each level's observed WAPE against the WAPE the
backtest measured on the same steps (`expected_wape`, with `--baseline`) and their ratio,
interval coverage against nominal, the same per market (with `[markets] column`), the
series whose tracking signal drifts most and those adding most error beyond the expected
WAPE, and, when the monitor ran with `--plan`, the plan's overflow per lane and facility
(plan_lanes, plan_facilities).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.report import charts
from mmplan.report.inputs import MonitorInput, read_monitor
from mmplan.report.markup import esc, figures, number, paragraph, percent, table
from mmplan.report.registry import Context, InputKind, Part, Section, register

__all__ = ["render_monitor", "level_order", "sorted_alerts", "drifting_series", "lane_overflow"]

STATUS_ORDER = {"FAIL": 0, "skipped": 1, "pass": 2}


def level_order(mon: MonitorInput) -> list[str]:
    """The summary's levels, total first, lane last, the others coarsest (fewest series)
    first: summary.json's keys are sorted by name."""
    names = list(mon.summary["levels"])
    series = mon.scores.filter(pl.col("scope") == "series").group_by("level").len()
    counts = dict(series.iter_rows())
    rank = {"total": -1, "lane": 1 << 60}
    return sorted(names, key=lambda lv: (rank.get(lv, counts.get(lv, 0)), lv))


def sorted_alerts(alerts: pl.DataFrame) -> pl.DataFrame:
    """The alert rules, failed first, then skipped, then passed; by rule and level."""
    rank = pl.col("status").replace_strict(STATUS_ORDER, default=3, return_dtype=pl.Int64)
    return alerts.with_columns(rank.alias("_rank")).sort("_rank", "rule", "level").drop("_rank")


def drifting_series(scores: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` series with the largest |tracking signal| (across the store's runs when
    the monitor appended to one, else this forecast's), every level."""
    series = scores.filter(pl.col("scope") == "series")
    if "tracking_signal" not in series.columns:
        return series.head(0)
    ts = pl.col("tracking_signal")
    if "tracking_signal_all" in series.columns:
        ts = pl.col("tracking_signal_all").fill_null(ts)
    return (
        series.with_columns(ts.alias("ts"))
        .filter(pl.col("ts").is_not_null())
        .sort(pl.col("ts").abs(), pl.col("unique_id"), descending=[True, False])
        .head(n)
    )


def lane_overflow(lanes: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` lanes with the most volume beyond the plan's truck capacity."""
    share = pl.when(pl.col("actual") > 0).then(pl.col("overflow") / pl.col("actual"))
    return (
        lanes.group_by("origin", "destination")
        .agg(pl.col("actual", "capacity", "overflow").sum())
        .with_columns(share.alias("overflow_share"))
        .filter(pl.col("overflow") > 0)
        .sort(["overflow", "origin", "destination"], descending=[True, False, False])
        .head(n)
    )


def _tiles(mon: MonitorInput) -> str:
    s = mon.summary
    gate = s.get("gate") or {}
    rules = gate.get("rules") or []
    failed = sum(1 for r in rules if r.get("status") == "FAIL")
    verdict = "no rules" if not rules else ("passed" if gate.get("passed") else "FAILED")
    items = [
        ("forecast made", esc(s.get("forecast_date", "-"))),
        ("observed", f"{esc(s.get('observed_share', '-'))} periods"),
        ("last actual", esc(s.get("last_observed", "-"))),
        ("alerts", f"{esc(verdict)} ({failed} of {len(rules)} failed)"),
        ("series", number(s.get("series"))),
        ("drifting series", number(s.get("drifting_series"))),
    ]
    if s.get("plan"):
        items.append(("plan overflow", percent(s["plan"].get("overflow_share"))))
    return figures(items)


def _alerts(alerts: pl.DataFrame) -> str:
    title = "<h3>Alerts</h3>"
    if alerts.is_empty():
        text = "No alert rules are configured in [monitor], so nothing was checked."
        return title + paragraph(text)
    rows = [
        [
            f'<span class="warn">{esc(r["status"])}</span>'
            if r["status"] == "FAIL"
            else esc(r["status"]),
            esc(r["rule"]),
            esc(r["level"]),
            number(r["measured"], 3),
            esc(f"{r['op']} {r['threshold']:g}") if r["threshold"] is not None else "-",
            esc(r.get("detail") or ""),
        ]
        for r in sorted_alerts(alerts).iter_rows(named=True)
    ]
    headers = ["status", "rule", "level", "value", "threshold", "detail"]
    return title + table(headers, rows, numeric=[3, 4])


def _accuracy(mon: MonitorInput) -> list[Part]:
    """Observed against expected WAPE per level (table and chart), coverage."""
    levels = level_order(mon)
    by = mon.summary["levels"]
    ps = [int(p) for p in mon.summary.get("interval_levels") or []]
    rows = [
        [
            esc(lv),
            percent(by[lv].get("wape")),
            percent(by[lv].get("expected_wape")),
            number(by[lv].get("wape_ratio"), 2),
            percent(by[lv].get("bias")),
            number(by[lv].get("max_abs_tracking_signal"), 1),
            *[
                f"{percent(by[lv].get(f'coverage_{p}'))} "
                f"({percent(by[lv].get(f'expected_coverage_{p}'))})"
                for p in ps
            ],
        ]
        for lv in levels
    ]
    headers = ["level", "WAPE", "expected WAPE", "ratio", "bias", "max |TS|"]
    headers += [f"coverage {p}% (backtest)" for p in ps]
    note = paragraph(
        "Expected: the backtest's WAPE and coverage on the same steps (--baseline); ratio "
        "= WAPE / expected. Bias < 0 is an under-forecast.",
        "note",
    )
    parts = [Part(table(headers, rows, numeric=range(1, len(headers))) + note)]
    expected = [by[lv].get("expected_wape") for lv in levels]
    if any(v is not None for v in expected):
        fig = charts.expected_chart(
            "WAPE per level: observed against expected (the backtest's), ratio above",
            levels,
            [by[lv].get("wape") for lv in levels],
            expected,
            [by[lv].get("wape_ratio") for lv in levels],
        )
        parts.append(Part(figure=fig))
    else:
        text = "No expected WAPE: the monitor ran without --baseline (the backtest's metrics)."
        parts.append(Part(paragraph(text, "note")))
    if ps:
        coverage = {p: [by[lv].get(f"coverage_{p}") for lv in levels] for p in ps}
        title = "Interval coverage by level on the observed periods, dashed: nominal"
        parts.append(Part(figure=charts.coverage_chart(title, levels, coverage)))
    return parts


def _drift(scores: pl.DataFrame, n: int) -> str:
    top = drifting_series(scores, n)
    title = f"<h3>Series by tracking signal (top {n})</h3>"
    if top.is_empty():
        return title + paragraph("No series has a tracking signal.")
    runs = "runs" in top.columns
    rows = [
        [
            esc(r["unique_id"]),
            esc(r["level"]),
            number(r["ts"], 1),
            number(r.get("tracking_signal"), 1),
            number(r.get("runs")) if runs else "-",
            percent(r["wape"]),
            percent(r["bias"]),
            "yes" if r.get("drift") else "",
        ]
        for r in top.iter_rows(named=True)
    ]
    headers = ["series", "level", "tracking signal", "this forecast", "runs", "WAPE", "bias"]
    headers.append("drifting")
    note = paragraph(
        "Tracking signal: cumulative error / mean absolute error, across the monitoring "
        "store's runs when there is one; beyond ±4 (or the level's rule) a series drifts.",
        "note",
    )
    return title + note + table(headers, rows, numeric=range(2, 7))


def _excess(summary: dict[str, Any], levels: list[str]) -> str:
    rows = [
        [
            esc(level),
            esc(r.get("unique_id")),
            number(r.get("excess_error")),
            percent(r.get("share_of_excess")),
            percent(r.get("wape")),
        ]
        for level in levels
        for r in summary["levels"][level].get("top_excess") or []
    ]
    if not rows:
        return ""
    headers = ["level", "series", "excess error", "share of the level's excess", "WAPE"]
    note = paragraph(
        "Excess error: absolute error beyond expected WAPE × the series' actual volume.",
        "note",
    )
    return (
        "<h3>Series adding most error beyond expected</h3>" + note + table(headers, rows, [2, 3, 4])
    )


def _markets(summary: dict[str, Any], levels: list[str]) -> str:
    """Per market ([markets] column), each level's WAPE against the expected."""
    markets = summary.get("markets") or {}
    rows = [
        [
            esc(market),
            esc(lv),
            percent(entry[lv].get("wape")),
            percent(entry[lv].get("expected_wape")),
            number(entry[lv].get("wape_ratio"), 2),
            percent(entry[lv].get("bias")),
            number(entry[lv].get("max_abs_tracking_signal"), 1),
        ]
        for market, entry in sorted(markets.items())
        for lv in [*levels, *sorted(set(entry) - set(levels))]
        if lv in entry
    ]
    if not rows:
        return ""
    headers = ["market", "level", "WAPE", "expected WAPE", "ratio", "bias", "max |TS|"]
    return "<h3>Markets</h3>" + table(headers, rows, numeric=range(2, 7))


def _plan(mon: MonitorInput, n: int) -> list[Part]:
    """The plan's trucks and facilities against the actual volume (--plan)."""
    fit, lanes, nodes = mon.summary.get("plan"), mon.plan_lanes, mon.plan_facilities
    if not fit or lanes is None or nodes is None:
        return []
    tiles = figures(
        [
            (
                "observed plan dates",
                f"{number(fit.get('observed_dates'))} of {number(fit.get('plan_dates'))}",
            ),
            ("overflow", number(fit.get("overflow"))),
            ("overflow share", percent(fit.get("overflow_share"))),
            ("idle capacity", percent(fit.get("idle_share"))),
            ("lanes overflowing", number(fit.get("lanes_overflowing"))),
            ("facility-days over", number(fit.get("facility_days_over"))),
        ]
    )
    parts = [Part("<h3>The plan against the actuals</h3>" + tiles)]
    per_day = lanes.group_by("date").agg(pl.col("overflow").sum()).sort("date")
    if float(per_day["overflow"].sum()) > 0:
        fig = charts.bars(
            "Volume beyond the plan's truck capacity, per day",
            [d.isoformat() for d in per_day["date"]],
            per_day["overflow"].to_list(),
            "packages",
            colour="#D55E00",
        )
        parts.append(Part(figure=fig))
    rows = [
        [
            esc(f"{r['origin']} → {r['destination']}"),
            number(r["actual"]),
            number(r["capacity"]),
            number(r["overflow"]),
            percent(r["overflow_share"]),
        ]
        for r in lane_overflow(lanes, n).iter_rows(named=True)
    ]
    if rows:
        headers = ["lane", "actual volume", "truck capacity", "overflow", "overflow share"]
        html = f"<h3>Lanes overflowing (top {n})</h3>" + table(headers, rows, range(1, 5))
    else:
        html = "<h3>Lanes overflowing</h3>" + paragraph("Every lane's trucks held its volume.")
    parts.append(Part(html + _facilities(nodes, n)))
    return parts


def _facilities(nodes: pl.DataFrame, n: int) -> str:
    over = (
        nodes.filter(pl.col("over") > 0)
        .group_by("node")
        .agg(
            pl.len().alias("days"),
            pl.col("over").sum(),
            pl.col("over").max().alias("max_over"),
            pl.col("utilization").max().alias("peak"),
        )
        .sort(["over", "node"], descending=[True, False])
        .head(n)
    )
    if over.is_empty():
        return "<h3>Facilities over capacity</h3>" + paragraph("No facility went over capacity.")
    rows = [
        [
            esc(r["node"]),
            number(r["days"]),
            number(r["over"]),
            number(r["max_over"]),
            percent(r["peak"]),
        ]
        for r in over.iter_rows(named=True)
    ]
    headers = ["facility", "days over", "packages over", "largest day", "peak utilisation"]
    return f"<h3>Facilities over capacity (top {n})</h3>" + table(headers, rows, range(1, 5))


def render_monitor(ctx: Context) -> Section:
    """Key figures, alerts, expected against observed WAPE, coverage, drift, plan overflow."""
    mon: MonitorInput = ctx.inputs["monitor"].data
    parts = [Part(_tiles(mon)), Part(_alerts(mon.alerts))]
    notes = [str(n) for n in mon.summary.get("notes") or []]
    if notes:
        parts.append(Part("".join(paragraph(n, "note") for n in notes)))
    parts += _accuracy(mon)
    levels = level_order(mon)
    if markets := _markets(mon.summary, levels):
        parts.append(Part(markets))
    drift = _drift(mon.scores, ctx.config.worst_series)
    parts.append(Part(drift + _excess(mon.summary, levels)))
    parts += _plan(mon, ctx.config.top_lanes)
    return Section("monitor", "Monitoring", parts)


register(InputKind("monitor", read_monitor, render_monitor, order=50))
