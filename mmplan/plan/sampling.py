"""Demand samples for `mmplan simulate`: coherent across the hierarchy, correlated in time.

A forecast table states marginal intervals only; the joint model (`sample_demand`) draws
every level from its own reconciled interval, top-down, so that each level adds up to the
one above in every sample and the network's total spreads as its own interval says:

    top t (the network's total):  T_t = max(F_t + σ_t ε_t, 0),  σ = (hi_p - lo_p) / (2 z_p)
        of the total's forecast row (z_p the normal quantile of the interval p, [simulate]
        interval), ε an AR(1) series across dates with lag-1 autocorrelation ρ_T
        ([simulate] total_autocorrelation, 0.8) and unit variance;
    child c of parent P (origins of the total, lanes of their origin):
        V_ct = P_t · w_c m_ct / Σ_k∈P w_k m_kt,   w_c = F_ct / F_Pt its share,
        m_ct = exp(τ_c ζ_ct - τ_c²/2) the child's own noise, ζ AR(1) with lag-1
        autocorrelation ρ ([simulate] autocorrelation, 0.3) and unit variance, and
        τ_c = sqrt(max(σ_c² - w_c² σ_P², 0)) / F_c the part of the child's own interval
        its parent's does not explain.

Lanes add up to their origin and origins to the total exactly in every sample. Without
total rows in the forecast, origins are drawn independently of each other, each normal from
its own interval with ρ_T; without origin rows, an origin's σ is the sum of its lanes' (fully
correlated, the cautious choice).

Measured against 12-cutoff backtests (benchmarks/joint_model.py, README "Simulation"): the
first model drew origins independently, and the samples' central 80% held 35% (sample), 60%
(births) and 74% (pizza) of the total's days; top-down it holds what the total's own
interval does (70%, 76%, 82%). One ρ of 0.5 for every level left sums over a week of each
origin and the 28-day network volume too narrow: the network's error persists across the
horizon (a level error), a share's much less, hence two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import polars as pl
import scipy.sparse as sp

from mmplan.config import SimulateConfig
from mmplan.errors import DataError

__all__ = ["JOINT_MODEL", "DemandSamples", "sample_demand"]

JOINT_MODEL = (
    "the network's total normal with sigma from its lo/hi width (truncated at 0), split over "
    "origins and then lanes by their shares with each one's own lognormal noise; lag-1 "
    "autocorrelated across dates; lanes add up to their origin and origins to the total"
)


@dataclass
class DemandSamples:
    """Lane demand rows (date, origin, destination, forecast) and their samples."""

    rows: pl.DataFrame
    volume: np.ndarray  # (samples, rows)
    parents: pl.DataFrame  # origin, date, forecast
    parent_volume: np.ndarray  # (samples, parents)
    seed: int


def _ar1(rng: np.random.Generator, shape: tuple[int, int, int], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along the last axis."""
    eta = rng.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0] = eta[..., 0]
    scale = math.sqrt(1.0 - rho * rho)
    for t in range(1, shape[-1]):
        out[..., t] = rho * out[..., t - 1] + scale * eta[..., t]
    return out


def _interval(forecast: pl.DataFrame, p: int) -> tuple[str, str, float]:
    lo, hi = f"lo_{p}", f"hi_{p}"
    missing = [c for c in (lo, hi) if c not in forecast.columns]
    if missing:
        raise DataError(
            f"forecast has no column {', '.join(missing)} for [simulate] interval = {p}; its "
            "intervals are "
            + (", ".join(c for c in forecast.columns if c.startswith("hi_")) or "none")
            + ". Set [simulate] interval to one of them."
        )
    return lo, hi, NormalDist().inv_cdf(0.5 + p / 200)


@dataclass
class _Level:
    """One level's rows for the split: forecast and sigma per row, the parent row of each,
    and each row's series and date (the AR(1) noise runs along a series' dates)."""

    forecast: np.ndarray
    sigma: np.ndarray
    parent: np.ndarray
    series: np.ndarray
    date: np.ndarray
    n_series: int


def _split(
    rng: np.random.Generator,
    parent_volume: np.ndarray,
    parent_forecast: np.ndarray,
    parent_sigma: np.ndarray,
    child: _Level,
    n_dates: int,
    rho: float,
) -> np.ndarray:
    """(samples, children): each parent's sampled volume split over its children by their
    forecast shares, each share times the child's own lognormal noise, renormalized so the
    children add up to the parent exactly."""
    samples = parent_volume.shape[0]
    pf, ps = parent_forecast[child.parent], parent_sigma[child.parent]
    cf = child.forecast
    w = np.divide(cf, pf, out=np.zeros(len(cf)), where=pf > 0)
    resid = np.sqrt(np.maximum(child.sigma**2 - (w * ps) ** 2, 0.0))
    tau = np.divide(resid, cf, out=np.zeros(len(cf)), where=cf > 0)
    tau = np.minimum(tau, 3.0)  # a forecast near zero with a wide interval
    zeta = _ar1(rng, (samples, child.n_series, n_dates), rho)[:, child.series, child.date]
    wm = w * np.exp(tau * zeta - tau**2 / 2)
    group = sp.csr_matrix(
        (np.ones(len(cf)), (np.arange(len(cf)), child.parent)),
        shape=(len(cf), len(parent_forecast)),
    )
    total = np.asarray(wm @ group)[:, child.parent]
    share = np.divide(wm, total, out=np.zeros_like(wm), where=total > 0)
    return parent_volume[:, child.parent] * share


def _codes(values: list) -> tuple[np.ndarray, dict]:
    """Integer codes of `values` in sorted order, and the code of each distinct value."""
    index = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.array([index[v] for v in values], dtype=np.int64), index


def sample_demand(
    forecast: pl.DataFrame, config: SimulateConfig, samples: int, seed: int
) -> DemandSamples:
    """`samples` coherent demand samples from a forecast table (see the module docstring)."""
    if "level" not in forecast.columns or forecast.filter(pl.col("level") == "lane").is_empty():
        raise DataError("the forecast table has no lane-level rows to sample.")
    lo, hi, z = _interval(forecast, config.interval)
    sigma = ((pl.col(hi) - pl.col(lo)).clip(lower_bound=0) / (2 * z)).alias("sigma")
    lanes = (
        forecast.filter(pl.col("level") == "lane")
        .select("origin", "destination", "date", pl.col("forecast").clip(lower_bound=0), sigma)
        .sort("origin", "destination", "date")
    )
    parents = lanes.group_by("origin", "date").agg(
        pl.col("forecast").sum(), pl.col("sigma").sum().alias("lane_sigma")
    )
    own = forecast.filter(pl.col("level") == "origin").select(
        "origin", "date", sigma.alias("own_sigma")
    )
    parents = (
        parents.join(own, on=["origin", "date"], how="left")
        .with_columns(sigma=pl.coalesce("own_sigma", "lane_sigma"))
        .select("origin", "date", "forecast", "sigma")
        .sort("origin", "date")
    )
    dates = sorted(set(lanes["date"].to_list()))
    t_of = {d: i for i, d in enumerate(dates)}
    rng = np.random.default_rng(seed)
    rho = config.autocorrelation
    p_t = np.array([t_of[d] for d in parents["date"].to_list()], dtype=np.int64)
    p_o, o_code = _codes(parents["origin"].to_list())
    pf, ps = parents["forecast"].to_numpy(), parents["sigma"].to_numpy()
    top = _total_sigma(forecast, sigma, dates)
    top_rho = config.total_autocorrelation
    if top is None:  # origins independent, each from its own interval
        eps = _ar1(rng, (samples, len(o_code), len(dates)), top_rho)
        parent_volume = np.maximum(pf + ps * eps[:, p_o, p_t], 0.0)
    else:
        tf = np.bincount(p_t, pf, len(dates))  # the lanes' sum: coherent with them
        eps = _ar1(rng, (samples, 1, len(dates)), top_rho)[:, 0, :]
        top_volume = np.maximum(tf + top * eps, 0.0)
        origins = _Level(pf, ps, p_t, p_o, p_t, len(o_code))
        parent_volume = _split(rng, top_volume, tf, top, origins, len(dates), rho)
    p_index = {(o, t): i for i, (o, t) in enumerate(zip(p_o.tolist(), p_t.tolist(), strict=True))}
    l_t = np.array([t_of[d] for d in lanes["date"].to_list()], dtype=np.int64)
    l_p = np.array(
        [
            p_index[(o_code[o], t)]
            for o, t in zip(lanes["origin"].to_list(), l_t.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    l_s, l_code = _codes(
        list(zip(lanes["origin"].to_list(), lanes["destination"].to_list(), strict=True))
    )
    child = _Level(
        lanes["forecast"].to_numpy(), lanes["sigma"].to_numpy(), l_p, l_s, l_t, len(l_code)
    )
    volume = _split(rng, parent_volume, pf, ps, child, len(dates), rho)
    return DemandSamples(lanes.drop("sigma"), volume, parents.drop("sigma"), parent_volume, seed)


def _total_sigma(forecast: pl.DataFrame, sigma: pl.Expr, dates: list) -> np.ndarray | None:
    """The network total's sigma per date from its forecast rows, or None when the table
    has no total row for every date."""
    rows = forecast.filter(pl.col("level") == "total").select("date", sigma)
    by_date = dict(zip(rows["date"].to_list(), rows["sigma"].to_list(), strict=True))
    if not dates or any(d not in by_date or by_date[d] is None for d in dates):
        return None
    return np.array([float(by_date[d]) for d in dates])
