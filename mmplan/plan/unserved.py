"""Why volume went unserved, per demand pair: the penalty, part-full trucks, or capacity.

A package goes unserved when the penalty π is the cheapest thing to pay for it. For a pair
(o, t) let the cheapest path (intermediate facilities of transit kinds only) be priced two
ways, handling at every facility on it included:

    full  = Σ_lanes (f_a / u_a + c_a) + Σ_facilities h_n   (every truck full)
    whole = Σ_lanes (f_a + c_a) + Σ_facilities h_n         (one package pays a whole truck)

π < full: no plan would carry it, however full its trucks (the reason is the penalty,
"raise [optimize] unserved_penalty"); full <= π < whole: carrying it pays only on trucks
fuller than its volume fills; π >= whole: carrying one more package costs less than π on
an empty path, so what stopped it is capacity (a facility, or a lane's max_trucks, or the
price of adding capacity). The default penalty is above `whole` for every pair
(mmplan.plan.network.default_penalty), so with it the reason is always capacity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mmplan.plan.network import Network

__all__ = ["REASONS", "carry_costs", "unserved_reasons"]

# Reason codes, in the order the summary lists them.
REASONS = ("penalty", "truck_fill", "capacity", "no_route")


def _cheapest(net: Network, origin: int, weight: np.ndarray) -> np.ndarray:
    """Cost from `origin` to every facility over paths whose inner facilities are transit
    kinds (Bellman-Ford, at most |T| + 1 lanes), handling at the origin included."""
    dist = np.full(net.n, np.inf)
    dist[origin] = net.handling[origin]
    leaves = net.transit[net.lo] | (net.lo == origin)
    lo, ld, w = net.lo[leaves], net.ld[leaves], weight[leaves]
    for _ in range(int(net.transit.sum()) + 1):
        new = dist.copy()
        np.minimum.at(new, ld, dist[lo] + w)
        if np.array_equal(new, dist):
            break
        dist = new
    return dist


def carry_costs(
    net: Network, origins: np.ndarray, destinations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (facility indices), the cost per package of its cheapest path with full
    trucks and with a whole truck per lane for one package (see the module docstring)."""
    full_w = net.f / net.u + net.c + net.handling[net.ld]
    whole_w = net.f + net.c + net.handling[net.ld]
    full = np.full(len(origins), np.inf)
    whole = np.full(len(origins), np.inf)
    for o in np.unique(origins).tolist():
        at = origins == o
        full[at] = _cheapest(net, o, full_w)[destinations[at]]
        whole[at] = _cheapest(net, o, whole_w)[destinations[at]]
    return full, whole


def _message(reason: str, penalty: float, full: float, whole: float) -> str:
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
            f"package) but not for part-full ones (up to {whole:,.4g}): its volume does not "
            "fill trucks, or capacity binds; raise [optimize] unserved_penalty to serve it"
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
        .agg(pl.col("volume").sum())
        .sort("volume", "origin", "destination", descending=[True, False, False])
    )
    if pairs.is_empty():
        return {"reasons": [], "pairs": []}
    index = {name: i for i, name in enumerate(net.names.tolist())}
    po = np.array([index[o] for o in pairs["origin"].to_list()], dtype=np.int64)
    pt = np.array([index[t] for t in pairs["destination"].to_list()], dtype=np.int64)
    full, whole = carry_costs(net, po, pt)
    reason = np.select(
        [~np.isfinite(full), penalty < full, penalty < whole],
        ["no_route", "penalty", "truck_fill"],
        "capacity",
    )
    pairs = pairs.with_columns(
        pl.Series("reason", reason, dtype=pl.String),
        # null, not infinity, where no path reaches: summary.json is JSON
        pl.Series("cost_full_trucks", np.where(np.isfinite(full), full, np.nan)).fill_nan(None),
        pl.Series("cost_one_package", np.where(np.isfinite(whole), whole, np.nan)).fill_nan(None),
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
                "message": _message(
                    code, penalty, first["cost_full_trucks"], first["cost_one_package"]
                ),
            }
        )
    return {"reasons": reasons, "pairs": pairs.head(top).to_dicts()}
