"""A synthetic middle-mile network with realistic lane history: `mmplan sample`.

Generative model, in the order the code draws it (one `numpy.random.default_rng(seed)`,
so the same seed gives the same tables and a different seed different ones):

1. **Facilities.** Regions sit on a circle about 800 miles apart; FCs, SCs and DSs are
   dealt to regions in turn and scattered around the region's centre (DSs cluster around
   the SCs, as delivery stations sit in the metro areas that sort centres serve). Road
   miles are 1.2 x the straight line.
2. **Topology.** Each DS is served by its nearest SC in its own region and, for about half
   of them, a second SC with a smaller share. Each FC ships to every SC of its region and
   to one gateway SC of every other region; volume for another SC of that region goes
   FC -> gateway -> SC -> DS. The biggest same-region FC -> DS flows also get a direct lane
   that carries most of that flow. SCs also exchange their own volume (transfers, returns,
   missorts) with their nearest SCs: some of those lanes are busy, some carry a package
   every few days (the sparse lanes).
3. **Demand** is per FC -> DS pair and day: the DS's base volume (lognormal, about 1,500
   packages a day) x the FC's share (bigger and nearer FCs ship more) x growth (about 12%
   a year, varying by DS) x yearly seasonality (high in Q4, low in summer) x a weekly
   profile (Monday high, Sunday low) x retail events (Prime Day, Black Friday to Cyber
   Monday, the December peak and Christmas, on the dates of mmplan's default event
   calendar so the forecaster's regressors line up) x disruptions (a region's weather
   days, drop then rebound; one FC outage).
4. **Noise** is Poisson-gamma (negative binomial): a shared shock per DS and day, another
   per FC -> DS pair and day, and a network-wide daily shock. Variance grows with volume.
   Each pair's packages are split over its paths by multinomial draws, so lane volumes are
   whole packages and flow is conserved: what enters an SC leaves it the same day, plus
   the SC's own volume.
5. **Structural changes.** One DS's volume moves to a new DS in three weekly waves (zip
   codes are re-assigned), so the old DS's lanes close and the new one's open; one direct
   FC -> DS lane opens partway through; one busy SC -> SC lane closes. A lane has no rows
   outside the days it was active; sparse lanes log only days with volume (a missing day
   is zero, as the history contract says), the other lanes keep their zero days.
6. **Capacities and costs** come from the noise-free volume of the last 28 days of history
   and of the 28 days after it (the planning horizon), so the optimizer has work to do: a
   few SCs get capacity below their peak daily throughput (throughput = packages sorted,
   the larger of inbound and outbound), with extra capacity for sale at an overtime
   premium; every other FC and SC has headroom; DSs are unlimited. Truck cost is a
   dispatch fee plus a rate per mile; a few lanes have a cap on trucks per day below what
   their peak needs, some have a cap that does not bind, the rest none.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mmplan.config import SampleConfig, default_events

__all__ = ["sample"]

REGION_NAMES = ("EAST", "WEST", "CENTRAL", "SOUTH", "NORTH", "MOUNTAIN", "PACIFIC", "GULF")
HORIZON = 28  # days after the history whose expected volume sizes capacities
RECENT = 28  # last days of history that also size them
WEEKLY = np.array([1.18, 1.12, 1.05, 1.00, 0.97, 0.90, 0.78])  # Monday .. Sunday
DS_BASE_MEDIAN = 1200.0  # packages a day into a median DS
ROAD_FACTOR = 1.2  # road miles per straight-line mile

# Truck sizes (packages per truck) by lane type: 53' trailers between big buildings,
# smaller trucks on the last middle-mile leg into delivery stations.
TRUCK_SIZES = {
    "FC-SC": [2600.0, 2800.0, 3000.0],
    "SC-SC": [2400.0, 2600.0, 2800.0],
    "SC-DS": [1500.0, 1800.0, 2000.0, 2200.0],
    "FC-DS": [2400.0, 2600.0],
}


@dataclass
class _Net:
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


def _facilities(cfg: SampleConfig, rng: np.random.Generator) -> tuple[_Net, list[str]]:
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
    net = _Net(names, kinds, regions_a, xy, fcs, scs, dss)
    return net, region_names


def _event_dates(years: range) -> dict[str, list[dt.date]]:
    """mmplan's default event calendar; computed rules for years it does not list."""
    known = default_events()
    out: dict[str, list[dt.date]] = {k: [] for k in known}
    for y in years:
        listed = {k: [d for d in v if d.year == y] for k, v in known.items()}
        nov1 = dt.date(y, 11, 1)
        thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
        jul1 = dt.date(y, 7, 1)
        tuesday2 = jul1 + dt.timedelta(days=(1 - jul1.weekday()) % 7 + 7)
        rules = {
            "prime_day": [tuesday2, tuesday2 + dt.timedelta(days=1)],
            "black_friday": [thanksgiving + dt.timedelta(days=1)],
            "cyber_monday": [thanksgiving + dt.timedelta(days=4)],
            "christmas": [dt.date(y, 12, 25)],
        }
        for k in out:
            out[k] += listed.get(k) or rules.get(k, [])
    return out


def _events(start: dt.date, n: int) -> np.ndarray:
    """Multiplier on ordinary demand per day for retail events and holidays."""
    mult = np.ones(n)
    first, last = start, start + dt.timedelta(days=n - 1)
    ev = _event_dates(range(first.year - 1, last.year + 2))

    def put(day: dt.date, value: float) -> None:
        t = (day - start).days
        if 0 <= t < n:
            mult[t] *= value

    day = dt.timedelta(days=1)
    for pd_ in ev["prime_day"]:
        put(pd_, 1.85)
    # Orders placed on the last Prime Day still ship over the next days.
    for y in {d.year for d in ev["prime_day"]}:
        end = max(d for d in ev["prime_day"] if d.year == y)
        for k, v in enumerate((1.4, 1.2, 1.08), start=1):
            put(end + k * day, v)
    for bf in ev["black_friday"]:
        for k, v in enumerate((1.45, 1.3, 1.25)):  # Friday, Saturday, Sunday
            put(bf + k * day, v)
    for cm in ev["cyber_monday"]:
        put(cm, 1.8)
        for k, v in enumerate((1.55, 1.4, 1.3, 1.28), start=1):
            put(cm + k * day, v)
        # December peak: a plateau that builds to mid-December, then the last
        # shipping days before Christmas fall away.
        t = cm + 5 * day
        dec21 = dt.date(cm.year, 12, 21)
        while t <= dec21:
            put(t, 1.22 + 0.12 * min(1.0, (t - cm).days / 18))
            t += day
        for d_, v in (
            (22, 1.1),
            (23, 1.0),
            (24, 0.55),
            (26, 0.85),
            (27, 0.95),
            (28, 0.95),
            (29, 0.95),
            (30, 0.95),
            (31, 0.9),
        ):
            put(dt.date(cm.year, 12, d_), v)
        put(dt.date(cm.year + 1, 1, 1), 0.35)  # New Year's Day
    for xmas in ev["christmas"]:
        put(xmas, 0.06)  # buildings mostly closed
    return mult


def _choice_weights(values: np.ndarray) -> np.ndarray:
    w = np.clip(values, 0, None).astype(float)
    return w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))


def sample(cfg: SampleConfig) -> dict[str, pl.DataFrame]:
    """Generate a network: {"history", "nodes", "lanes"} tables (see the module docstring)."""
    from scipy import sparse

    rng = np.random.default_rng(cfg.seed)
    T, H = cfg.days, HORIZON
    n_all = T + H  # noise-free demand runs into the horizon to size capacities
    net, region_names = _facilities(cfg, rng)
    R = cfg.regions
    nf, nd = len(net.fcs), len(net.dss)

    # Calendar.
    epoch = (cfg.start - dt.date(1970, 1, 1)).days
    days_np = np.arange(epoch, epoch + n_all).astype("datetime64[D]")
    dow = (np.arange(epoch, epoch + n_all) + 3) % 7  # 1970-01-01 was a Thursday
    doy = (days_np - days_np.astype("datetime64[Y]")).astype(int)
    t_years = np.arange(n_all) / 365.25
    events = _events(cfg.start, n_all)

    # Per-region weekly and yearly shapes, so regions are alike but not identical.
    weekly = WEEKLY * np.exp(rng.normal(0, 0.03, (R, 7)))
    weekly /= weekly.mean(axis=1, keepdims=True)
    amp = rng.uniform(0.05, 0.10, R)
    phase = rng.normal(340, 12, R)
    yearly = 1 + amp[:, None] * np.cos(2 * np.pi * (doy[None, :] - phase[:, None]) / 365.25)
    season = yearly * weekly[:, dow]  # (R, n_all)

    # DS demand drivers.
    base = DS_BASE_MEDIAN * np.exp(rng.normal(0, 0.6, nd))
    growth = rng.normal(0.12, 0.07, nd)
    sens = np.exp(rng.normal(0, 0.15, nd))  # how strongly a DS reacts to retail events
    ds_region = net.regions[net.dss]

    # Facility move: DS `old` hands its zip codes to a new DS (the last id, a new building
    # near it) in three weekly waves, starting at 60% of the history.
    move = None
    active_ds = np.ones((nd, n_all))
    if nd >= 2:
        new = nd - 1
        old = int(rng.choice(nd - 1, p=_choice_weights(base[: nd - 1])))
        net.regions[net.dss[new]] = ds_region[new] = ds_region[old]
        net.xy[net.dss[new]] = net.xy[net.dss[old]] + rng.normal(0, 8, 2)
        base[new], growth[new], sens[new] = base[old], growth[old], sens[old]
        t_move = int(0.6 * T)
        wave = max(1, min(7, T // 30))
        moved = np.zeros(n_all)
        for k in range(3):
            moved[t_move + k * wave :] = (k + 1) / 3
        active_ds[new], active_ds[old] = moved, 1 - moved
        move = (old, new, t_move)

    # Disruptions: weather closes part of a region for 1-3 days; most of the lost volume
    # ships in the following four days.
    disrupt = np.ones((nd, n_all))
    for _ in range(2 + T // 365):
        r = rng.integers(R)
        dur = int(rng.integers(1, 4))
        t0 = int(rng.integers(min(7, T - 8), max(min(7, T - 8) + 1, T - 14)))
        drop = rng.uniform(0.2, 0.5)
        hit = ds_region == r
        disrupt[np.ix_(hit, np.arange(t0, t0 + dur))] *= drop
        rebound = 1 + 0.8 * (1 - drop) * dur / 4
        disrupt[np.ix_(hit, np.arange(t0 + dur, min(t0 + dur + 4, n_all)))] *= rebound
    ds_factor = (
        base[:, None]
        * np.exp(growth[:, None] * t_years[None, :])
        * season[ds_region]
        * events[None, :] ** sens[:, None]
        * disrupt
        * active_ds
    )
    ds_factor = np.clip(ds_factor, 0, None)

    # An FC outage (power, systems): one day at a third, the backlog over the next two.
    fc_factor = np.ones((nf, n_all))
    t_out = int(rng.integers(T // 4, max(T // 4 + 1, T - 10)))
    fc_factor[rng.integers(nf), t_out : t_out + 3] = (0.35, 1.3, 1.3)[: min(3, n_all - t_out)]

    # Which FCs ship to which DS: bigger and nearer FCs carry more.
    fc_size = np.exp(rng.normal(0, 0.3, nf))
    share = fc_size[:, None] * np.exp(-net.miles(net.fcs[:, None], net.dss[None, :]) / 900)
    share /= share.sum(axis=0, keepdims=True)  # (nf, nd)

    # Topology: DS service, gateways, FC -> SC lanes.
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
    gateway = {}
    for r in range(R):  # the region's SC nearest its centre receives out-of-region volume
        local = net.scs[sc_region == r]
        if local.size:
            centre = net.xy[local].mean(axis=0)
            gateway[r] = int(local[np.argmin(np.linalg.norm(net.xy[local] - centre, axis=1))])
    fc_sc = set()
    for f in net.fcs:
        for s in net.scs:
            if net.regions[s] == net.regions[f] or gateway[net.regions[s]] == s:
                fc_sc.add((int(f), int(s)))

    # Direct FC -> DS lanes for the largest same-region flows (not the moving DSs).
    od_mean = share * base[None, :]
    eligible = net.regions[net.fcs][:, None] == ds_region[None, :]
    if move is not None:
        eligible[:, [move[0], move[1]]] = False
    n_direct = max(1, round(0.02 * nf * nd))
    cand = np.flatnonzero(eligible.ravel())
    cand = cand[np.argsort(-od_mean.ravel()[cand], kind="stable")][:n_direct]
    direct = {int(c): rng.uniform(0.6, 0.9) for c in cand}
    opening = int(rng.choice(cand)) if cand.size else None
    t_open = int(0.35 * T)

    # Paths: every FC -> DS pair splits over a direct lane and its DS's serving SCs.
    path_od: list[int] = []
    path_share: list[np.ndarray | float] = []
    pairs: list[tuple[int, int]] = []  # (path, lane)
    for fi, f in enumerate(net.fcs):
        for j, d in enumerate(net.dss):
            od = fi * nd + j
            alpha: np.ndarray | float = direct.get(od, 0.0)
            if od == opening:
                alpha = np.where(np.arange(n_all) >= t_open, alpha, 0.0)
            if od in direct:
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
    n_od, n_path = nf * nd, len(path_od)
    path_od_a = np.array(path_od)
    S = np.empty((n_path, n_all))
    for p, s in enumerate(path_share):
        S[p] = s

    # SC-originated volume on SC -> SC lanes: busy transfer lanes and sparse ones.
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
    path_lanes = {lane for _, lane in pairs}
    mesh_active = np.ones((len(mesh_lane), n_all))
    # One busy SC -> SC lane that carries only SC volume closes at 45% of the history.
    closing = [
        i for i, lane in enumerate(mesh_lane) if not mesh_sparse[i] and lane not in path_lanes
    ]
    if closing:
        mesh_active[int(rng.choice(closing)), int(0.45 * T) :] = 0.0
    mesh_mu = (
        mesh_mean_a[:, None]
        * season[np.array(mesh_region, dtype=int)]
        * np.sqrt(events)[None, :]
        * mesh_active
    )  # SC volume reacts less to events

    # Expected (noise-free) demand per FC -> DS pair and day.
    fc_of_od = np.repeat(np.arange(nf), nd)
    ds_of_od = np.tile(np.arange(nd), nf)
    mu = share.ravel()[:, None] * ds_factor[ds_of_od] * fc_factor[fc_of_od]

    # Realised demand: Poisson-gamma with shocks per DS-day, per pair-day and per day.
    h = slice(0, T)
    g_ds = rng.gamma(80.0, 1 / 80.0, (nd, T))
    g_od = rng.gamma(150.0, 1 / 150.0, (n_od, T))
    g_day = np.exp(rng.normal(0, 0.03, T))
    v = rng.poisson(mu[:, h] * g_ds[ds_of_od] * g_od * g_day[None, :])

    # Split each pair's packages over its paths (multinomial, one rank at a time).
    rank = np.zeros(n_path, dtype=int)
    for p in range(1, n_path):
        rank[p] = rank[p - 1] + 1 if path_od[p] == path_od[p - 1] else 0
    x = np.zeros((n_path, T))
    left = v.astype(np.int64)
    left_p = np.ones((n_od, T))
    for r_ in range(rank.max() + 1):
        idx = np.flatnonzero(rank == r_)
        ods = path_od_a[idx]
        prob = np.where(left_p[ods] > 1e-9, S[idx, h] / np.maximum(left_p[ods], 1e-12), 0.0)
        last = np.isin(idx + 1, np.flatnonzero(rank == 0)) | (idx + 1 == n_path)
        prob[last] = 1.0  # the last path takes whatever is left
        draw = rng.binomial(left[ods], np.clip(prob, 0, 1))
        x[idx] = draw
        left[ods] -= draw
        left_p[ods] -= S[idx, h]

    n_lane = len(net.lanes)
    p_idx, l_idx = np.array(pairs).T
    A = sparse.csr_matrix((np.ones(len(pairs)), (l_idx, p_idx)), shape=(n_lane, n_path))
    M = sparse.csr_matrix(
        (np.ones(len(mesh_lane)), (mesh_lane_a, np.arange(len(mesh_lane)))),
        shape=(n_lane, len(mesh_lane)),
    )
    expected = A @ (S * mu[path_od_a]) + M @ mesh_mu  # (n_lane, n_all)
    k_mesh = np.where(mesh_sparse_a, 1.5, 20.0)[:, None]
    mesh_real = rng.poisson(mesh_mu[:, h] * rng.gamma(k_mesh, 1 / k_mesh, (len(mesh_lane), T)))
    volume = A @ x + M @ mesh_real  # (n_lane, T), whole packages

    # Lanes that carry nothing but sparse SC volume log only the days they ship.
    sparse_lane = np.zeros(n_lane, bool)
    sparse_lane[mesh_lane_a[mesh_sparse_a]] = True
    sparse_lane[list(path_lanes)] = False
    return _tables(cfg, rng, net, region_names, expected, volume, sparse_lane, serve, gateway)


def _throughput(net: _Net, lane_o: np.ndarray, lane_d: np.ndarray, flow: np.ndarray):
    """Packages sorted per node and day: the larger of inbound and outbound."""
    n = len(net.names)
    out = np.zeros((n, flow.shape[1]))
    inn = np.zeros((n, flow.shape[1]))
    np.add.at(out, lane_o, flow)
    np.add.at(inn, lane_d, flow)
    return np.maximum(out, inn)


def _tables(
    cfg: SampleConfig,
    rng: np.random.Generator,
    net: _Net,
    region_names: list[str],
    expected: np.ndarray,
    volume: np.ndarray,
    sparse_lane: np.ndarray,
    serve: list[list[tuple[int, float]]],
    gateway: dict[int, int],
) -> dict[str, pl.DataFrame]:
    """Nodes with capacities, lanes with costs, and the history rows."""
    T = cfg.days
    n_lane = len(net.lanes)
    ends = np.array(sorted(net.lanes, key=net.lanes.get))
    lane_o, lane_d = ends[:, 0], ends[:, 1]
    kinds = np.array(net.kinds)
    lane_type = np.char.add(np.char.add(kinds[lane_o], "-"), kinds[lane_d])
    miles = net.miles(lane_o, lane_d)

    # Capacity is sized on the noise-free volume of the recent past and the planning
    # horizon; the lower of the two peaks, so a binding facility binds in both.
    recent = slice(T - RECENT, T)
    ahead = slice(T, T + HORIZON)
    thru = _throughput(net, lane_o, lane_d, expected)
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
    nodes = pl.DataFrame(
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

    # Lanes: trucks sized by lane type, cost by distance, transit one day per ~550 miles.
    truck = np.array([rng.choice(TRUCK_SIZES[t]) for t in lane_type])
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
    lanes = pl.DataFrame(
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

    # History rows: every active day of every lane; sparse lanes only on days with volume.
    active = expected[:, :T] > 1e-9
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
            "lane_type": pl.Series(lane_type[li]),
        }
    )
    order = np.lexsort((lane_d, lane_o))
    rank = np.empty(n_lane, int)
    rank[order] = np.arange(n_lane)
    history = history.with_columns(_r=pl.Series(rank[li])).sort("_r", "date").drop("_r")
    lanes = lanes.sort("origin", "destination")
    kind_order = {"FC": 0, "SC": 1, "DS": 2}
    nodes = nodes.sort(pl.col("kind").replace_strict(kind_order), "node")
    return {"history": history, "nodes": nodes, "lanes": lanes}
