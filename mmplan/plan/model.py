"""One date's MIP as sparse arrays: columns [x | y | z | s | θ], rows and bounds.

`build_model` states the formulation of the package docstring (mmplan.plan) for one date:
commodity flows x on the lanes that can carry them, trucks y, added capacity z, unserved
volume s and throughput θ; flow conservation, truck linking (weak and strong), the
residual-capacity and rounding cuts, throughput and facility capacity rows, and the fleet
budgets' rows (mmplan.plan.fleet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from mmplan.plan.fleet import fleet_rows
from mmplan.plan.network import Network, adjacency, reach


@dataclass
class Model:
    """One date's MIP as sparse arrays; columns are [x | y | z | s | θ]."""

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


class CommodityLanes(NamedTuple):
    """The x columns: which commodity on which lane, and the most of it the lane can use."""

    key: np.ndarray
    lane: np.ndarray
    bound: np.ndarray  # b_ka


@dataclass
class _Rows:
    """The constraint matrix as COO triplets and row bounds, block by block."""

    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    lo: list[np.ndarray] = field(default_factory=list)
    hi: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def block(
        self,
        entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> np.ndarray:
        """Add len(lo) rows; entries are (row within the block, column, value) arrays.
        Returns the new rows' indices."""
        for row, col, val in entries:
            self.rows.append(self.count + row)
            self.cols.append(col)
            self.vals.append(val)
        self.lo.append(lo)
        self.hi.append(hi)
        first = self.count
        self.count += len(lo)
        return first + np.arange(len(lo))

    def matrix(self, n_cols: int) -> sp.csr_matrix:
        A = sp.csr_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.count, n_cols),
        )
        A.sum_duplicates()
        return A


@dataclass
class _Day:
    """What every block of rows reads: the day's pairs, the columns and where they start."""

    net: Network
    po: np.ndarray
    pt: np.ndarray
    q: np.ndarray
    group: np.ndarray
    u: np.ndarray  # truck capacity per lane, capped at the day's demand
    x: CommodityLanes
    y_lane: np.ndarray
    ypos: np.ndarray  # y column of each lane, -1 where none
    z_node: np.ndarray
    oy: int  # first y column (x columns start at 0)
    oz: int
    os_: int

    @property
    def n_x(self) -> int:
        return len(self.x.key)

    @property
    def n_y(self) -> int:
        return len(self.y_lane)


def build_model(
    net: Network,
    po: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    penalty: float,
    strong: bool = True,
    group: np.ndarray | None = None,
) -> Model:
    """The MIP for one date as sparse arrays.

    Pairs with the same `group` id form one commodity; they must share an origin. By
    default a commodity is an origin (`group` = `po`), which is exact: a flow from one
    origin to many destinations always splits into paths.
    """
    group = po if group is None else group
    # No lane carries more than the day's whole demand, so a truck bigger than that is the
    # same truck; capping it keeps trucks = volume / capacity far from the solver's
    # integrality tolerance (a 1e12-package truck left them at 1e-11).
    u = np.minimum(net.u, max(float(q.sum()), 1.0))
    x = commodity_lanes(net, po, pt, q, group)
    n_x = len(x.key)
    y_lane = np.unique(x.lane)
    ypos = np.full(len(net.lo), -1)
    ypos[y_lane] = np.arange(len(y_lane))
    n_y = len(y_lane)
    # No lane needs more trucks than carry every package that could use it.
    could = np.bincount(ypos[x.lane], weights=x.bound, minlength=n_y)
    y_ub = np.minimum(net.maxt[y_lane], np.ceil(could / u[y_lane] - 1e-9))
    z_node = np.flatnonzero(net.extra > 0)
    n_z, n_s = len(z_node), len(q)
    day = _Day(net, po, pt, q, group, u, x, y_lane, ypos, z_node, n_x, n_x + n_y, n_x + n_y + n_z)

    rows = _Rows()
    _conservation(rows, day)
    _truck_linking(rows, day)
    pair_rows = np.zeros(0, dtype=np.int64)
    if strong:
        _strong_linking(rows, day)
        _residual_capacity_cuts(rows, day)
        pair_rows = _pair_rounding_cuts(rows, day)
        _end_rounding_cuts(rows, day)
    t_node = _throughput(rows, day)
    n_t = len(t_node)
    cap_node, cap_rows = _capacity(rows, day, t_node)
    for pos, limit in fleet_rows(net, y_lane):  # fleet budgets: trucks in use per day
        y_ub[pos] = np.minimum(y_ub[pos], limit)
        m = len(pos)
        rows.block(
            [(np.zeros(m, np.int64), n_x + pos, np.ones(m))], np.array([-np.inf]), np.array([limit])
        )

    ncol = day.os_ + n_s + n_t
    ub = np.concatenate([np.full(n_x, np.inf), y_ub, net.extra[z_node], q, np.full(n_t, np.inf)])
    obj = np.concatenate(
        [
            net.c[x.lane],
            net.f[y_lane],
            net.extra_cost[z_node],
            np.full(n_s, penalty),
            net.handling[t_node],
        ]
    )
    return Model(
        x_key=x.key,
        x_lane=x.lane,
        y_lane=y_lane,
        z_node=z_node,
        group=group,
        lb=np.zeros(ncol),
        ub=ub,
        obj=obj,
        offset=0.0,
        A=rows.matrix(ncol),
        rlo=np.concatenate(rows.lo),
        rhi=np.concatenate(rows.hi),
        cap_rows=cap_rows,
        cap_node=cap_node,
        t_node=t_node,
        n_x=n_x,
        n_y=n_y,
        n_z=n_z,
        n_s=n_s,
        n_t=n_t,
        pair_rows=pair_rows,
        y_cap=u[y_lane],
    )


def commodity_lanes(
    net: Network, po: np.ndarray, pt: np.ndarray, q: np.ndarray, group: np.ndarray
) -> CommodityLanes:
    """The lanes each commodity can use, and b_ka: the most of it that can use each."""
    n = net.n
    transit_adj = adjacency(net, net.transit)
    # Lanes pointing backwards, kept where the original tail may pass volume on.
    keep = net.transit[net.lo]
    rev_transit = sp.csr_matrix((np.ones(keep.sum()), (net.ld[keep], net.lo[keep])), shape=(n, n))
    # reachable[j] = facilities a package at transit j can get to (j included), for tight b.
    reachable = np.zeros((n, n), dtype=bool)
    for t in np.flatnonzero(net.transit):
        reachable[t] = reach(transit_adj, np.array([t]))
    xk, xa, xb = [], [], []
    for g in np.unique(group):
        mine = group == g
        k = po[mine][0]
        dk = np.zeros(n)
        np.add.at(dk, pt[mine], q[mine])
        # Volume of k leaves k and then moves only through transit facilities.
        first = net.ld[net.lo == k]
        fwd = reach(transit_adj, first) if len(first) else np.zeros(n, bool)
        fwd[k] = True
        # Facilities from which a destination of k can be reached through transit only.
        bwd = reach(rev_transit, np.flatnonzero(dk > 0))
        i, j = net.lo, net.ld
        ok = fwd[i] & bwd[j] & ((i == k) | net.transit[i]) & (j != k)
        ok &= net.transit[j] | (dk[j] > 0)
        lanes = np.flatnonzero(ok)
        xk.append(np.full(len(lanes), g))
        xa.append(lanes)
        heads = j[lanes]
        xb.append(np.where(net.transit[heads], reachable[heads] @ dk, dk[heads]))
    return CommodityLanes(np.concatenate(xk), np.concatenate(xa), np.concatenate(xb))


def _conservation(rows: _Rows, day: _Day) -> None:
    """Flow conservation rows: one per (commodity, node it touches)."""
    n, x, group = day.net.n, day.x, day.group
    tail, head = day.net.lo[x.lane], day.net.ld[x.lane]
    touched_key = np.concatenate([x.key, x.key, group, group])
    touched_node = np.concatenate([tail, head, day.po, day.pt])
    pair_code = np.unique(touched_key * n + touched_node)

    def cons_row(key: np.ndarray, node: np.ndarray) -> np.ndarray:
        return np.searchsorted(pair_code, key * n + node)

    n_x, n_s = day.n_x, len(day.q)
    s_cols = day.os_ + np.arange(n_s)
    rhs = np.zeros(len(pair_code))
    np.add.at(rhs, cons_row(group, day.po), day.q)
    np.add.at(rhs, cons_row(group, day.pt), -day.q)
    entries = [
        (cons_row(x.key, tail), np.arange(n_x), np.ones(n_x)),
        (cons_row(x.key, head), np.arange(n_x), -np.ones(n_x)),
        (cons_row(group, day.po), s_cols, np.ones(n_s)),
        (cons_row(group, day.pt), s_cols, -np.ones(n_s)),
    ]
    rows.block(entries, rhs, rhs)


def _truck_linking(rows: _Rows, day: _Day) -> None:
    """Lane linking: all commodities together fit on the trucks."""
    n_x, n_y = day.n_x, day.n_y
    entries = [
        (day.ypos[day.x.lane], np.arange(n_x), np.ones(n_x)),
        (np.arange(n_y), day.oy + np.arange(n_y), -day.u[day.y_lane]),
    ]
    rows.block(entries, np.full(n_y, -np.inf), np.zeros(n_y))


def _strong_linking(rows: _Rows, day: _Day) -> None:
    """Per commodity: a lane with one truck carries at most min(b, u) of it."""
    x = day.x
    tight = np.flatnonzero(x.bound < day.u[x.lane] - 1e-9)
    m = len(tight)
    entries = [
        (np.arange(m), tight, np.ones(m)),
        (np.arange(m), day.oy + day.ypos[x.lane[tight]], -x.bound[tight]),
    ]
    rows.block(entries, np.full(m, -np.inf), np.zeros(m))


def _residual_capacity_cuts(rows: _Rows, day: _Day) -> None:
    """Residual capacity cuts (Magnanti-Mirchandani-Vachani) for a commodity that needs
    more than one truck: with eta = ceil(b/u) and r = b - (eta-1) u, x - r y <= b - r eta;
    they cut off fractional trucks on multi-truck lanes."""
    x = day.x
    u_x = day.u[x.lane]
    eta = np.ceil(x.bound / u_x - 1e-9)
    rr = x.bound - (eta - 1) * u_x
    cut = np.flatnonzero(
        (eta >= 2) & (rr < u_x - 1e-6) & (rr > 1e-6) & ~day.net.transit[day.net.ld[x.lane]]
    )
    m = len(cut)
    entries = [
        (np.arange(m), cut, np.ones(m)),
        (np.arange(m), day.oy + day.ypos[x.lane[cut]], -rr[cut]),
    ]
    rows.block(entries, np.full(m, -np.inf), x.bound[cut] - rr[cut] * eta[cut])


def _pair_rounding_cuts(rows: _Rows, day: _Day) -> np.ndarray:
    """Pair rounding cuts; returns their rows.

    Take commodity g and a transit destination t of g with a lane a = (k, t) straight from
    g's origin k. The demand D of g ending at t arrives on a, on g's other lanes into t (R),
    or goes unserved (S): u_a y_a + R + S >= D. Its mixed-integer rounding with
    f = frac(D / u_a), scaled by f u_a,
        f u_a y_a + R + S >= f u_a ceil(D / u_a),
    says a partly filled last truck is paid for whole or avoided by re-routing; the LP
    alone pays only the fraction. (Into facilities volume cannot pass through they added
    nothing to the LP: strong linking and the residual capacity cuts cover them.) Cuts with
    f < 5% lift the bound little and slow the LP down: on a low-volume date GLOP took 4x
    longer with them.
    """
    net, n, x = day.net, day.net.n, day.x
    lane_code = np.sort(net.lo * n + net.ld)
    lane_at = np.argsort(net.lo * n + net.ld)
    code = day.group * n + day.pt
    uc, first, inv = np.unique(code, return_index=True, return_inverse=True)
    ct, want = uc % n, day.po[first] * n + uc % n
    pos = np.minimum(np.searchsorted(lane_code, want), len(lane_code) - 1)
    direct = np.where(lane_code[pos] == want, lane_at[pos], -1)
    ok = (direct >= 0) & net.transit[ct]
    ok[ok] = day.ypos[direct[ok]] >= 0
    ua = day.u[np.maximum(direct, 0)]
    need = np.bincount(inv, weights=day.q) / ua
    frac = need - np.floor(need)
    sel = np.flatnonzero(ok & (frac > 0.05))
    cpos = np.full(len(uc), -1)
    cpos[sel] = np.arange(len(sel))
    # g's flows into t on lanes other than a, and g's unserved volume ending at t.
    x_code = x.key * n + net.ld[x.lane]
    at = np.minimum(np.searchsorted(uc, x_code), len(uc) - 1)
    xs = np.flatnonzero((uc[at] == x_code) & (cpos[at] >= 0) & (x.lane != direct[at]))
    ss = np.flatnonzero(cpos[inv] >= 0)
    rem = frac[sel] * ua[sel]
    entries = [
        (np.arange(len(sel)), day.oy + day.ypos[direct[sel]], rem),
        (cpos[at[xs]], xs, np.ones(len(xs))),
        (cpos[inv[ss]], day.os_ + ss, np.ones(len(ss))),
    ]
    return rows.block(entries, rem * np.ceil(need[sel]), np.full(len(sel), np.inf))


def _end_rounding_cuts(rows: _Rows, day: _Day) -> None:
    """Facilities volume cannot pass through receive exactly the demand ending there and
    send exactly the demand starting there: Σ_a u_a y_a >= D - s on their lanes. Its
    mixed-integer rounding with U = the largest truck among those lanes,
    Σ_a y_a + Σ s / (f U) >= ceil(D / U), f = frac(D / U), counts whole trucks."""
    net, n, u, y_lane = day.net, day.net.n, day.u, day.y_lane
    for end, lane_end in ((day.pt, net.ld), (day.po, net.lo)):
        total = np.bincount(end, weights=day.q, minlength=n)
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
        entries = [
            (rpos[lane_at[ys]], day.oy + ys, np.ones(len(ys))),
            (rpos[end[ss]], day.os_ + ss, 1.0 / (frac[end[ss]] * big[end[ss]])),
        ]
        rows.block(entries, np.ceil(need[nodes_]), np.full(len(nodes_), np.inf))


def _throughput(rows: _Rows, day: _Day) -> np.ndarray:
    """Throughput θ_n >= arrivals and >= departures on lanes (packages sorted at n), for
    the facilities that have a handling cost or a capacity; returns those facilities."""
    net, n = day.net, day.net.n
    head, tail = net.ld[day.x.lane], net.lo[day.x.lane]
    touched = np.zeros(n, bool)
    touched[head] = True
    touched[tail] = True
    t_node = np.flatnonzero(touched & ((net.handling > 0) | np.isfinite(net.cap)))
    n_t = len(t_node)
    ot = day.os_ + len(day.q)
    tpos = np.full(n, -1)
    tpos[t_node] = np.arange(n_t)
    for ends in (head, tail):
        xs = np.flatnonzero(tpos[ends] >= 0)
        entries = [
            (tpos[ends[xs]], xs, -np.ones(len(xs))),
            (np.arange(n_t), ot + np.arange(n_t), np.ones(n_t)),
        ]
        rows.block(entries, np.zeros(n_t), np.full(n_t, np.inf))
    return t_node


def _capacity(rows: _Rows, day: _Day, t_node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Facility capacity: θ_n <= cap_n + z_n. Returns (capacitated facilities, their rows)."""
    net, n, n_z = day.net, day.net.n, len(day.z_node)
    ot = day.os_ + len(day.q)
    tpos = np.full(n, -1)
    tpos[t_node] = np.arange(len(t_node))
    cap_node = t_node[np.isfinite(net.cap[t_node])]
    zpos = np.full(n, -1)
    zpos[day.z_node] = np.arange(n_z)
    zc = np.flatnonzero(zpos[cap_node] >= 0)
    entries = [
        (np.arange(len(cap_node)), ot + tpos[cap_node], np.ones(len(cap_node))),
        (zc, day.oz + zpos[cap_node[zc]], -np.ones(len(zc))),
    ]
    cap_rows = rows.block(entries, np.full(len(cap_node), -np.inf), net.cap[cap_node])
    return cap_node, cap_rows


def pair_rows(
    m: Model, net: Network, po: np.ndarray, pt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The flow conservation rows of each pair's two ends (at its commodity's own node and
    at the other end), as `_conservation` numbers them: a pair's volume q adds q to the
    first row's right-hand side and -q to the second's (mmplan.plan.simulation changes
    those between samples)."""
    n = net.n
    tail, head = net.lo[m.x_lane], net.ld[m.x_lane]
    key = np.concatenate([m.x_key, m.x_key, m.group, m.group])
    node = np.concatenate([tail, head, po, pt])
    code = np.unique(key * n + node)
    return np.searchsorted(code, m.group * n + po), np.searchsorted(code, m.group * n + pt)
