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

import numpy as np
import polars as pl

from mmplan.config import SampleConfig
from mmplan.synthetic import demand, network, tables

__all__ = ["sample"]


def sample(cfg: SampleConfig) -> dict[str, pl.DataFrame]:
    """Generate a network: {"history", "nodes", "lanes"} tables (see the module docstring)."""
    from scipy import sparse

    rng = np.random.default_rng(cfg.seed)
    T, H = cfg.days, tables.HORIZON
    n_all = T + H  # noise-free demand runs into the horizon to size capacities
    net, region_names = network.facilities(cfg, rng)
    R = cfg.regions
    nf, nd = len(net.fcs), len(net.dss)

    # Calendar.
    epoch = (cfg.start - dt.date(1970, 1, 1)).days
    days_np = np.arange(epoch, epoch + n_all).astype("datetime64[D]")
    dow = (np.arange(epoch, epoch + n_all) + 3) % 7  # 1970-01-01 was a Thursday
    doy = (days_np - days_np.astype("datetime64[Y]")).astype(int)
    t_years = np.arange(n_all) / 365.25
    events = demand.events(cfg.start, n_all)
    season = demand.seasons(rng, R, dow, doy)  # (R, n_all)

    # DS demand: drivers, the facility move, weather.
    drivers = demand.drivers(rng, nd)
    ds_region = net.regions[net.dss]
    move = demand.move(rng, net, drivers, ds_region, T)
    active_ds = demand.active_ds(move, nd, T, n_all)
    disrupt = demand.disruptions(rng, ds_region, R, T, n_all)
    ds_factor = (
        drivers.base[:, None]
        * np.exp(drivers.growth[:, None] * t_years[None, :])
        * season[ds_region]
        * events[None, :] ** drivers.sens[:, None]
        * disrupt
        * active_ds
    )
    ds_factor = np.clip(ds_factor, 0, None)
    fc_factor = demand.fc_outage(rng, nf, T, n_all)

    # Which FCs ship to which DS: bigger and nearer FCs carry more.
    fc_size = np.exp(rng.normal(0, 0.3, nf))
    share = fc_size[:, None] * np.exp(-net.miles(net.fcs[:, None], net.dss[None, :]) / 900)
    share /= share.sum(axis=0, keepdims=True)  # (nf, nd)

    # Topology and paths; the path lanes are created first, then the SC mesh's.
    serve = network.serving(rng, net, ds_region)
    gateway = network.gateways(net, R)
    direct = network.direct_lanes(
        rng, net, share, drivers.base, ds_region, [move.old, move.new] if move else []
    )
    paths = network.paths(net, direct, int(0.35 * T), serve, gateway, n_all)
    path_lanes = {lane for _, lane in paths.pairs}
    mesh = network.mesh(rng, net, season, events, path_lanes, T, n_all)

    # Expected (noise-free) demand per FC -> DS pair and day.
    n_od = nf * nd
    fc_of_od = np.repeat(np.arange(nf), nd)
    ds_of_od = np.tile(np.arange(nd), nf)
    mu = share.ravel()[:, None] * ds_factor[ds_of_od] * fc_factor[fc_of_od]

    # Realised demand: Poisson-gamma with shocks per DS-day, per pair-day and per day.
    h = slice(0, T)
    g_ds = rng.gamma(80.0, 1 / 80.0, (nd, T))
    g_od = rng.gamma(150.0, 1 / 150.0, (n_od, T))
    g_day = np.exp(rng.normal(0, 0.03, T))
    v = rng.poisson(mu[:, h] * g_ds[ds_of_od] * g_od * g_day[None, :])
    x = demand.split(rng, paths, v, n_od, T)

    n_lane, n_path, n_mesh = len(net.lanes), len(paths.od), len(mesh.lane)
    p_idx, l_idx = np.array(paths.pairs).T
    A = sparse.csr_matrix((np.ones(len(paths.pairs)), (l_idx, p_idx)), shape=(n_lane, n_path))
    M = sparse.csr_matrix((np.ones(n_mesh), (mesh.lane, np.arange(n_mesh))), shape=(n_lane, n_mesh))
    expected = A @ (paths.share * mu[np.array(paths.od)]) + M @ mesh.mu  # (n_lane, n_all)
    k_mesh = np.where(mesh.sparse, 1.5, 20.0)[:, None]
    mesh_real = rng.poisson(mesh.mu[:, h] * rng.gamma(k_mesh, 1 / k_mesh, (n_mesh, T)))
    volume = A @ x + M @ mesh_real  # (n_lane, T), whole packages

    # Lanes that carry nothing but sparse SC volume log only the days they ship.
    sparse_only = np.zeros(n_lane, bool)
    sparse_only[mesh.lane[mesh.sparse]] = True
    sparse_only[list(path_lanes)] = False
    out = tables.build(cfg, rng, net, region_names, expected, volume, sparse_only, serve, gateway)
    return out if cfg.market is None else tables.with_market(out, cfg.market)
