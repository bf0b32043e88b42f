"""The report's charts: plotly.js figure specs built from plain lists, and the page's one
copy of plotly.js.

Every chart is a small function from lists of numbers and labels to a figure: the plain
`{"data": [...], "layout": {...}}` dict plotly.js draws. None reads a table, so each can be
drawn from any command's output. The dicts are written as JSON by `figure_div` (a `<div>`
and a `Plotly.newPlot` call, without plotly.js: the page embeds it once, `plotly_js`).
They are not built with plotly's Python graph objects: validating each figure and
deep-copying its template cost 0.35 s a chart (3.5 s for the demo's fan charts), the
JSON costs milliseconds. plotly is imported only for its bundled plotly.js, inside
`plotly_js`, so importing this module (and `mmplan --help`) stays instant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = [
    "Figure",
    "BandSeries",
    "fan_chart",
    "lines_chart",
    "coverage_chart",
    "expected_chart",
    "heatmap",
    "bars",
    "stacked_bars",
    "boxes",
    "figure_div",
    "plotly_js",
]

Figure = dict[str, Any]

# Colour-blind safe (Okabe-Ito), one per level or series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
INK = "#222222"
FORECAST = "#0072B2"
HEIGHT = 330
GRID = {"gridcolor": "#ebebeb", "linecolor": "#cccccc", "zerolinecolor": "#cccccc"}
# No mode bar logo and no link to plotly's cloud: nothing on the page reaches the network.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

BandSeries = tuple[int, Sequence[float], Sequence[float]]  # (p, lo_p, hi_p)


def _layout(title: str, ytitle: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "height": HEIGHT,
        "margin": {"l": 60, "r": 20, "t": 44, "b": 40},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "colorway": list(PALETTE),
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": INK},
        "xaxis": dict(GRID),
        "yaxis": {"title": {"text": ytitle}, "rangemode": "tozero", **GRID},
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
        "hovermode": "x unified",
        **extra,
    }


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _scatter(x: Sequence[Any], y: Sequence[Any], name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "x": list(x), "y": list(y), "name": name, **extra}


def fan_chart(
    title: str,
    history: tuple[Sequence[str], Sequence[float]] | None,
    dates: Sequence[str],
    point: Sequence[float],
    bands: Sequence[BandSeries],
) -> Figure:
    """History, the point forecast and its prediction intervals, widest band first."""
    data = []
    if history is not None and len(history[0]):
        line = {"color": INK, "width": 1.4}
        data.append(_scatter(history[0], history[1], "history", mode="lines", line=line))
    for rank, (p, lo, hi) in enumerate(sorted(bands, key=lambda band: -band[0])):
        band = _scatter(
            [*dates, *reversed(dates)],
            [*hi, *reversed(list(lo))],
            f"{p}% interval",
            fill="toself",
            fillcolor=_rgba(FORECAST, 0.12 + 0.14 * rank),
            line={"width": 0},
            hoverinfo="skip",
        )
        data.append(band)
    line = {"color": FORECAST, "width": 2}
    data.append(_scatter(dates, point, "forecast", mode="lines", line=line))
    layout = _layout(title, "packages per period")
    layout["xaxis"]["type"] = "date"
    return {"data": data, "layout": layout}


def lines_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[Any], Sequence[float | None], bool]],
    xtitle: str,
    ytitle: str,
    percent: bool = False,
    steps: bool = True,
) -> Figure:
    """One line per (name, x, y, dashed); names sharing a first word share a colour.
    `steps`: x is whole periods (ticks at every integer)."""
    data = []
    colours: dict[str, str] = {}
    for name, x, y, dashed in series:
        colour = colours.setdefault(name.split(" ")[0], PALETTE[len(colours) % len(PALETTE)])
        line = {"color": colour, "dash": "dash" if dashed else "solid", "width": 2}
        mode = "lines+markers" if steps else "lines"
        data.append(_scatter(x, y, name, mode=mode, line=line, marker={"size": 5}))
    layout = _layout(title, ytitle, hovermode="closest")
    layout["xaxis"].update({"title": {"text": xtitle}, **({"dtick": 1} if steps else {})})
    layout["legend"]["y"] = -0.3
    layout["margin"]["b"] = 70
    if percent:
        layout["yaxis"]["tickformat"] = ".0%"
    return {"data": data, "layout": layout}


def coverage_chart(
    title: str, levels: Sequence[str], coverage: dict[int, list[float | None]]
) -> Figure:
    """Bars of measured coverage per level, one colour per interval, nominal as a line."""
    data, shapes, notes = [], [], []
    for i, (p, values) in enumerate(sorted(coverage.items())):
        colour = PALETTE[i % len(PALETTE)]
        bar = {"type": "bar", "x": list(levels), "y": values, "marker": {"color": colour}}
        data.append(bar | {"name": f"{p}% interval"})
        line = {"color": colour, "dash": "dash", "width": 1.5}
        shapes.append(
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": p / 100, "y1": p / 100}
            | {"line": line}
        )
        notes.append(
            {"xref": "paper", "x": 1, "y": p / 100, "text": f"nominal {p}%", "showarrow": False}
            | {"xanchor": "right", "yanchor": "bottom", "font": {"color": colour}}
        )
    layout = _layout(title, "share of actuals inside", barmode="group", hovermode="closest")
    layout["yaxis"].update({"tickformat": ".0%", "range": [0, 1.05]})
    layout.update({"shapes": shapes, "annotations": notes})
    return {"data": data, "layout": layout}


def expected_chart(
    title: str,
    levels: Sequence[str],
    observed: Sequence[float | None],
    expected: Sequence[float | None],
    ratios: Sequence[float | None],
) -> Figure:
    """Observed against expected WAPE per level as paired bars, the ratio above each pair."""
    marker = {"color": PALETTE[0]}
    data = [
        {"type": "bar", "x": list(levels), "y": list(observed), "name": "observed WAPE"}
        | {"marker": marker, "text": [_times(r) for r in ratios], "textposition": "outside"},
        {"type": "bar", "x": list(levels), "y": list(expected), "name": "expected (backtest)"}
        | {"marker": {"color": "#999999"}},
    ]
    layout = _layout(title, "WAPE", barmode="group", hovermode="closest")
    layout["yaxis"]["tickformat"] = ".0%"
    return {"data": data, "layout": layout}


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"×{ratio:.2f}"


def heatmap(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    z: Sequence[Sequence[float | None]],
    colour_title: str,
) -> Figure:
    """Rows x columns of shares (utilisation), the colour scale from 0 to 100%."""
    trace = {
        "type": "heatmap",
        "x": list(columns),
        "y": list(rows),
        "z": [[None if v is None else round(v, 4) for v in r] for r in z],
        "zmin": 0,
        "zmax": 1,
        "colorscale": "YlOrRd",
        "reversescale": True,  # plotly's YlOrRd runs red to yellow: full is red
        "colorbar": {"title": {"text": colour_title}, "tickformat": ".0%"},
        "hovertemplate": "%{y} on %{x}: %{z:.1%}<extra></extra>",
        "xgap": 1,
        "ygap": 1,
    }
    layout = _layout(title, "", height=max(HEIGHT, 120 + 16 * len(rows)), hovermode="closest")
    layout["yaxis"] = {"autorange": "reversed", "type": "category"}
    layout["xaxis"] = {"type": "date", "tickformat": "%b %d"}
    return {"data": [trace], "layout": layout}


def bars(title: str, x: Sequence[Any], y: Sequence[float], ytitle: str, colour: str = "") -> Figure:
    """A plain bar chart (trucks per day, unserved volume per day)."""
    marker = {"color": colour or PALETTE[0]}
    trace = {"type": "bar", "x": list(x), "y": list(y), "name": ytitle, "marker": marker}
    return {
        "data": [trace],
        "layout": _layout(title, ytitle, hovermode="closest", showlegend=False),
    }


def stacked_bars(
    title: str,
    x: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    ytitle: str,
    stacked: bool = True,
) -> Figure:
    """One bar per x and a segment per (name, values): cost by component per scenario.
    `stacked=False` puts the series side by side instead."""
    data = [
        {"type": "bar", "x": list(x), "y": list(values), "name": name}
        | {"marker": {"color": PALETTE[i % len(PALETTE)]}}
        for i, (name, values) in enumerate(series)
    ]
    mode = "stack" if stacked else "group"
    return {"data": data, "layout": _layout(title, ytitle, barmode=mode, hovermode="closest")}


def boxes(title: str, series: Sequence[tuple[str, Sequence[float]]], ytitle: str) -> Figure:
    """The distribution of each (name, values) as a box with every sample as a point beside
    it: total cost per simulated plan, side by side."""
    data = [
        {"type": "box", "y": list(values), "name": name, "boxpoints": "all", "jitter": 0.4}
        | {"pointpos": -1.6, "marker": {"color": PALETTE[i % len(PALETTE)], "size": 4}}
        | {"boxmean": True}
        for i, (name, values) in enumerate(series)
    ]
    layout = _layout(title, ytitle, hovermode="closest", showlegend=False)
    layout["yaxis"]["rangemode"] = "normal"  # costs far from 0: zero would flatten the boxes
    return {"data": data, "layout": layout}


def figure_div(figure: Figure, div_id: str) -> str:
    """The figure as a `<div>` and the script that draws it, without plotly.js (the page
    holds it once). "</" in the JSON (a name like `</script>`) cannot end the script."""
    spec = json.dumps(
        [figure["data"], figure["layout"], PLOT_CONFIG], separators=(",", ":"), ensure_ascii=False
    ).replace("</", "<\\/")
    height = figure["layout"]["height"]
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{height}px">'
        f'</div><script type="text/javascript">Plotly.newPlot("{div_id}",...{spec});</script>'
    )


def plotly_js() -> str:
    """plotly.js, minified, as shipped inside the plotly wheel: the page's one copy."""
    from plotly.offline import get_plotlyjs

    js: str = get_plotlyjs()
    return js
