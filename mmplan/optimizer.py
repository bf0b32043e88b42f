"""Truck and routing plan: a fixed-charge multicommodity network design MIP per date.

Formulation, solved independently for every date (days share no variables):

    Sets      N facilities, T ⊆ N transit facilities (kind in config.transit_kinds),
              A lanes a = (i, j), P demand pairs p = (o, t) with volume d_p,
              K commodities: one per origin o (or per destination, whichever is fewer that
              day; the destination case is the same model on the reversed network).
    Variables x_ka >= 0  volume of commodity k on lane a      (only where lane a can carry k:
                         i = k or i ∈ T, and j ∈ T or j is a destination of k)
              y_a ∈ Z+   trucks on lane a,      y_a <= max_trucks_a
              z_n >= 0   capacity added at n,   z_n <= extra_capacity_n
              s_p >= 0   unserved volume of pair p, s_p <= d_p
    Flow      Σ_a∈out(n) x_ka - Σ_a∈in(n) x_ka = Σ_t (d_kt - s_kt)  at n = k
                                                 = -(d_kn - s_kn)     at n ≠ k
    Trucks    Σ_k x_ka <= u_a y_a                    (u_a = truck_capacity)
              x_ka <= min(b_ka, u_a) y_a             (strong linking; b_ka = the most of k
                                                      that can use a: d_kj if j ∉ T, else
                                                      Σ d_kt over t reachable from j)
    Capacity  θ_n >= Σ_a∈in(n) Σ_k x_ka,  θ_n >= Σ_a∈out(n) Σ_k x_ka,  θ_n <= cap_n + z_n
              throughput θ_n = packages sorted at n: the larger of the volume arriving and
              the volume leaving on lanes (as `mmplan sample` sizes capacities; a package
              passing through counts once, one starting or ending at n counts once)
    Objective min Σ_a f_a y_a + Σ_ka c_a x_ka + Σ_n h_n θ_n + Σ_n e_n z_n + Σ_p π s_p

Unserved volume is allowed at penalty π, by default one more than the dearest path a package
can take (the longest simple path, |T|+1 lanes, priced at the top lane costs with a whole
truck each, plus handling and added capacity at every facility on it), so volume goes
unserved only when capacity truly runs out.

Besides strong linking, lanes into a delivery station get residual-capacity cuts
x_ka - r·y_a <= b - r·ceil(b/u_a), r = b - (ceil(b/u_a) - 1)·u_a, for commodities needing more
than one truck; a demand D_kt ending at a transit facility t with a lane a = (k, t) gets the
rounding cut y_a + (Σ_{b∈in(t), b≠a} x_kb + s_kt) / (f·u_a) >= ceil(D_kt/u_a), f = frac(D_kt/u_a)
(a partly filled last truck is paid whole or avoided by re-routing). `transit_days` is
ignored: every lane delivers on the day it ships, which is what makes the dates independent.

Method per date: the LP relaxation with those cuts (a lower bound); slope scaling for a first
plan (re-solve the flow LP with each lane's truck cost spread over the volume it carries,
round trucks up); SCIP on the MIP restricted to that plan's trucks (y <= y_plan: a small,
tight neighbourhood; no root cut rounds, it is there to find plans); then SCIP on the full
MIP (without the pair rounding cuts, which its own root cuts match) with the best plan as a
hint, for the bound and further improvement, until the date's share of the time limit or
the relative gap. Dates run in
parallel on `workers` threads (SCIP and GLOP release the GIL); a date's share is what is
left divided among the dates not yet started. Every plan is checked independently of the
model (conservation per pair, lane and facility capacity, whole trucks, transit kinds)
before it is returned. Facility shadow prices are the duals of the capacity rows of the LP
with trucks fixed at the plan's values (with --relax: of the relaxation itself).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from mmplan.config import OptimizeConfig
from mmplan.errors import DataError, InfeasibleError, UsageError
from mmplan.logs import checkpoint  # checkpoint
from mmplan.tables import validate_demand, validate_lanes, validate_nodes

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = [
    "Plan",
    "optimize",
    "optimize_scenarios",
    "demand_rows",
    "demand_columns",
    "default_penalty",
]

# Volumes below this fraction of the largest demand are solver noise, not packages.
_NOISE = 1e-7
# Absolute slack allowed when checking a solution, relative to the largest demand.
_TOL = 1e-5


@dataclass
class Plan:
    """An optimized plan: the four plan tables and the summary written to summary.json."""

    trucks: pl.DataFrame
    flows: pl.DataFrame
    nodes: pl.DataFrame
    unserved: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- network


@dataclass
class _Network:
    names: np.ndarray
    kind: np.ndarray
    cap: np.ndarray  # inf where unlimited
    handling: np.ndarray
    extra: np.ndarray  # 0 where none can be added
    extra_cost: np.ndarray
    transit: np.ndarray  # bool
    lo: np.ndarray  # lane origin index
    ld: np.ndarray  # lane destination index
    u: np.ndarray
    f: np.ndarray
    c: np.ndarray
    maxt: np.ndarray  # inf where unlimited

    @property
    def n(self) -> int:
        return len(self.names)

    def reversed(self) -> _Network:
        """The same network with every lane pointing the other way."""
        return _Network(**{**self.__dict__, "lo": self.ld, "ld": self.lo})


def _fail(what: str, problems: list[str]) -> None:
    if problems:
        raise DataError(f"{what}: " + "; ".join(problems) + ". Fix the input and run again.")


def _names(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _network(nodes: pl.DataFrame, lanes: pl.DataFrame, config: OptimizeConfig) -> _Network:
    """Check nodes and lanes for everything the optimizer relies on, and index them."""
    _fail("nodes table is not valid", [p.describe() for p in validate_nodes(nodes)])
    _fail("lanes table is not valid", [p.describe() for p in validate_lanes(lanes, nodes)])
    for opt in ("extra_capacity", "extra_capacity_cost"):
        if opt not in nodes.columns:
            nodes = nodes.with_columns(pl.lit(None, dtype=pl.Float64).alias(opt))
    for opt in ("cost_per_package", "max_trucks"):
        if opt not in lanes.columns:
            lanes = lanes.with_columns(pl.lit(None, dtype=pl.Float64).alias(opt))
    nodes = nodes.with_columns(
        pl.col("capacity", "handling_cost", "extra_capacity", "extra_capacity_cost").cast(
            pl.Float64
        )
    )
    lanes = lanes.with_columns(
        pl.col("truck_capacity", "cost_per_truck", "cost_per_package", "max_trucks").cast(
            pl.Float64
        )
    )
    # Contradictory limits (extra capacity without a price or on top of unlimited capacity,
    # fractional max_trucks) are part of the table checks above.

    names = nodes["node"].to_numpy().astype(str)
    index = {n: i for i, n in enumerate(names)}
    return _Network(
        names=names,
        kind=nodes["kind"].to_numpy().astype(str),
        cap=nodes["capacity"].fill_null(np.inf).to_numpy(),
        handling=nodes["handling_cost"].to_numpy(),
        extra=nodes["extra_capacity"].fill_null(0.0).to_numpy(),
        extra_cost=nodes["extra_capacity_cost"].fill_null(0.0).to_numpy(),
        transit=np.isin(nodes["kind"].to_numpy().astype(str), list(config.transit_kinds)),
        lo=np.array([index[o] for o in lanes["origin"].to_list()], dtype=np.int64),
        ld=np.array([index[d] for d in lanes["destination"].to_list()], dtype=np.int64),
        u=lanes["truck_capacity"].to_numpy(),
        f=lanes["cost_per_truck"].to_numpy(),
        c=lanes["cost_per_package"].fill_null(0.0).to_numpy(),
        maxt=lanes["max_trucks"].fill_null(np.inf).to_numpy(),
    )


def default_penalty(net: _Network) -> float:
    """A per-package penalty above the cost of carrying a package on any simple path.

    A path visits at most |T| transit facilities, so it has at most |T|+1 lanes and |T|+2
    facilities; price it with the dearest lanes (a whole truck each) and facilities.
    """
    hops = min(int(net.transit.sum()) + 1, len(net.lo))
    lane_cost = np.sort(net.f + net.c)[::-1][:hops].sum()
    node_cost = np.sort(net.handling + net.extra_cost)[::-1][: hops + 1].sum()
    return float(math.ceil(lane_cost + node_cost) + 1)


def _adjacency(net: _Network, rows: np.ndarray) -> sp.csr_matrix:
    """Lane adjacency keeping only lanes that leave a node where `rows` is True."""
    keep = rows[net.lo]
    return sp.csr_matrix((np.ones(keep.sum()), (net.lo[keep], net.ld[keep])), shape=(net.n,) * 2)


def _reach(adj: sp.csr_matrix, start: np.ndarray) -> np.ndarray:
    """Nodes reachable from any of `start` (bool mask), by a search from a super-source."""
    from scipy.sparse.csgraph import breadth_first_order

    n = adj.shape[0]
    src = sp.csr_matrix((np.ones(len(start)), (np.zeros(len(start), int), start)), shape=(1, n))
    big = sp.vstack(
        [sp.hstack([adj, sp.csr_matrix((n, 1))]), sp.hstack([src, sp.csr_matrix((1, 1))])]
    ).tocsr()
    order = breadth_first_order(big, n, directed=True, return_predecessors=False)
    mask = np.zeros(n + 1, dtype=bool)
    mask[order] = True
    return mask[:n]


# --------------------------------------------------------------------------- model


@dataclass
class _Model:
    """One date's MIP as sparse arrays; columns are [x | y | z | s]."""

    x_key: np.ndarray  # commodity node (origin, or destination when reversed)
    x_lane: np.ndarray
    y_lane: np.ndarray
    z_node: np.ndarray
    group: np.ndarray  # commodity id of each of the day's pairs
    lb: np.ndarray
    ub: np.ndarray
    obj: np.ndarray
    offset: float
    A: sp.csr_matrix
    rlo: np.ndarray
    rhi: np.ndarray
    cap_rows: np.ndarray  # row index of each capacitated node's capacity row
    cap_node: np.ndarray
    t_node: np.ndarray  # facility of each throughput column
    n_x: int
    n_y: int
    n_z: int
    n_s: int
    n_t: int
    # Rows of the pair rounding cuts: they lift the LP, but SCIP's own root cuts find as much
    # and its root LP is slower with them, so the full MIP drops them.
    pair_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Truck capacity of each y lane as the model has it: capped at the day's demand.
    y_cap: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_cols(self) -> int:
        return self.n_x + self.n_y + self.n_z + self.n_s + self.n_t

    @property
    def s_cols(self) -> np.ndarray:
        start = self.n_x + self.n_y + self.n_z
        return np.arange(start, start + self.n_s)

    @property
    def t_cols(self) -> np.ndarray:
        return np.arange(self.n_cols - self.n_t, self.n_cols)

    @property
    def y_cols(self) -> np.ndarray:
        return np.arange(self.n_x, self.n_x + self.n_y)


def _build(
    net: _Network,
    po: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    penalty: float,
    strong: bool = True,
    group: np.ndarray | None = None,
) -> _Model:
    """The MIP for one date as sparse arrays.

    Pairs with the same `group` id form one commodity; they must share an origin. By
    default a commodity is an origin (`group` = `po`), which is exact: a flow from one
    origin to many destinations always splits into paths.
    """
    n = net.n
    group = po if group is None else group
    keys = np.unique(group)
    # No lane carries more than the day's whole demand, so a truck bigger than that is the
    # same truck; capping it keeps trucks = volume / capacity far from the solver's
    # integrality tolerance (a 1e12-package truck left them at 1e-11).
    u = np.minimum(net.u, max(float(q.sum()), 1.0))
    transit_adj = _adjacency(net, net.transit)
    # Lanes pointing backwards, kept where the original tail may pass volume on.
    keep = net.transit[net.lo]
    rev_transit = sp.csr_matrix((np.ones(keep.sum()), (net.ld[keep], net.lo[keep])), shape=(n, n))
    # reach[j] = facilities a package at transit j can get to (j included), for tight b.
    reach = np.zeros((n, n), dtype=bool)
    for j in np.flatnonzero(net.transit):
        reach[j] = _reach(transit_adj, np.array([j]))
    xk, xa, xb = [], [], []
    for g in keys:
        mine = group == g
        k = po[mine][0]
        dk = np.zeros(n)
        np.add.at(dk, pt[mine], q[mine])
        # Volume of k leaves k and then moves only through transit facilities.
        first = net.ld[net.lo == k]
        fwd = _reach(transit_adj, first) if len(first) else np.zeros(n, bool)
        fwd[k] = True
        # Facilities from which a destination of k can be reached through transit only.
        bwd = _reach(rev_transit, np.flatnonzero(dk > 0))
        i, j = net.lo, net.ld
        ok = fwd[i] & bwd[j] & ((i == k) | net.transit[i]) & (j != k)
        ok &= net.transit[j] | (dk[j] > 0)
        lanes = np.flatnonzero(ok)
        xk.append(np.full(len(lanes), g))
        xa.append(lanes)
        heads = j[lanes]
        xb.append(np.where(net.transit[heads], reach[heads] @ dk, dk[heads]))
    x_key = np.concatenate(xk)
    x_lane = np.concatenate(xa)
    x_bound = np.concatenate(xb)
    n_x = len(x_key)

    y_lane = np.unique(x_lane)
    ypos = np.full(len(net.lo), -1)
    ypos[y_lane] = np.arange(len(y_lane))
    n_y = len(y_lane)
    # No lane needs more trucks than carry every package that could use it.
    could = np.bincount(ypos[x_lane], weights=x_bound, minlength=n_y)
    y_ub = np.minimum(net.maxt[y_lane], np.ceil(could / u[y_lane] - 1e-9))

    z_node = np.flatnonzero(net.extra > 0)
    n_z = len(z_node)
    n_s = len(q)
    pair_rows = np.zeros(0, dtype=np.int64)
    ox, oy, oz, os_ = 0, n_x, n_x + n_y, n_x + n_y + n_z
    ncol = os_ + n_s

    # Flow conservation rows: one per (commodity, node it touches).
    node_of_x_tail = net.lo[x_lane]
    node_of_x_head = net.ld[x_lane]
    touched_key = np.concatenate([x_key, x_key, group, group])
    touched_node = np.concatenate([node_of_x_tail, node_of_x_head, po, pt])
    pair_code = np.unique(touched_key * n + touched_node)
    n_cons = len(pair_code)

    def cons_row(key: np.ndarray, node: np.ndarray) -> np.ndarray:
        return np.searchsorted(pair_code, key * n + node)

    s_idx = np.arange(n_s)
    rows = [
        cons_row(x_key, node_of_x_tail),
        cons_row(x_key, node_of_x_head),
        cons_row(group, po),
        cons_row(group, pt),
    ]
    cols = [ox + np.arange(n_x), ox + np.arange(n_x), os_ + s_idx, os_ + s_idx]
    vals = [np.ones(n_x), -np.ones(n_x), np.ones(n_s), -np.ones(n_s)]
    rhs = np.zeros(n_cons)
    np.add.at(rhs, cons_row(group, po), q)
    np.add.at(rhs, cons_row(group, pt), -q)
    r = n_cons

    # Lane linking: all commodities together fit on the trucks.
    rows += [r + ypos[x_lane], r + np.arange(n_y)]
    cols += [ox + np.arange(n_x), oy + np.arange(n_y)]
    vals += [np.ones(n_x), -u[y_lane]]
    lo_parts = [rhs, np.full(n_y, -np.inf)]
    hi_parts = [rhs, np.zeros(n_y)]
    r += n_y

    if strong:
        # Per commodity: a lane with one truck carries at most min(b, u) of it.
        tight = np.flatnonzero(x_bound < u[x_lane] - 1e-9)
        m = len(tight)
        rows += [r + np.arange(m), r + np.arange(m)]
        cols += [ox + tight, oy + ypos[x_lane[tight]]]
        vals += [np.ones(m), -x_bound[tight]]
        lo_parts.append(np.full(m, -np.inf))
        hi_parts.append(np.zeros(m))
        r += m

    if strong:
        # Residual capacity cuts (Magnanti-Mirchandani-Vachani) for a commodity that needs
        # more than one truck: with eta = ceil(b/u) and r = b - (eta-1) u,
        # x - r y <= b - r eta; they cut off fractional trucks on multi-truck lanes.
        u_x = u[x_lane]
        eta = np.ceil(x_bound / u_x - 1e-9)
        rr = x_bound - (eta - 1) * u_x
        cut = np.flatnonzero(
            (eta >= 2) & (rr < u_x - 1e-6) & (rr > 1e-6) & ~net.transit[net.ld[x_lane]]
        )
        m = len(cut)
        rows += [r + np.arange(m), r + np.arange(m)]
        cols += [ox + cut, oy + ypos[x_lane[cut]]]
        vals += [np.ones(m), -rr[cut]]
        lo_parts.append(np.full(m, -np.inf))
        hi_parts.append(x_bound[cut] - rr[cut] * eta[cut])
        r += m

    if strong:
        # Pair rounding cuts. Take commodity g and a transit destination t of g with a lane
        # a = (k, t) straight from g's origin k. The demand D of g ending at t arrives on a, on
        # g's other lanes into t (R), or goes unserved (S): u_a y_a + R + S >= D. Its
        # mixed-integer rounding with f = frac(D / u_a), scaled by f u_a,
        #     f u_a y_a + R + S >= f u_a ceil(D / u_a),
        # says a partly filled last truck is paid for whole or avoided by re-routing; the LP
        # alone pays only the fraction. (Into facilities volume cannot pass through they
        # added nothing to the LP: strong linking and the residual capacity cuts cover
        # them.) Cuts with f < 5% lift the bound little and slow the LP down: on a
        # low-volume date GLOP took 4x longer with them.
        lane_code = np.sort(net.lo * n + net.ld)
        lane_at = np.argsort(net.lo * n + net.ld)
        code = group * n + pt
        uc, first, inv = np.unique(code, return_index=True, return_inverse=True)
        ct, want = uc % n, po[first] * n + uc % n
        pos = np.minimum(np.searchsorted(lane_code, want), len(lane_code) - 1)
        direct = np.where(lane_code[pos] == want, lane_at[pos], -1)
        ok = (direct >= 0) & net.transit[ct]
        ok[ok] = ypos[direct[ok]] >= 0
        ua = u[np.maximum(direct, 0)]
        need = np.bincount(inv, weights=q) / ua
        frac = need - np.floor(need)
        sel = np.flatnonzero(ok & (frac > 0.05))
        cpos = np.full(len(uc), -1)
        cpos[sel] = np.arange(len(sel))
        # g's flows into t on lanes other than a, and g's unserved volume ending at t.
        x_code = x_key * n + net.ld[x_lane]
        at = np.minimum(np.searchsorted(uc, x_code), len(uc) - 1)
        xs = np.flatnonzero((uc[at] == x_code) & (cpos[at] >= 0) & (x_lane != direct[at]))
        ss = np.flatnonzero(cpos[inv] >= 0)
        rem = frac[sel] * ua[sel]
        rows += [r + np.arange(len(sel)), r + cpos[at[xs]], r + cpos[inv[ss]]]
        cols += [oy + ypos[direct[sel]], ox + xs, os_ + ss]
        vals += [rem, np.ones(len(xs)), np.ones(len(ss))]
        lo_parts.append(rem * np.ceil(need[sel]))
        hi_parts.append(np.full(len(sel), np.inf))
        pair_rows = r + np.arange(len(sel))
        r += len(sel)

    if strong:
        # Facilities volume cannot pass through receive exactly the demand ending there
        # and send exactly the demand starting there: Σ_a u_a y_a >= D - s on their lanes.
        # Its mixed-integer rounding with U = the largest truck among those lanes,
        # Σ_a y_a + Σ s / (f U) >= ceil(D / U), f = frac(D / U), counts whole trucks.
        for end, lane_end in ((pt, net.ld), (po, net.lo)):
            total = np.bincount(end, weights=q, minlength=n)
            lane_at = lane_end[y_lane]
            big = np.zeros(n)
            np.maximum.at(big, lane_at, u[y_lane])
            need = np.divide(total, big, out=np.zeros(n), where=big > 0)
            frac = need - np.floor(need)
            nodes_ = np.flatnonzero(~net.transit & (total > 0) & (big > 0) & (frac > 1e-6))
            rpos = np.full(n, -1)
            rpos[nodes_] = np.arange(len(nodes_))
            ys = np.flatnonzero(rpos[lane_at] >= 0)
            ss = np.flatnonzero(rpos[end] >= 0)
            rows += [r + rpos[lane_at[ys]], r + rpos[end[ss]]]
            cols += [oy + ys, os_ + ss]
            vals += [np.ones(len(ys)), 1.0 / (frac[end[ss]] * big[end[ss]])]
            lo_parts.append(np.ceil(need[nodes_]))
            hi_parts.append(np.full(len(nodes_), np.inf))
            r += len(nodes_)

    # Throughput θ_n >= arrivals and >= departures on lanes (packages sorted at n).
    touched = np.zeros(n, bool)
    touched[node_of_x_head] = True
    touched[node_of_x_tail] = True
    t_node = np.flatnonzero(touched & ((net.handling > 0) | np.isfinite(net.cap)))
    n_t = len(t_node)
    ot = ncol
    ncol += n_t
    tpos = np.full(n, -1)
    tpos[t_node] = np.arange(n_t)
    for ends in (node_of_x_head, node_of_x_tail):
        xs = np.flatnonzero(tpos[ends] >= 0)
        rows += [r + tpos[ends[xs]], r + np.arange(n_t)]
        cols += [ox + xs, ot + np.arange(n_t)]
        vals += [-np.ones(len(xs)), np.ones(n_t)]
        lo_parts.append(np.zeros(n_t))
        hi_parts.append(np.full(n_t, np.inf))
        r += n_t
    # Facility capacity: θ_n <= cap_n + z_n.
    cap_node = t_node[np.isfinite(net.cap[t_node])]
    zpos = np.full(n, -1)
    zpos[z_node] = np.arange(n_z)
    zc = np.flatnonzero(zpos[cap_node] >= 0)
    rows += [r + np.arange(len(cap_node)), r + zc]
    cols += [ot + tpos[cap_node], oz + zpos[cap_node[zc]]]
    vals += [np.ones(len(cap_node)), -np.ones(len(zc))]
    lo_parts.append(np.full(len(cap_node), -np.inf))
    hi_parts.append(net.cap[cap_node])
    cap_rows = r + np.arange(len(cap_node))
    r += len(cap_node)

    A = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, ncol)
    )
    A.sum_duplicates()
    lb = np.zeros(ncol)
    ub = np.concatenate([np.full(n_x, np.inf), y_ub, net.extra[z_node], q, np.full(n_t, np.inf)])
    obj = np.concatenate(
        [
            net.c[x_lane],
            net.f[y_lane],
            net.extra_cost[z_node],
            np.full(n_s, penalty),
            net.handling[t_node],
        ]
    )
    return _Model(
        x_key,
        x_lane,
        y_lane,
        z_node,
        group,
        lb,
        ub,
        obj,
        0.0,
        A,
        np.concatenate(lo_parts),
        np.concatenate(hi_parts),
        cap_rows,
        cap_node,
        t_node,
        n_x,
        n_y,
        n_z,
        n_s,
        n_t,
        pair_rows,
        u[y_lane],
    )


def _stack(models: list[_Model]) -> _Model:
    """Several dates as one block-diagonal model (the plain single-model baseline)."""
    cat = np.concatenate
    parts = ["x", "y", "z", "s", "t"]
    # Reorder each model's columns into the global [x | y | z | s] layout.
    sizes = {p: [getattr(m, f"n_{p}") for m in models] for p in parts}
    starts = {}
    pos = 0
    for p in parts:
        starts[p] = pos + np.concatenate([[0], np.cumsum(sizes[p])[:-1]])
        pos += sum(sizes[p])
    perms, row_off, blocks = [], 0, []
    for b, m in enumerate(models):
        perm = np.concatenate([starts[p][b] + np.arange(getattr(m, f"n_{p}")) for p in parts])
        perms.append(perm)
        coo = m.A.tocoo()
        blocks.append((coo.row + row_off, perm[coo.col], coo.data))
        row_off += m.A.shape[0]
    ncol = pos
    A = sp.csr_matrix(
        (cat([b[2] for b in blocks]), (cat([b[0] for b in blocks]), cat([b[1] for b in blocks]))),
        shape=(row_off, ncol),
    )
    lb, ub, obj = np.zeros(ncol), np.zeros(ncol), np.zeros(ncol)
    for perm, m in zip(perms, models, strict=True):
        lb[perm], ub[perm], obj[perm] = m.lb, m.ub, m.obj
    first = models[0]
    return _Model(
        first.x_key,
        first.x_lane,
        first.y_lane,
        first.z_node,
        first.group,
        lb,
        ub,
        obj,
        sum(m.offset for m in models),
        A,
        cat([m.rlo for m in models]),
        cat([m.rhi for m in models]),
        np.zeros(0, int),
        np.zeros(0, int),
        np.zeros(0, int),
        *(sum(sizes[p]) for p in parts),
    )


# --------------------------------------------------------------------------- solving

# Ctrl-C must stop the whole run. SCIP and CP-SAT would catch SIGINT themselves and end
# only the solve at hand, and the run would go on to write a plan; so they are told not
# to, the solves run on daemon threads (the main thread gets the KeyboardInterrupt, and a
# SCIP solve, which OR-Tools cannot interrupt, does not hold up the exit), the run's solves
# that can be interrupted are, and the run starts no new ones. Each run has its own stop
# event (the solving threads carry it in _LOCAL), so an interrupted run in a notebook
# leaves nothing behind that stops the next one.
_ACTIVE: dict[threading.Event, set[Any]] = {}  # solves in flight, per run
_ACTIVE_LOCK = threading.Lock()
_LOCAL = threading.local()
_NO_SIGINT = {"SCIP": "misc/catchctrlc = FALSE\n", "CP-SAT": "catch_sigint_signal:false "}


class _Stopped(Exception):
    """Raised in a solving thread once its run is being interrupted."""


def _interrupt_solves(stop: threading.Event) -> None:
    with _ACTIVE_LOCK:
        stop.set()
        for solver in _ACTIVE.get(stop, ()):
            solver.interrupt_solve()


@dataclass
class _Result:
    status: str
    values: np.ndarray | None
    objective: float
    bound: float
    duals: np.ndarray | None = None
    seconds: float = 0.0


def _helper(
    m: _Model,
    integer: bool,
    lb: np.ndarray | None = None,
    ub: np.ndarray | None = None,
    obj: np.ndarray | None = None,
    pair_cuts: bool = True,
):
    import ortools.linear_solver.python.model_builder_helper as mbh

    A, rlo, rhi = m.A, m.rlo, m.rhi
    if not pair_cuts and len(m.pair_rows):
        keep = np.ones(A.shape[0], dtype=bool)
        keep[m.pair_rows] = False
        A, rlo, rhi = A[keep], rlo[keep], rhi[keep]
    h = mbh.ModelBuilderHelper()
    h.fill_model_from_sparse_data(
        m.lb if lb is None else lb,
        m.ub if ub is None else ub,
        m.obj if obj is None else obj,
        rlo,
        rhi,
        A,
    )
    h.set_objective_offset(m.offset)
    if integer:
        for col in m.y_cols.tolist():  # one call per truck variable; no vectorized setter
            h.set_var_integrality(col, True)
    return h


def _run(h, solver: str, time_limit: float, params: str = "") -> _Result:
    import ortools.linear_solver.python.model_builder_helper as mbh

    started = time.perf_counter()
    s = mbh.ModelSolverHelper(solver)
    s.set_time_limit_in_seconds(max(time_limit, 1e-4))
    params = _NO_SIGINT.get(solver, "") + params
    if params:
        s.set_solver_specific_parameters(params)
    stop = getattr(_LOCAL, "stop", None)  # None outside _map_on_threads (a Dask worker)
    with _ACTIVE_LOCK:
        if stop is not None and stop.is_set():
            raise _Stopped
        _ACTIVE.setdefault(stop, set()).add(s)
    try:
        s.solve(h)
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.get(stop, set()).discard(s)
    seconds = time.perf_counter() - started
    status = s.status()
    name = status.name if hasattr(status, "name") else str(status)
    if not s.has_solution():
        return _Result(name, None, math.inf, -math.inf, seconds=seconds)
    values = s.variable_values()
    duals = None
    if solver in ("GLOP", "PDLP"):
        duals = s.dual_values()
    bound = s.best_objective_bound()
    obj = s.objective_value()
    if solver in ("GLOP", "PDLP") and name == "OPTIMAL":
        bound = obj
    return _Result(name, np.asarray(values), obj, bound, duals, seconds)


def _mip_params(solver: str, gap: float, threads: int, scale: float | None = None) -> str:
    """Stopping rule: relative gap, or when `scale` is given, gap * scale absolute.

    Unserved volume forced by capacity costs the same in every plan and in the bound, yet
    at its high penalty it can dwarf the operating cost; the gap is then measured against
    the operating cost (`scale`), or SCIP would stop on a plan far from the best.
    """
    if scale is not None:
        if solver == "SCIP":
            return f"limits/gap = 0\nlimits/absgap = {gap * scale}\n"
        return f"absolute_gap_limit:{gap * scale} num_workers:{threads}"
    if solver == "SCIP":
        return f"limits/gap = {gap}\n"
    return f"relative_gap_limit:{gap} num_workers:{threads}"


def _lp(m: _Model, config: OptimizeConfig, time_limit: float, **kw) -> _Result:
    return _run(_helper(m, False, **kw), config.lp_solver, time_limit)


def _round_trucks(m: _Model, values: np.ndarray, net: _Network) -> np.ndarray:
    """Trucks that carry an LP's lane volumes: ceil(volume / truck capacity)."""
    load = np.bincount(
        np.searchsorted(m.y_lane, m.x_lane), weights=values[: m.n_x], minlength=m.n_y
    )
    u = m.y_cap
    y = np.ceil(load / u - 1e-6 * np.maximum(1.0, load / u))
    y = np.clip(y, 0, m.ub[m.y_cols])
    out = values.copy()
    out[m.y_cols] = y
    return _clean(m, out, net)


def _slope_scaling(
    m: _Model,
    net: _Network,
    config: OptimizeConfig,
    start: np.ndarray,
    deadline: float,
    rounds: int = 6,
) -> tuple[np.ndarray, float]:
    """Best rounded plan from flow LPs whose lane costs spread each truck over its load."""
    u, f = m.y_cap, net.f[m.y_lane]
    lane_of_x = np.searchsorted(m.y_lane, m.x_lane)
    best = _round_trucks(m, start, net)
    best_obj = float(m.obj @ best) + m.offset
    rho = f / u
    values = start
    stale = 0
    for _ in range(rounds):
        load = np.bincount(lane_of_x, weights=values[: m.n_x], minlength=m.n_y)
        used = load > 1e-9
        trucks = np.ceil(load / u - 1e-6)
        # Used lanes: the average truck cost per package they now carry. Unused lanes keep
        # their last rate, so a lane dropped once can come back if it pays.
        rho = np.where(used, f * np.maximum(trucks, 1) / np.maximum(load, 1e-9), rho)
        obj = m.obj.copy()
        obj[: m.n_x] += rho[lane_of_x]
        obj[m.y_cols] = 0.0
        left = deadline - time.perf_counter()
        if left <= 0.05:
            break
        res = _lp(m, config, left, obj=obj)
        if res.values is None:
            break
        values = res.values
        cand = _round_trucks(m, values, net)
        cand_obj = float(m.obj @ cand) + m.offset
        if cand_obj < best_obj - 1e-9 * abs(best_obj):
            best, best_obj, stale = cand, cand_obj, 0
        else:
            stale += 1
            if stale >= 3:
                break
    return best, best_obj


@dataclass
class _DayOutcome:
    model: _Model
    values: np.ndarray
    objective: float
    bound: float
    status: str
    duals: np.ndarray | None
    timings: dict[str, float]
    heuristic: float


def _solve_day(
    net: _Network,
    po,
    pt,
    q,
    penalty: float,
    config: OptimizeConfig,
    time_limit: float,
    method: str = "decomposed",
) -> _DayOutcome:
    """Build, bound, heuristically solve and then MIP-solve one date's model."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    deadline = started + time_limit
    m = _build(net, po, pt, q, penalty, strong=(method != "plain"))
    timings["build"] = time.perf_counter() - started
    if config.relax:
        res = _lp(m, config, time_limit)
        timings["solve"] = res.seconds
        if res.values is None:
            raise InfeasibleError(_no_solution(config.lp_solver, res.status, time_limit))
        return _DayOutcome(
            m, res.values, res.objective, res.bound, res.status, res.duals, timings, math.nan
        )
    t0 = time.perf_counter()
    hint = None
    heuristic = math.nan
    lp_bound = -math.inf
    scale = None
    if method != "plain":
        # The LP is the bound of last resort and every heuristic's start: never starve it.
        lp = _lp(m, config, time_limit)
        rest = max(deadline - time.perf_counter(), 0.0)
        base = time.perf_counter()
        if lp.values is not None:
            lp_bound = lp.objective if lp.status == "OPTIMAL" else -math.inf
            hint, heuristic = _slope_scaling(m, net, config, lp.values, base + _SLOPE_SHARE * rest)
            scale = max(heuristic - penalty * float(hint[m.s_cols].sum()), 1e-9)
            # Neighbourhood search: the MIP restricted to the trucks of that plan (or fewer)
            # is small and tight; SCIP improves the plan in it far faster than in the whole.
            ub = m.ub.copy()
            ub[m.y_cols] = hint[m.y_cols]
            left = base + _RESTRICTED_SHARE * rest - time.perf_counter()
            if left > 0.1:
                # SCIP overshoots its limit by up to a third while it completes the hint.
                sub = _run(
                    _hinted(_helper(m, True, ub=ub), hint),
                    config.solver,
                    0.75 * left,
                    _mip_params(config.solver, config.relative_gap / 10, 1, scale)
                    + (_RESTRICTED_SCIP if config.solver == "SCIP" else ""),
                )
                if sub.values is not None:
                    cand = _clean(m, sub.values, net)
                    cand_obj = float(m.obj @ cand) + m.offset
                    if cand_obj < heuristic:
                        hint, heuristic = cand, cand_obj
                        # The gap limit is relative to the best plan's operating cost.
                        scale = max(heuristic - penalty * float(hint[m.s_cols].sum()), 1e-9)
    timings["heuristic"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    h = _helper(m, True, pair_cuts=False)
    if hint is not None:
        _hinted(h, hint)
    left = max(0.85 * (deadline - time.perf_counter()), 0.05 * time_limit)
    res = _run(h, config.solver, left, _mip_params(config.solver, config.relative_gap, 1, scale))
    timings["solve"] = time.perf_counter() - t0
    values, objective, status = res.values, res.objective, res.status
    if hint is not None and (values is None or heuristic < objective - 1e-9 * abs(objective)):
        values, objective, status = hint, heuristic, "HEURISTIC"
    if values is None:
        raise InfeasibleError(_no_solution(config.solver, res.status, time_limit))
    bound = max(res.bound, lp_bound) if math.isfinite(res.bound) else lp_bound
    values = _clean(m, values, net)
    objective = float(m.obj @ values) + m.offset
    # Shadow prices: the LP with trucks fixed at the plan's values.
    t0 = time.perf_counter()
    lb, ub = m.lb.copy(), m.ub.copy()
    lb[m.y_cols] = ub[m.y_cols] = values[m.y_cols]
    fixed = _lp(m, config, max(deadline - time.perf_counter(), 5.0), lb=lb, ub=ub)
    timings["duals"] = time.perf_counter() - t0
    duals = fixed.duals
    if fixed.values is not None and fixed.objective < objective - 1e-9 * abs(objective):
        # Re-routing on the same trucks is cheaper: keep the better flows.
        values = _clean(m, fixed.values, net)
        values[m.y_cols] = lb[m.y_cols]
        objective = float(m.obj @ values) + m.offset
    return _DayOutcome(
        m, values, objective, min(bound, objective), status, duals, timings, heuristic
    )


def _hinted(h, values: np.ndarray):
    """Give the solver a full solution to start from (SCIP tries it as a first incumbent)."""
    for col, val in enumerate(values.tolist()):
        h.add_hint(col, val)
    return h


# Shares of a date's time left after its LP by which each phase must end: slope scaling,
# the restricted MIP; the full MIP gets the rest (measured on the sample network).
_SLOPE_SHARE, _RESTRICTED_SHARE = 0.12, 0.55
# The restricted MIP is there to find plans, not to bound: without root cut rounds SCIP
# reaches its heuristics and branching sooner (6 s on three sample dates: 3.6k-10k better).
_RESTRICTED_SCIP = "separating/maxroundsroot = 0\n"


def _clean(m: _Model, values: np.ndarray, net: _Network, whole: bool = True) -> np.ndarray:
    """Whole trucks, and throughput exactly max(arrivals, departures) (never padded)."""
    v = values.copy()
    if whole:
        v[m.y_cols] = np.round(v[m.y_cols])
    # Solver noise can leave unserved volume a hair below 0 (a negative penalty cost).
    v[m.s_cols] = np.clip(v[m.s_cols], 0.0, m.ub[m.s_cols])
    x = np.maximum(v[: m.n_x], 0.0)
    arrive = np.bincount(net.ld[m.x_lane], weights=x, minlength=net.n)
    depart = np.bincount(net.lo[m.x_lane], weights=x, minlength=net.n)
    v[m.t_cols] = np.maximum(arrive, depart)[m.t_node]
    return v


def _no_solution(solver: str, status: str, time_limit: float) -> str:
    return (
        f"{solver} stopped ({status}) without a feasible plan within {time_limit:.1f} s. "
        "Raise [optimize] time_limit, or plan fewer dates at a time."
    )


# --------------------------------------------------------------------------- results


def _decompose(m: _Model, values: np.ndarray, net: _Network, po, pt, q, scale: float):
    """Split each commodity's lane flows into per-pair flows along paths (o -> t)."""
    x = values[: m.n_x]
    keep = x > _NOISE * scale
    key, lane, vol = m.x_key[keep], m.x_lane[keep], x[keep].copy()
    s = values[m.s_cols]
    out_pair, out_lane, out_vol = [], [], []
    for g in np.unique(key):
        sel = np.flatnonzero(key == g)
        flow = dict(zip(lane[sel].tolist(), vol[sel].tolist(), strict=True))
        into: dict[int, list[int]] = {}
        for a in flow:
            into.setdefault(int(net.ld[a]), []).append(a)
        mine = np.flatnonzero(m.group == g)
        k = int(po[mine[0]])
        for p in mine.tolist():
            need = q[p] - s[p]
            t = int(pt[p])
            while need > _NOISE * scale:
                # Walk back from t along lanes that still carry flow of k, to k.
                path, node, seen = [], t, {t}
                while node != k:
                    cands = [a for a in into.get(node, []) if flow[a] > _NOISE * scale]
                    if not cands:
                        break
                    a = max(cands, key=flow.__getitem__)
                    path.append(a)
                    node = int(net.lo[a])
                    if node in seen:  # a cycle of zero-cost flow: cancel it and retry
                        cyc = path[[int(net.ld[b]) for b in path].index(node) :]
                        amount = min(flow[b] for b in cyc)
                        for b in cyc:
                            flow[b] -= amount
                        path, node, seen = [], t, {t}
                        continue
                    seen.add(node)
                if node != k or not path:
                    break  # the checker reports the pair as not conserved
                amount = min(need, *(flow[a] for a in path))
                for a in path:
                    flow[a] -= amount
                    out_pair.append(p)
                    out_lane.append(a)
                    out_vol.append(amount)
                need -= amount
    return (
        np.array(out_pair, dtype=np.int64),
        np.array(out_lane, dtype=np.int64),
        np.array(out_vol, dtype=float),
    )


def _check(
    net: _Network,
    day: str,
    po,
    pt,
    q,
    y_lane,
    y,
    z,
    s,
    fp,
    fl,
    fv,
    scale: float,
    integral: bool = True,
):
    """Independent check of one date's plan; raises on any violation (a bug, exit 70)."""
    tol = _TOL * max(scale, 1.0)
    problems = []
    if integral and np.any(np.abs(y - np.round(y)) > 1e-6):
        problems.append("trucks are not integral")
    if np.any(y > net.maxt[y_lane] + 1e-6) or np.any(y < -1e-6):
        problems.append("trucks exceed max_trucks")
    if np.any(s < -tol) or np.any(s > q + tol):
        problems.append("unserved volume outside [0, demand]")
    n, npair = net.n, len(q)
    # Conservation per pair and node: out - in = served at origin, -served at destination.
    bal = np.zeros((npair, n)) if npair * n <= 5_000_000 else None
    if bal is not None:
        np.add.at(bal, (fp, net.lo[fl]), fv)
        np.add.at(bal, (fp, net.ld[fl]), -fv)
        want = np.zeros((npair, n))
        served = q - s
        np.add.at(want, (np.arange(npair), po), served)
        np.add.at(want, (np.arange(npair), pt), -served)
        if np.abs(bal - want).max(initial=0) > tol:
            bad = np.argmax(np.abs(bal - want).max(axis=1))
            problems.append(
                f"flow of pair {net.names[po[bad]]}->{net.names[pt[bad]]} is not conserved"
            )
    # Pass-through only at transit facilities.
    mid = net.lo[fl]
    if np.any((mid != po[fp]) & ~net.transit[mid]):
        problems.append("volume passes through a facility that is not a transit kind")
    load = np.bincount(fl, weights=fv, minlength=len(net.lo))
    trucks = np.zeros(len(net.lo))
    trucks[y_lane] = y
    over = load > trucks * net.u + tol
    if over.any():
        a = np.flatnonzero(over)[0]
        problems.append(
            f"lane {net.names[net.lo[a]]}->{net.names[net.ld[a]]} carries more than its trucks hold"
        )
    thr = np.maximum(
        np.bincount(net.ld[fl], weights=fv, minlength=n),
        np.bincount(net.lo[fl], weights=fv, minlength=n),
    )
    if np.any(thr > net.cap + z + tol) or np.any(z > net.extra + tol):
        problems.append("a facility's throughput exceeds its capacity plus added capacity")
    if problems:
        raise RuntimeError(f"plan for {day} failed its checks: " + "; ".join(problems))
    return load, thr


def _prepare_demand(demand: pl.DataFrame, column: str, net: _Network) -> pl.DataFrame:
    _fail("demand table is not valid", [p.describe() for p in validate_demand(demand, column)])
    d = demand.select(
        "date", "origin", "destination", pl.col(column).cast(pl.Float64).alias("volume")
    ).filter(pl.col("volume") > 0)
    known = set(net.names.tolist())
    unknown = sorted({*d["origin"].to_list(), *d["destination"].to_list()} - known)
    if unknown:
        raise DataError(
            f"demand names facilities that are not in the nodes table: "
            f"{_names(unknown)}. Add them to the nodes table or drop that demand."
        )
    same = d.filter(pl.col("origin") == pl.col("destination"))
    if same.height:
        raise DataError(
            "demand has rows whose origin equals their destination: "
            + _names(sorted(set(same["origin"].to_list())))
            + ". Drop them; they need no truck."
        )
    return d


def _check_paths(net: _Network, d: pl.DataFrame) -> None:
    """Every demand pair needs at least one path through transit facilities."""
    index = {name: i for i, name in enumerate(net.names)}
    pairs = d.select("origin", "destination").unique()
    po = np.array([index[o] for o in pairs["origin"].to_list()], dtype=np.int64)
    pt = np.array([index[t] for t in pairs["destination"].to_list()], dtype=np.int64)
    transit_adj = _adjacency(net, net.transit)
    missing = []
    for o in np.unique(po):
        first = net.ld[net.lo == o]
        reach = _reach(transit_adj, first) if len(first) else np.zeros(net.n, bool)
        direct = np.zeros(net.n, bool)
        direct[first] = True
        # A destination counts if reached directly, or from a transit facility.
        via = _adjacency(net, net.transit & reach)
        ok = direct | (np.asarray(via.sum(axis=0)).ravel() > 0)
        mine = po == o
        missing += [(net.names[o], net.names[t]) for t in pt[mine][~ok[pt[mine]]]]
    if missing:
        kinds = ", ".join(sorted({str(k) for k in net.kind[net.transit]})) or "none"
        raise DataError(
            f"demand for {len(missing)} origin-destination pairs has no path over the lanes "
            f"(volume may pass only through transit kinds: {kinds}): "
            + _names([f"{o}->{t}" for o, t in sorted(missing)])
            + ". Add a lane, or change [optimize] transit_kinds."
        )


def demand_columns(df: pl.DataFrame, columns: list[str], source: Any = "demand") -> pl.DataFrame:
    """date, origin, destination and each requested column as `demand_rows` picks it (one
    per scenario). UsageError when two requests pick the same column (a plain table plans
    `volume` for "forecast")."""
    picked = [demand_rows(df, c, source) for c in columns]
    planned = [p.columns[-1] for p in picked]
    if len(set(planned)) != len(planned):
        raise UsageError(f"{', '.join(columns)} name the same demand column twice ({planned}).")
    return pl.concat([picked[0], *[p.select(p.columns[-1]) for p in picked[1:]]], how="horizontal")


def demand_rows(df: pl.DataFrame, column: str, source: Any = "demand") -> pl.DataFrame:
    """The rows to plan for (date, origin, destination, planned column): a forecast table's
    lane rows, or any demand table as is (planning `volume` unless a column is named).

    A forecast table (it has `unique_id` and `level`) holds every level of the hierarchy;
    only level "lane" names an origin and a destination.
    """
    from mmplan.tables import check

    is_forecast = {"unique_id", "level"} <= set(df.columns) and df.schema["level"] == pl.String
    if not is_forecast and column == "forecast" and "forecast" not in df.columns:
        column = "volume"  # a plain demand table plans its volume unless told otherwise
    if is_forecast:
        # Keep each lane row's place in the file, so a problem names the row a planner sees.
        df = df.with_row_index("_file_row").filter(pl.col("level") == "lane")
        if df.is_empty():
            raise DataError(f"{source}: the forecast table has no lane-level rows to plan for.")
        file_rows = df.get_column("_file_row").to_list()
        df = df.drop("_file_row")
    if column not in df.columns:
        numeric = [c for c, t in df.schema.items() if t.is_numeric()]
        raise DataError(
            f"{source}: no column '{column}' to plan for; its numeric columns are "
            f"{', '.join(numeric) or 'none'}. Name one of them with --column or --scenarios "
            "(e.g. forecast, hi_80)."
        )
    problems = validate_demand(df, column)
    if is_forecast:
        problems = [replace(p, rows=tuple(file_rows[r] for r in p.rows)) for p in problems]
    check(problems, source, "forecast" if is_forecast else "demand")
    return df.select("date", "origin", "destination", pl.col(column).cast(pl.Float64))


def optimize(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    column: str | None = None,
    *,
    method: str = "decomposed",
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
) -> Plan:
    """Plan trucks and routes for every date in `demand`; see the module docstring.

    `method="plain"` solves all dates as one model with weak linking and no heuristic (the
    benchmark's baseline); the default solves dates separately in parallel, on `workers`
    threads here or, with a Dask `engine` (mmplan.engine), on the cluster's workers.
    `progress` (done, total, label) is called as dates finish, for a progress bar.
    """
    column = column or config.column
    if method == "plain" and not config.relax:
        started = time.perf_counter()
        net, days, penalty, scale = _scenario(demand, nodes, lanes, config, column)
        outcomes = _solve_plain(net, days, penalty, config, _by_destination) if days else []
        return _assemble(net, outcomes, penalty, config, column, scale, started, method)
    return optimize_scenarios(
        demand, nodes, lanes, config, [column], method=method, progress=progress, engine=engine
    )[column]


def optimize_scenarios(
    demand: pl.DataFrame,
    nodes: pl.DataFrame,
    lanes: pl.DataFrame,
    config: OptimizeConfig,
    columns: list[str],
    *,
    method: str = "decomposed",
    progress: Callable[[int, int, str], None] | None = None,
    engine: Engine | None = None,
) -> dict[str, Plan]:
    """One plan per demand column (scenarios such as forecast, hi_80, hi_95), by column.

    Every (scenario, date) is its own MIP: they are solved together, in parallel on the
    engine, and share `time_limit` as one run's dates do.
    """
    started = time.perf_counter()
    parts = {c: _scenario(demand, nodes, lanes, config, c) for c in dict.fromkeys(columns)}
    net, _, penalty, _ = next(iter(parts.values()))
    tasks = [(c, day) for c, (_, days, _, _) in parts.items() for day in days]
    outcomes = _solve_dates(
        net, [day for _, day in tasks], penalty, config, method, started, progress, engine
    )
    return {
        c: _assemble(
            net,
            [o for (tc, _), o in zip(tasks, outcomes, strict=True) if tc == c],
            penalty,
            config,
            c,
            scale,
            started,
            method,
        )
        for c, (_, _, _, scale) in parts.items()
    }


def _scenario(demand, nodes, lanes, config, column):
    """(network, per-date demand arrays, penalty, volume scale) for one demand column."""
    net = _network(nodes, lanes, config)
    d = _prepare_demand(demand, column, net)
    _check_paths(net, d)
    penalty = config.unserved_penalty or default_penalty(net)
    index = {name: i for i, name in enumerate(net.names)}
    days = []
    for date in d["date"].unique().sort().to_list():
        part = d.filter(pl.col("date") == date)
        days.append(
            (
                date,
                np.array([index[o] for o in part["origin"].to_list()], np.int64),
                np.array([index[t] for t in part["destination"].to_list()], np.int64),
                part["volume"].to_numpy(),
            )
        )
    scale = float(d["volume"].max()) if d.height else 1.0
    return net, days, penalty, scale


def _solve_dates(net, days, penalty, config, method, started, progress, engine):
    """Each date's outcome, in order: on `workers` threads here, or on a Dask engine."""
    # Leave a little of the budget for checking and assembling the plan.
    deadline = started + 0.95 * config.time_limit
    lock = threading.Lock()
    solved = [0]
    report = progress or (lambda done, total, label: None)
    report(0, len(days), f"solving {len(days)} dates")

    def finished(i: int) -> None:
        with lock:
            solved[0] += 1
            report(solved[0], len(days), f"solved {days[i][0]} ({solved[0]}/{len(days)} dates)")
            checkpoint("optimize.date-solved")  # checkpoint

    if engine is not None and engine.distributed:
        # Dates go to the cluster's worker threads, a slot's dates one after another.
        # Worker processes share no clock to hand a finished date's time to the rest,
        # so each date gets its share of the budget up front.
        share = 1.0 / math.ceil(max(len(days), 1) / engine.slots)
        limit = max((deadline - time.perf_counter()) * share, 0.02 * config.time_limit)
        solve = functools.partial(
            _solve_date, net=net, penalty=penalty, config=config, limit=limit, method=method
        )
        return engine.map(solve, days, finished)
    workers = max(1, min(config.workers, len(days)))
    waiting = [len(days)]

    def run(i):
        # A date's share of what is left: days that finish early give time to the rest.
        with lock:
            left_days = waiting[0]
            waiting[0] -= 1
        # This worker still has ceil(left / workers) dates to do, this one included.
        share = 1.0 / math.ceil(max(left_days, 1) / workers)
        limit = max((deadline - time.perf_counter()) * share, 0.02 * config.time_limit)
        outcome = _solve_date(days[i], net, penalty, config, limit, method)
        finished(i)
        return outcome

    return _map_on_threads(run, len(days), workers)


def _map_on_threads(fn: Callable[[int], Any], n: int, workers: int) -> list[Any]:
    """[fn(0), ..., fn(n - 1)] on `workers` daemon threads, even for one worker: the main
    thread only waits, so a Ctrl-C reaches it at once. The first failing index's error is
    raised once the threads are done; no new index starts after a failure or a Ctrl-C."""
    stop = threading.Event()
    results: list[Any] = [None] * n
    errors: dict[int, BaseException] = {}
    todo = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        _LOCAL.stop = stop
        while True:
            with lock:
                i = None if errors or stop.is_set() else next(todo, None)
            if i is None:
                return
            try:
                results[i] = fn(i)
            except BaseException as exc:  # handed to the main thread below
                with lock:
                    errors[i] = exc

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(workers, 1))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            # In short waits: a SIGINT delivered to a solving thread wakes no one, and
            # the main thread sees it only when it next runs Python code.
            while thread.is_alive():
                thread.join(0.1)
                if _ACTIVE.get(stop):  # checkpoint: while a solve is in flight
                    checkpoint("optimize.solving")  # checkpoint
    except BaseException:  # Ctrl-C: stop what can be stopped; the threads die with us
        _interrupt_solves(stop)
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.pop(stop, None)
    if errors:
        raise errors[min(errors)]
    return results


def _by_destination(po: np.ndarray, pt: np.ndarray) -> bool:
    """Key commodities by destination? Fewer keys give fewer commodities; destination keys
    solve the reversed network."""
    return len(np.unique(pt)) < len(np.unique(po))


def _solve_date(
    day: tuple[Any, ...],
    net: _Network,
    penalty: float,
    config: OptimizeConfig,
    limit: float,
    method: str,
) -> tuple[Any, ...]:
    """One date's plan, in a worker thread here or on a Dask worker (mmplan.engine)."""
    date, po, pt, q = day
    rev = _by_destination(po, pt)
    n2 = net.reversed() if rev else net
    a, b = (pt, po) if rev else (po, pt)
    return date, rev, a, b, q, _solve_day(n2, a, b, q, penalty, config, limit, method)


def _solve_plain(net, days, penalty, config, orient):
    """All dates in one MIP, weak linking, no heuristic: the single-model baseline."""
    started = time.perf_counter()
    parts = []
    for date, po, pt, q in days:
        rev = orient(po, pt)
        n2 = net.reversed() if rev else net
        a, b = (pt, po) if rev else (po, pt)
        parts.append((date, rev, a, b, q, n2, _build(n2, a, b, q, penalty, strong=False)))
    big = _stack([p[-1] for p in parts])
    build = time.perf_counter() - started
    h = _helper(big, True)  # y columns of every day sit together after all x columns
    # On a thread of its own, like the dates, so that Ctrl-C stops it.
    [res] = _map_on_threads(
        lambda _: _run(
            h,
            config.solver,
            config.time_limit,
            # The unserved penalty can swamp a relative gap; run to the time limit.
            _mip_params(config.solver, 1e-6, config.workers),
        ),
        1,
        1,
    )
    if res.values is None:
        raise InfeasibleError(_no_solution(config.solver, res.status, config.time_limit))
    # Unstack into per-day outcomes.
    outcomes, offs = [], dict.fromkeys("xyzst", 0)
    base, pos = {}, 0
    for p in "xyzst":
        base[p] = pos
        pos += getattr(big, f"n_{p}")
    for date, rev, a, b, q, n2, m in parts:
        vals = []
        for p in "xyzst":
            k = getattr(m, f"n_{p}")
            vals.append(res.values[base[p] + offs[p] : base[p] + offs[p] + k])
            offs[p] += k
        v = _clean(m, np.concatenate(vals), n2)
        obj = float(m.obj @ v) + m.offset
        timings = {"build": build / len(parts), "solve": res.seconds / len(parts)}
        outcomes.append(
            (
                date,
                rev,
                a,
                b,
                q,
                _DayOutcome(m, v, obj, math.nan, res.status, None, timings, math.nan),
            )
        )
    # The bound is only known for the whole model: spread it by objective share.
    total = sum(o[-1].objective for o in outcomes) or 1.0
    for o in outcomes:
        o[-1].bound = res.bound * o[-1].objective / total
    return outcomes


def _assemble(net, outcomes, penalty, config, column, scale, started, method) -> Plan:
    trucks, flows, node_rows, unserved = [], [], [], []
    totals = {
        "truck_cost": 0.0,
        "package_cost": 0.0,
        "handling_cost": 0.0,
        "extra_capacity_cost": 0.0,
        "unserved_penalty_cost": 0.0,
    }
    objective = bound = 0.0
    statuses, timings = {}, {"build": 0.0, "heuristic": 0.0, "solve": 0.0, "duals": 0.0}
    per_day: dict[str, dict[str, Any]] = {}
    heuristic_total = 0.0
    for date, rev, a, b, q, out in outcomes:
        m, v = out.model, out.values
        n2 = net.reversed() if rev else net
        fp, fl, fv = _decompose(m, v, n2, a, b, q, scale)
        # Rebuild the commodity flows from the paths: a cycle the solver left in a plan
        # carries nothing anywhere, so it goes, with its cost.
        code = m.x_key * len(net.lo) + m.x_lane
        order = np.argsort(code)
        at = order[np.searchsorted(code[order], m.group[fp] * len(net.lo) + fl)]
        v = v.copy()
        v[: m.n_x] = np.bincount(at, weights=fv, minlength=m.n_x)
        v = _clean(m, v, n2, whole=not config.relax)
        po, pt = (b, a) if rev else (a, b)
        y = v[m.y_cols]
        z = v[m.n_x + m.n_y : m.n_x + m.n_y + m.n_z]
        s = v[m.s_cols]
        load, thr = _check(
            net,
            str(date),
            po,
            pt,
            q,
            m.y_lane,
            y,
            np.bincount(m.z_node, weights=z, minlength=net.n),
            s,
            fp,
            fl,
            fv,
            scale,
            integral=not config.relax,
        )
        for key, t in out.timings.items():
            timings[key] = timings.get(key, 0.0) + t
        statuses[str(date)] = out.status
        day_obj = float(m.obj @ v) + m.offset
        day_pen = penalty * float(s.sum())
        per_day[str(date)] = {
            "status": out.status,
            "objective": round(day_obj, 4),
            "best_bound": round(out.bound, 4),
            "operating_gap": round(max(day_obj - out.bound, 0.0) / max(day_obj - day_pen, 1e-9), 6),
            "seconds": round(sum(out.timings.values()), 3),
            "timings": {k: round(t, 3) for k, t in out.timings.items()},
        }
        objective += day_obj
        bound += out.bound
        heuristic_total += out.heuristic if math.isfinite(out.heuristic) else 0.0
        used = y > _NOISE
        lanes_used = m.y_lane[used]
        truck_cost = net.f[lanes_used] * y[used]
        pkg_cost = net.c[lanes_used] * load[lanes_used]
        trucks.append(
            pl.DataFrame(
                {
                    "origin": net.names[net.lo[lanes_used]],
                    "destination": net.names[net.ld[lanes_used]],
                    "date": [date] * len(lanes_used),
                    "trucks": y[used],
                    "volume": load[lanes_used],
                    "utilization": load[lanes_used] / (y[used] * net.u[lanes_used]),
                    "cost": truck_cost + pkg_cost,
                },
                schema_overrides={"date": pl.Date},
            )
        )
        flows.append(
            pl.DataFrame(
                {
                    "origin": net.names[po[fp]],
                    "destination": net.names[pt[fp]],
                    "lane_origin": net.names[net.lo[fl]],
                    "lane_destination": net.names[net.ld[fl]],
                    "date": [date] * len(fp),
                    "volume": fv,
                },
                schema_overrides={"date": pl.Date},
            )
            .group_by(
                "origin",
                "destination",
                "lane_origin",
                "lane_destination",
                "date",
                maintain_order=True,
            )
            .agg(pl.col("volume").sum())
        )
        zfull = np.bincount(m.z_node, weights=z, minlength=net.n)
        shadow = np.full(net.n, np.nan)
        if out.duals is not None and len(m.cap_rows):
            # Dual of "throughput <= capacity" is <= 0 in a min problem; report the value
            # of one more unit of capacity as a positive saving per package per day.
            shadow[m.cap_node] = np.maximum(-out.duals[m.cap_rows], 0.0)
            shadow[np.isfinite(net.cap) & np.isnan(shadow)] = 0.0
        active = thr > 0
        cap_total = net.cap + zfull
        node_rows.append(
            pl.DataFrame(
                {
                    "node": net.names[active],
                    "date": [date] * int(active.sum()),
                    "throughput": thr[active],
                    "capacity": np.where(np.isfinite(net.cap), net.cap, np.nan)[active],
                    "added_capacity": zfull[active],
                    "utilization": np.where(
                        np.isfinite(cap_total) & (cap_total > 0),
                        thr / np.where(cap_total > 0, cap_total, 1),
                        np.nan,
                    )[active],
                    "shadow_price": shadow[active],
                },
                schema_overrides={"date": pl.Date},
            ).with_columns(pl.col("capacity", "utilization", "shadow_price").fill_nan(None))
        )
        lost = s > _NOISE * scale
        unserved.append(
            pl.DataFrame(
                {
                    "origin": net.names[po[lost]],
                    "destination": net.names[pt[lost]],
                    "date": [date] * int(lost.sum()),
                    "volume": s[lost],
                },
                schema_overrides={"date": pl.Date},
            )
        )
        totals["truck_cost"] += float(truck_cost.sum())
        totals["package_cost"] += float(pkg_cost.sum())
        totals["handling_cost"] += float((net.handling * thr).sum())
        totals["extra_capacity_cost"] += float((net.extra_cost * zfull).sum())
        totals["unserved_penalty_cost"] += float(penalty * s.sum())
    parts_sum = sum(totals.values())
    if abs(parts_sum - objective) > 1e-5 * max(1.0, abs(objective)):
        raise RuntimeError(f"objective {objective} differs from the sum of its parts {parts_sum}")
    plan = Plan(
        trucks=_concat(trucks, _TRUCKS),
        flows=_concat(flows, _FLOWS),
        nodes=_concat(node_rows, _NODES),
        unserved=_concat(unserved, _UNSERVED),
    )
    gap = (objective - bound) / abs(objective) if objective else 0.0
    worst = "OPTIMAL"
    for st in statuses.values():
        if st != "OPTIMAL":
            worst = "FEASIBLE"
    plan.summary = {
        "status": worst if not config.relax else ("OPTIMAL" if worst == "OPTIMAL" else worst),
        "problem": "LP relaxation" if config.relax else "MIP",
        "method": method,
        "objective": objective,
        "best_bound": bound,
        "gap": max(gap, 0.0),
        # The same gap measured against the cost without unserved penalties: forced
        # unserved volume is in objective and bound alike, and can hide a loose plan.
        "operating_gap": max(objective - bound, 0.0)
        / max(objective - totals["unserved_penalty_cost"], 1e-9)
        if objective
        else 0.0,
        "solver": config.lp_solver if config.relax else config.solver,
        "seconds": time.perf_counter() - started,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "dates": len(outcomes),
        "per_date": per_day,
        "column": column,
        "heuristic_objective": heuristic_total if not config.relax else None,
        "shadow_prices": (
            "LP relaxation duals"
            if config.relax
            else "duals of the LP with trucks fixed at the MIP solution"
        ),
        "throughput": "packages sorted: the larger of volume arriving and leaving on lanes",
        "unserved_penalty": penalty,
        "totals": {
            **totals,
            "demand": float(sum(float(o[4].sum()) for o in outcomes)),
            "unserved_volume": float(plan.unserved["volume"].sum()),
            "trucks": float(plan.trucks["trucks"].sum()),
            "lanes_used": plan.trucks.select("origin", "destination").unique().height,
        },
    }
    return plan


_TRUCKS = {
    "origin": pl.String,
    "destination": pl.String,
    "date": pl.Date,
    "trucks": pl.Float64,
    "volume": pl.Float64,
    "utilization": pl.Float64,
    "cost": pl.Float64,
}
_FLOWS = {
    "origin": pl.String,
    "destination": pl.String,
    "lane_origin": pl.String,
    "lane_destination": pl.String,
    "date": pl.Date,
    "volume": pl.Float64,
}
_NODES = {
    "node": pl.String,
    "date": pl.Date,
    "throughput": pl.Float64,
    "capacity": pl.Float64,
    "added_capacity": pl.Float64,
    "utilization": pl.Float64,
    "shadow_price": pl.Float64,
}
_UNSERVED = {"origin": pl.String, "destination": pl.String, "date": pl.Date, "volume": pl.Float64}


def _concat(frames: list[pl.DataFrame], schema: dict[str, Any]) -> pl.DataFrame:
    frames = [f.cast(schema) for f in frames if f.height]  # type: ignore[arg-type]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
