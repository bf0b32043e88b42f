"""The synthetic network's tables: nodes with capacities sized on the noise-free volume,
lanes with truck sizes, costs and caps, and the history rows (step 6 of
`mmplan.synthetic`'s generative model, and the history contract's sparse lanes).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from mmplan.config import SampleConfig
from mmplan.synthetic.network import Net

HORIZON = 28  # days after the history whose expected volume sizes capacities


RECENT = 28  # last days of history that also size them


# Truck sizes (packages per truck) by lane type: 53' trailers between big buildings,
# smaller trucks on the last middle-mile leg into delivery stations.
TRUCK_SIZES = {
    "FC-SC": [2600.0, 2800.0, 3000.0],
    "SC-SC": [2400.0, 2600.0, 2800.0],
    "SC-DS": [1500.0, 1800.0, 2000.0, 2200.0],
    "FC-DS": [2400.0, 2600.0],
}


def _throughput(net: Net, lane_o: np.ndarray, lane_d: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Packages sorted per node and day: the larger of inbound and outbound."""
    n = len(net.names)
    out = np.zeros((n, flow.shape[1]))
    inn = np.zeros((n, flow.shape[1]))
    np.add.at(out, lane_o, flow)
    np.add.at(inn, lane_d, flow)
    return np.maximum(out, inn)


@dataclass
class _Ends:
    """Each lane's origin and destination node (by lane index), type and road miles."""

    origin: np.ndarray
    destination: np.ndarray
    lane_type: np.ndarray
    miles: np.ndarray


def _lane_ends(net: Net) -> _Ends:
    ends = np.array(sorted(net.lanes, key=lambda od: net.lanes[od]))
    lane_o, lane_d = ends[:, 0], ends[:, 1]
    kinds = np.array(net.kinds)
    lane_type = np.char.add(np.char.add(kinds[lane_o], "-"), kinds[lane_d])
    return _Ends(lane_o, lane_d, lane_type, net.miles(lane_o, lane_d))


def _nodes_table(
    days: int,
    rng: np.random.Generator,
    net: Net,
    region_names: list[str],
    expected: np.ndarray,
    ends: _Ends,
    gateway: dict[int, int],
) -> pl.DataFrame:
    """Nodes with handling costs and capacities: a few SCs bind, with extra capacity for
    sale at an overtime premium; DSs are unlimited."""
    # Capacity is sized on the noise-free volume of the recent past and the planning
    # horizon; the lower of the two peaks, so a binding facility binds in both.
    recent = slice(days - RECENT, days)
    ahead = slice(days, days + HORIZON)
    thru = _throughput(net, ends.origin, ends.destination, expected)
    peak_ref = np.minimum(thru[:, recent].max(axis=1), thru[:, ahead].max(axis=1))
    peak_max = np.maximum(thru[:, recent].max(axis=1), thru[:, ahead].max(axis=1))

    n = len(net.names)
    capacity = np.full(n, np.nan)
    extra = np.full(n, np.nan)
    extra_cost = np.full(n, np.nan)
    handling = np.zeros(n)
    handling[net.fcs] = rng.uniform(0.30, 0.45, len(net.fcs))
    handling[net.scs] = rng.uniform(0.18, 0.32, len(net.scs))
    handling[net.dss] = rng.uniform(0.10, 0.20, len(net.dss))
    busy_sc = net.scs[peak_ref[net.scs] > 0]
    # Binding SCs: preferably not gateways, whose inbound FC volume has no other way in.
    n_bind = min(len(busy_sc), max(1, math.ceil(0.2 * len(net.scs))))
    pool = np.array([s for s in busy_sc if s not in gateway.values()] or busy_sc, dtype=int)
    if len(pool) < n_bind:
        pool = busy_sc
    binding = rng.choice(pool, n_bind, replace=False) if n_bind else np.zeros(0, int)
    for group, low, high in ((net.fcs, 1.3, 1.5), (net.scs, 1.2, 1.45)):
        capacity[group] = rng.uniform(low, high, len(group)) * np.maximum(peak_max[group], 100)
    capacity[binding] = rng.uniform(0.82, 0.92, len(binding)) * peak_ref[binding]
    capacity = np.maximum(np.round(capacity, -2), 100.0)
    bigs = np.concatenate([net.fcs, net.scs])
    extra[bigs] = np.round(np.where(np.isin(bigs, binding), 0.3, 0.15) * capacity[bigs], -2)
    extra_cost[bigs] = np.round(rng.uniform(0.8, 1.4, len(bigs)), 3)  # overtime premium
    return pl.DataFrame(
        {
            "node": net.names,
            "kind": net.kinds,
            "region": [region_names[r] for r in net.regions],
            "capacity": capacity,
            "handling_cost": np.round(handling, 3),
            "extra_capacity": extra,
            "extra_capacity_cost": extra_cost,
        }
    ).with_columns(pl.col("capacity", "extra_capacity", "extra_capacity_cost").fill_nan(None))


def _lanes_table(
    days: int,
    rng: np.random.Generator,
    net: Net,
    expected: np.ndarray,
    ends: _Ends,
    serve: list[list[tuple[int, float]]],
) -> pl.DataFrame:
    """Lanes: trucks sized by lane type, cost by distance, transit one day per ~550 miles,
    and caps on trucks per day, a few of them binding."""
    lane_o, lane_d, miles = ends.origin, ends.destination, ends.miles
    n_lane = len(lane_o)
    recent = slice(days - RECENT, days)
    ahead = slice(days, days + HORIZON)
    truck = np.array([rng.choice(TRUCK_SIZES[t]) for t in ends.lane_type])
    lane_peak = np.minimum(expected[:, recent].max(axis=1), expected[:, ahead].max(axis=1))
    need = np.ceil(lane_peak / truck).astype(int)
    dual = {
        s
        for j, srv in enumerate(serve)
        if len(srv) == 2
        for s in [(srv[0][0], int(net.dss[j])), (srv[1][0], int(net.dss[j]))]
    }
    max_trucks = np.full(n_lane, -1)
    n_cap = max(1, round(0.02 * n_lane))
    # Binding truck caps (dock doors, carrier contracts) where volume has another way:
    # SC -> DS lanes of DSs served by two SCs first, then any lane needing 2+ trucks.
    is_dual = np.array([(o, d) in dual for o, d in zip(lane_o, lane_d, strict=True)], bool)
    first = np.flatnonzero((need >= 2) & is_dual)
    second = np.flatnonzero((need >= 2) & ~is_dual)
    chosen = list(rng.permutation(first))[:n_cap]
    chosen += list(rng.permutation(second))[: n_cap - len(chosen)]
    chosen_a = np.array(chosen, dtype=int)
    max_trucks[chosen_a] = need[chosen_a] - 1
    rest = np.flatnonzero((max_trucks < 0) & (need >= 1))
    loose = rng.choice(rest, int(0.25 * len(rest)), replace=False) if len(rest) else rest
    max_trucks[loose] = need[loose] + rng.integers(1, 4, len(loose))
    return pl.DataFrame(
        {
            "origin": [net.names[o] for o in lane_o],
            "destination": [net.names[d] for d in lane_d],
            "truck_capacity": truck,
            "cost_per_truck": np.round(150 + 2.1 * miles, 2),
            "cost_per_package": np.round(0.01 + 0.00005 * miles + rng.uniform(0, 0.01, n_lane), 4),
            "max_trucks": pl.Series(
                [int(m) if m >= 0 else None for m in max_trucks], dtype=pl.Int64
            ),
            "transit_days": pl.Series(1 + (miles // 550).astype(int), dtype=pl.Int64),
            "miles": np.round(miles, 1),
        }
    )


def _history_table(
    cfg: SampleConfig,
    net: Net,
    region_names: list[str],
    expected: np.ndarray,
    volume: np.ndarray,
    sparse_lane: np.ndarray,
    ends: _Ends,
) -> pl.DataFrame:
    """History rows: every active day of every lane; sparse lanes only on days with
    volume. Sorted by lane (origin, destination), then date."""
    lane_o, lane_d = ends.origin, ends.destination
    n_lane = len(lane_o)
    active = expected[:, : cfg.days] > 1e-9
    keep = active & (~sparse_lane[:, None] | (volume > 0))
    li, ti = np.nonzero(keep)
    epoch = (cfg.start - dt.date(1970, 1, 1)).days
    region = np.array(region_names)[net.regions]
    names = pl.Series(net.names)
    history = pl.DataFrame(
        {
            "date": pl.Series(ti + epoch, dtype=pl.Int32).cast(pl.Date),
            "origin": names.gather(lane_o[li]),
            "destination": names.gather(lane_d[li]),
            "volume": np.asarray(volume)[li, ti].astype(np.float64),
            "origin_region": pl.Series(region[lane_o[li]]),
            "destination_region": pl.Series(region[lane_d[li]]),
            "lane_type": pl.Series(ends.lane_type[li]),
        }
    )
    order = np.lexsort((lane_d, lane_o))
    rank = np.empty(n_lane, int)
    rank[order] = np.arange(n_lane)
    return history.with_columns(_r=pl.Series(rank[li])).sort("_r", "date").drop("_r")


def build(
    cfg: SampleConfig,
    rng: np.random.Generator,
    net: Net,
    region_names: list[str],
    expected: np.ndarray,
    volume: np.ndarray,
    sparse_lane: np.ndarray,
    serve: list[list[tuple[int, float]]],
    gateway: dict[int, int],
) -> dict[str, pl.DataFrame]:
    """Nodes with capacities, lanes with costs, and the history rows."""
    ends = _lane_ends(net)
    nodes = _nodes_table(cfg.days, rng, net, region_names, expected, ends, gateway)
    lanes = _lanes_table(cfg.days, rng, net, expected, ends, serve)
    history = _history_table(cfg, net, region_names, expected, volume, sparse_lane, ends)
    lanes = lanes.sort("origin", "destination")
    kind_order = {"FC": 0, "SC": 1, "DS": 2}
    nodes = nodes.sort(pl.col("kind").replace_strict(kind_order), "node")
    return {"history": history, "nodes": nodes, "lanes": lanes}


def with_market(out: dict[str, pl.DataFrame], market: str) -> dict[str, pl.DataFrame]:
    """The sample as one market of a bigger network (`[sample] market`, `--market`): every
    facility name prefixed with `<market>-` and a `market` column on the history, so that
    samples of several markets can be stacked side by side."""
    prefix = f"{market}-"

    def named(df: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
        return df.with_columns(*[(pl.lit(prefix) + pl.col(c)).alias(c) for c in cols])

    history = named(out["history"], ["origin", "destination"]).with_columns(
        pl.lit(market).alias("market")
    )
    return {
        **out,
        "history": history,
        "nodes": named(out["nodes"], ["node"]),
        "lanes": named(out["lanes"], ["origin", "destination"]),
    }
