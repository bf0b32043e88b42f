"""Promised days per origin-destination pair and date, from a plan's paths (`mmplan promise`).

A plan's flows (per pair, lane and date) split into paths: from the origin, follow the lane
carrying most of the pair's remaining volume to the destination, take the smallest volume on
the way, subtract, repeat. A path's days are

    days(path) = Σ_lanes transit_days + Σ_facilities it leaves dwell_days[kind]

(the origin and every facility passed through; none at the destination; `[optimize]
dwell_days` per facility kind). Per pair and date each path carries a share of the volume,
and the promise is the fewest days d such that the paths of at most d days carry at least
`[promise] share` of it. The optimizer does not use transit_days or dwell when choosing
trucks: a promise reports what the plan's routes take, it does not shape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mmplan.config import OptimizeConfig, PromiseConfig
from mmplan.errors import DataError

__all__ = ["PromiseResult", "promise", "PROMISE_SCHEMA"]

PROMISE_SCHEMA = {
    "origin": pl.String,
    "destination": pl.String,
    "date": pl.Date,
    "path": pl.String,
    "path_days": pl.Float64,
    "volume": pl.Float64,
    "share": pl.Float64,
    "promised_days": pl.Float64,
    "covered_share": pl.Float64,
}


@dataclass
class PromiseResult:
    """One row per pair, date and path (with the pair's promise), and a summary."""

    table: pl.DataFrame
    summary: dict[str, Any]


def _paths(edges: dict[str, dict[str, float]], o: str, t: str) -> list[tuple[list[str], float]]:
    """A pair's lane volumes split into paths (facility lists) and their volumes."""
    out = []
    total = sum(edges.get(o, {}).values())
    while total > 1e-9:
        path, node, seen = [o], o, {o}
        while node != t:
            nxt = {k: v for k, v in edges.get(node, {}).items() if v > 1e-9 and k not in seen}
            if not nxt:
                break
            node = max(nxt, key=lambda k: nxt[k])
            path.append(node)
            seen.add(node)
        if node != t:
            break  # what is left cycles or strands: it reaches no destination
        v = min(edges[a][b] for a, b in zip(path, path[1:], strict=False))
        for a, b in zip(path, path[1:], strict=False):
            edges[a][b] -= v
        out.append((path, v))
        total = sum(edges.get(o, {}).values())
    return out


def promise(
    flows: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    optimize: OptimizeConfig,
    config: PromiseConfig,
    source: str = "lanes",
) -> PromiseResult:
    """Per pair, date and path its days and share, and the pair's promised days."""
    if "transit_days" not in lanes.columns:
        raise DataError(f"{source}: no column 'transit_days'; promises need each lane's.")
    nulls = lanes.with_row_index("_r").filter(pl.col("transit_days").is_null())
    if nulls.height:
        where = ", ".join(str(r) for r in nulls["_r"].to_list()[:5])
        raise DataError(f"{source}: column 'transit_days' is null in rows {where}.")
    transit = {
        (o, d): float(t)
        for o, d, t in lanes.select("origin", "destination", "transit_days").iter_rows()
    }
    kind = dict(nodes.select("node", "kind").iter_rows())
    dwell = {n: optimize.dwell_days.get(k, 0.0) for n, k in kind.items()}
    rows: list[dict[str, Any]] = []
    grouped = flows.filter(pl.col("volume") > 0).group_by(
        "origin", "destination", "date", maintain_order=True
    )
    for (o, t, date), part in grouped:
        edges: dict[str, dict[str, float]] = {}
        for a, b, v in part.select("lane_origin", "lane_destination", "volume").iter_rows():
            edges.setdefault(a, {})[b] = edges.get(a, {}).get(b, 0.0) + v
        paths = _paths(edges, str(o), str(t))
        total = sum(v for _, v in paths)
        days = [
            sum(transit.get((a, b), np.nan) for a, b in zip(p, p[1:], strict=False))
            + sum(dwell.get(n, 0.0) for n in p[:-1])
            for p, _ in paths
        ]
        promised, covered = _promised(days, [v / total for _, v in paths], config.share)
        for (p, v), d in zip(paths, days, strict=True):
            rows.append(
                {
                    "origin": o,
                    "destination": t,
                    "date": date,
                    "path": " -> ".join(p),
                    "path_days": d,
                    "volume": v,
                    "share": v / total,
                    "promised_days": promised,
                    "covered_share": covered,
                }
            )
    table = pl.DataFrame(rows, schema=PROMISE_SCHEMA)
    return PromiseResult(table, _summary(table, config))


def _promised(days: list[float], shares: list[float], target: float) -> tuple[float, float]:
    """The fewest days whose paths carry at least `target` of the volume, and their share."""
    d, w = np.asarray(days), np.asarray(shares)
    for value in np.unique(d):
        covered = float(w[d <= value].sum())
        if covered >= target - 1e-9:
            return float(value), min(covered, 1.0)
    return float(d.max()), 1.0


def _summary(table: pl.DataFrame, config: PromiseConfig) -> dict[str, Any]:
    pairs = table.unique(["origin", "destination", "date"])
    weights = table.group_by("origin", "destination", "date").agg(
        pl.col("volume").sum(), pl.col("promised_days").first()
    )
    hist = weights.group_by("promised_days").agg(pl.col("volume").sum()).sort("promised_days")
    return {
        "share": config.share,
        "pairs_dates": pairs.height,
        "paths": table.height,
        "volume_by_promised_days": {
            f"{d:g}": float(v) for d, v in hist.iter_rows() if d is not None
        },
        "max_promised_days": float(weights["promised_days"].fill_null(0.0).max() or 0.0),  # type: ignore[arg-type]
    }
