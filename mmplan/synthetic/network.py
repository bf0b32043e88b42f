"""The synthetic network's facilities and topology: where FCs, SCs and DSs sit, which
SCs serve each DS, the gateways, the direct lanes, every FC -> DS pair's paths and the
SC -> SC mesh (steps 1, 2 and the mesh of 3 in `mmplan.synthetic`'s generative model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mmplan.config import SampleConfig

REGION_NAMES = ("EAST", "WEST", "CENTRAL", "SOUTH", "NORTH", "MOUNTAIN", "PACIFIC", "GULF")


ROAD_FACTOR = 1.2  # road miles per straight-line mile


@dataclass
class Net:
    """Facilities, lanes and flows under construction (indices into these lists)."""

    names: list[str]
    kinds: list[str]
    regions: np.ndarray  # region index per node
    xy: np.ndarray  # (n, 2) miles
    fcs: np.ndarray
    scs: np.ndarray
    dss: np.ndarray
    lanes: dict[tuple[int, int], int] = field(default_factory=dict)

    def lane(self, o: int, d: int) -> int:
        """Index of lane o -> d, created on first use."""
        return self.lanes.setdefault((int(o), int(d)), len(self.lanes))

    def miles(self, a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
        return ROAD_FACTOR * np.linalg.norm(self.xy[a] - self.xy[b], axis=-1) + 3.0


def _width(n: int, least: int) -> int:
    return max(least, len(str(n)))


def facilities(cfg: SampleConfig, rng: np.random.Generator) -> tuple[Net, list[str]]:
    r = cfg.regions
    region_names = (
        list(REGION_NAMES[:r])
        if r <= len(REGION_NAMES)
        else [f"R{i + 1:0{_width(r, 2)}d}" for i in range(r)]
    )
    # Adjacent regions ~800 miles apart, like neighbouring US regions.
    radius = 0.0 if r == 1 else 400.0 / math.sin(math.pi / r)
    angle = 2 * math.pi * np.arange(r) / r
    centre = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])

    counts = {"FC": cfg.fcs, "SC": cfg.scs, "DS": cfg.dss}
    names, kinds, regions = [], [], []
    for kind, n in counts.items():
        w = _width(n, 3 if kind == "DS" else 2)
        names += [f"{kind}{i + 1:0{w}d}" for i in range(n)]
        kinds += [kind] * n
        regions += [i % r for i in range(n)]  # dealt in turn: every region gets its share
    regions_a = np.array(regions)
    nf, ns = cfg.fcs, cfg.scs
    fcs = np.arange(nf)
    scs = np.arange(nf, nf + ns)
    dss = np.arange(nf + ns, nf + ns + cfg.dss)
    xy = np.zeros((len(names), 2))
    xy[fcs] = centre[regions_a[fcs]] + rng.normal(0, 100, (nf, 2))
    xy[scs] = centre[regions_a[scs]] + rng.normal(0, 140, (ns, 2))
    for d in dss:  # DSs cluster around an SC of their region (metro areas)
        local = scs[regions_a[scs] == regions_a[d]]
        anchor = xy[rng.choice(local)] if local.size else centre[regions_a[d]]
        xy[d] = anchor + rng.normal(0, 35 if local.size else 150, 2)
    net = Net(names, kinds, regions_a, xy, fcs, scs, dss)
    return net, region_names


def choice_weights(values: np.ndarray) -> np.ndarray:
    w = np.clip(values, 0, None).astype(float)
    return w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))


@dataclass
class Direct:
    """Direct FC -> DS lanes: the share of its pair each carries (by pair index), and the
    pair whose direct lane opens partway through the history."""

    share: dict[int, float]
    opening: int | None


@dataclass
class Paths:
    """Every FC -> DS pair's paths: the pair of each path, its share per day, and the
    (path, lane) incidences."""

    od: list[int]
    share: np.ndarray  # (n_path, n_all)
    pairs: list[tuple[int, int]]


@dataclass
class Mesh:
    """SC-originated volume on SC -> SC lanes: the lanes, which are sparse, and the
    expected volume per lane and day."""

    lane: np.ndarray
    sparse: np.ndarray
    mu: np.ndarray  # (n_mesh, n_all)


def serving(
    rng: np.random.Generator, net: Net, ds_region: np.ndarray
) -> list[list[tuple[int, float]]]:
    """The SCs serving each DS with their shares: its nearest SC in its own region and,
    for about half of the DSs, a second SC with a smaller share."""
    sc_region = net.regions[net.scs]
    serve: list[list[tuple[int, float]]] = []
    for j, d in enumerate(net.dss):
        dist = net.miles(net.scs, d)
        order = np.lexsort((dist, sc_region != ds_region[j]))  # same region first
        if len(order) >= 2 and rng.random() < 0.55:
            w2 = rng.uniform(0.15, 0.45)
            serve.append([(int(net.scs[order[0]]), 1 - w2), (int(net.scs[order[1]]), w2)])
        else:
            serve.append([(int(net.scs[order[0]]), 1.0)])
    return serve


def gateways(net: Net, regions: int) -> dict[int, int]:
    """Per region, the SC nearest its centre: it receives the out-of-region volume."""
    sc_region = net.regions[net.scs]
    gateway = {}
    for r in range(regions):
        local = net.scs[sc_region == r]
        if local.size:
            centre = net.xy[local].mean(axis=0)
            gateway[r] = int(local[np.argmin(np.linalg.norm(net.xy[local] - centre, axis=1))])
    return gateway


def _fc_sc_lanes(net: Net, gateway: dict[int, int]) -> set[tuple[int, int]]:
    """Each FC ships to every SC of its region and to the gateway SC of every other."""
    fc_sc = set()
    for f in net.fcs:
        for s in net.scs:
            if net.regions[s] == net.regions[f] or gateway[int(net.regions[s])] == s:
                fc_sc.add((int(f), int(s)))
    return fc_sc


def direct_lanes(
    rng: np.random.Generator,
    net: Net,
    share: np.ndarray,
    base: np.ndarray,
    ds_region: np.ndarray,
    excluded: list[int],
) -> Direct:
    """Direct FC -> DS lanes for the largest same-region flows, none to the `excluded`
    DSs (the two of the facility move)."""
    nf, nd = len(net.fcs), len(net.dss)
    od_mean = share * base[None, :]
    eligible = net.regions[net.fcs][:, None] == ds_region[None, :]
    if excluded:
        eligible[:, excluded] = False
    n_direct = max(1, round(0.02 * nf * nd))
    cand = np.flatnonzero(eligible.ravel())
    cand = cand[np.argsort(-od_mean.ravel()[cand], kind="stable")][:n_direct]
    direct = {int(c): rng.uniform(0.6, 0.9) for c in cand}
    opening = int(rng.choice(cand)) if cand.size else None
    return Direct(direct, opening)


def paths(
    net: Net,
    direct: Direct,
    t_open: int,
    serve: list[list[tuple[int, float]]],
    gateway: dict[int, int],
    n_all: int,
) -> Paths:
    """Every FC -> DS pair splits over a direct lane and its DS's serving SCs (through the
    gateway SC when the FC does not ship to that SC). Creates the lanes in `net`."""
    fc_sc = _fc_sc_lanes(net, gateway)
    nd = len(net.dss)
    opening = direct.opening
    direct_share = direct.share
    path_od: list[int] = []
    path_share: list[np.ndarray | float] = []
    pairs: list[tuple[int, int]] = []  # (path, lane)
    for fi, f in enumerate(net.fcs):
        for j, d in enumerate(net.dss):
            od = fi * nd + j
            alpha: np.ndarray | float = direct_share.get(od, 0.0)
            if od == opening:
                alpha = np.where(np.arange(n_all) >= t_open, alpha, 0.0)
            if od in direct_share:
                pairs.append((len(path_od), net.lane(f, d)))
                path_od.append(od)
                path_share.append(alpha)
            for s, w in serve[j]:
                p = len(path_od)
                if (int(f), s) in fc_sc:
                    legs = [(f, s), (s, d)]
                else:
                    g = gateway[int(net.regions[s])]
                    legs = [(f, g), (g, s), (s, d)]
                pairs += [(p, net.lane(o, e)) for o, e in legs]
                path_od.append(od)
                path_share.append((1 - alpha) * w)
    S = np.empty((len(path_od), n_all))
    for p, each in enumerate(path_share):
        S[p] = each
    return Paths(path_od, S, pairs)


def mesh(
    rng: np.random.Generator,
    net: Net,
    season: np.ndarray,
    events: np.ndarray,
    path_lanes: set[int],
    days: int,
    n_all: int,
) -> Mesh:
    """SC-originated volume on SC -> SC lanes: busy transfer lanes and sparse ones; one
    busy lane that carries only SC volume closes at 45% of the history."""
    mesh_lane, mesh_mean, mesh_sparse, mesh_region = [], [], [], []
    for s in net.scs:
        others = net.scs[net.scs != s]
        if not others.size:
            continue
        k = min(others.size, int(rng.integers(10, 17)))
        for o in others[np.argsort(net.miles(others, s), kind="stable")[:k]]:
            sparse_lane = rng.random() < 0.3
            mesh_lane.append(net.lane(s, o))
            mesh_sparse.append(sparse_lane)
            mesh_region.append(int(net.regions[s]))
            mesh_mean.append(
                rng.uniform(0.08, 0.6) if sparse_lane else math.exp(rng.normal(math.log(120), 0.9))
            )
    mesh_lane_a, mesh_mean_a = np.array(mesh_lane, dtype=int), np.array(mesh_mean)
    mesh_sparse_a = np.array(mesh_sparse, dtype=bool)
    mesh_active = np.ones((len(mesh_lane), n_all))
    closing = [
        i for i, lane in enumerate(mesh_lane) if not mesh_sparse[i] and lane not in path_lanes
    ]
    if closing:
        mesh_active[int(rng.choice(closing)), int(0.45 * days) :] = 0.0
    mesh_mu = (
        mesh_mean_a[:, None]
        * season[np.array(mesh_region, dtype=int)]
        * np.sqrt(events)[None, :]
        * mesh_active
    )  # SC volume reacts less to events
    return Mesh(mesh_lane_a, mesh_sparse_a, mesh_mu)
