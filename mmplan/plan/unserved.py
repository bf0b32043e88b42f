"""Why volume went unserved, per demand pair: the penalty, part-full trucks, or capacity.

A package goes unserved when the penalty π is the cheapest thing to pay for it. For a pair
(o, t) take the cheapest path at full trucks (intermediate facilities of transit kinds
only), handling at every facility on it included, and price it two ways:

    full  = Σ_lanes (f_a / u_a + c_a) + Σ_facilities h_n          (every truck full)
    alone = Σ_lanes (f_a / min(v, u_a) + c_a) + Σ_facilities h_n  (the pair's day volume v
                                                                   alone on its trucks)

π < full: no plan would carry it, however full its trucks (the reason is the penalty,
"raise [optimize] unserved_penalty"); full <= π < alone: carrying it pays only on trucks
fuller than its volume fills; π >= alone: carrying it alone would cost less than π, so
what stopped it is capacity (a facility, a lane's max_trucks, or the price of adding
capacity). The default penalty is above `alone` for any pair of at least one package a day
(mmplan.plan.network.default_penalty), so with it the reason is capacity unless a pair asks
for less than a package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mmplan.plan.network import Network

__all__ = ["REASONS", "carry_costs", "unserved_reasons"]

# Reason codes, in the order the summary lists them.
REASONS = ("penalty", "truck_fill", "capacity", "no_route")


def _cheapest(net: Network, origin: int, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cost from `origin` to every facility over paths whose inner facilities are transit
    kinds (Bellman-Ford, at most |T| + 1 lanes), handling at the origin included, and the
    last lane of each cheapest path (-1 where none)."""
    dist = np.full(net.n, np.inf)
    dist[origin] = net.handling[origin]
    pred = np.full(net.n, -1, dtype=np.int64)
    lanes = np.flatnonzero(net.transit[net.lo] | (net.lo == origin))
    for _ in range(int(net.transit.sum()) + 1):
        cand = dist[net.lo[lanes]] + weight[lanes]
        better = cand < dist[net.ld[lanes]]
        if not better.any():
            break
        a, c = lanes[better], cand[better]
        order = np.lexsort((c, net.ld[a]))  # by facility, cheapest first
        a, c = a[order], c[order]
        _, first = np.unique(net.ld[a], return_index=True)
        dist[net.ld[a[first]]] = c[first]
        pred[net.ld[a[first]]] = a[first]
    return dist, pred


def carry_costs(
    net: Network, origins: np.ndarray, destinations: np.ndarray, volumes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (facility indices), the cost per package of its cheapest path with full
    trucks, and on that path the cost per package of `volumes` (a day's) carried alone,
    paying its trucks (see the module docstring)."""
    full_w = net.f / net.u + net.c + net.handling[net.ld]
    full = np.full(len(origins), np.inf)
    alone = np.full(len(origins), np.inf)
    for o in np.unique(origins).tolist():
        dist, pred = _cheapest(net, o, full_w)
        for i in np.flatnonzero(origins == o).tolist():
            t = int(destinations[i])
            full[i] = alone[i] = dist[t]
            while t != o and pred[t] >= 0 and np.isfinite(full[i]):
                a = pred[t]
                alone[i] += net.f[a] / min(float(volumes[i]), net.u[a]) - net.f[a] / net.u[a]
                t = int(net.lo[a])
    return full, alone


def _message(reason: str, penalty: float, full: float, alone: float) -> str:
    """What the summary says of a reason, with the penalty and the pair's carrying costs."""
    if reason == "penalty":
        return (
            f"the penalty ({penalty:,.4g} per package) is below the cost of carrying it "
            f"(at least {full:,.4g} per package on the cheapest path, trucks full): raise "
            "[optimize] unserved_penalty"
        )
    if reason == "truck_fill":
        return (
            f"the penalty ({penalty:,.4g} per package) pays for full trucks ({full:,.4g} per "
            f"package) but not for the part-full trucks its volume fills ({alone:,.4g} per "
            "package alone), or capacity binds; raise [optimize] unserved_penalty to serve it"
        )
    if reason == "no_route":
        return "no path of lanes through transit facilities reaches it"
    return "capacity ran out"


def unserved_reasons(
    net: Network, unserved: pl.DataFrame, penalty: float, top: int = 10
) -> dict[str, Any]:
    """Why the plan's unserved volume is unserved: per reason its volume, pairs and message
    (the costs of its worst pair), and the `top` pairs by volume with their reason."""
    pairs = (
        unserved.group_by("origin", "destination")
        .agg(pl.col("volume").sum(), pl.col("volume").mean().alias("per_day"))
        .sort("volume", "origin", "destination", descending=[True, False, False])
    )
    if pairs.is_empty():
        return {"reasons": [], "pairs": []}
    index = {name: i for i, name in enumerate(net.names.tolist())}
    po = np.array([index[o] for o in pairs["origin"].to_list()], dtype=np.int64)
    pt = np.array([index[t] for t in pairs["destination"].to_list()], dtype=np.int64)
    full, alone = carry_costs(net, po, pt, pairs["per_day"].to_numpy())
    reason = np.select(
        [~np.isfinite(full), penalty < full, penalty < alone],
        ["no_route", "penalty", "truck_fill"],
        "capacity",
    )
    pairs = pairs.drop("per_day").with_columns(
        pl.Series("reason", reason, dtype=pl.String),
        # null, not infinity, where no path reaches: summary.json is JSON
        pl.Series("cost_full_trucks", np.where(np.isfinite(full), full, np.nan)).fill_nan(None),
        pl.Series("cost_alone", np.where(np.isfinite(alone), alone, np.nan)).fill_nan(None),
    )
    reasons = []
    for code in REASONS:
        mine = pairs.filter(pl.col("reason") == code)
        if mine.is_empty():
            continue
        first = mine.row(0, named=True)  # the pair with the most volume
        reasons.append(
            {
                "reason": code,
                "volume": float(mine["volume"].sum()),
                "pairs": mine.height,
                "message": _message(code, penalty, first["cost_full_trucks"], first["cost_alone"]),
            }
        )
    return {"reasons": reasons, "pairs": pairs.head(top).to_dicts()}
