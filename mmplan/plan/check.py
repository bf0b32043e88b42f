"""The plan's own check, independent of the model that produced it.

Every date's plan is checked against the network and the demand alone before it is returned:
whole trucks within max_trucks, unserved volume within demand, conservation per pair,
pass-through only at transit facilities, lane loads within their trucks, and facility
throughput within capacity plus added capacity. A failure is a bug (exit 70), not bad input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmplan.plan.network import Network
from mmplan.plan.paths import PairFlows

# Absolute slack allowed when checking a solution, relative to the largest demand.
TOL = 1e-5


class Loads(NamedTuple):
    """What the check measured: volume per lane and throughput per facility."""

    lane: np.ndarray
    throughput: np.ndarray


def check_plan(
    net: Network,
    day: str,
    po: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    y_lane: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    s: np.ndarray,
    flows: PairFlows,
    scale: float,
    integral: bool = True,
) -> Loads:
    """Independent check of one date's plan; raises on any violation (a bug, exit 70).

    `y` holds the trucks on lanes `y_lane`, `z` the capacity added per facility, `s` the
    unserved volume per pair."""
    fp, fl, fv = flows
    # Relative to the demand, however small: an absolute floor (1e-5) is all of a pair's
    # demand when volumes are 1e-9 packages, and let unconserved plans through.
    tol = TOL * scale
    problems = []
    if integral and np.any(np.abs(y - np.round(y)) > 1e-6):
        problems.append("trucks are not integral")
    if np.any(y > net.maxt[y_lane] + 1e-6) or np.any(y < -1e-6):
        problems.append("trucks exceed max_trucks")
    if np.any(s < -tol) or np.any(s > q + tol):
        problems.append("unserved volume outside [0, demand]")
    n = net.n
    problems += _conservation(net, po, pt, q, s, flows, tol)
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
    return Loads(load, thr)


def _conservation(
    net: Network,
    po: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    s: np.ndarray,
    flows: PairFlows,
    tol: float,
) -> list[str]:
    """Conservation per pair and node: out - in = served at origin, -served at destination.
    (Skipped when the pair-by-node table would not fit in memory.)"""
    fp, fl, fv = flows
    n, npair = net.n, len(q)
    if npair * n > 5_000_000:
        return []
    bal = np.zeros((npair, n))
    np.add.at(bal, (fp, net.lo[fl]), fv)
    np.add.at(bal, (fp, net.ld[fl]), -fv)
    want = np.zeros((npair, n))
    served = q - s
    np.add.at(want, (np.arange(npair), po), served)
    np.add.at(want, (np.arange(npair), pt), -served)
    if np.abs(bal - want).max(initial=0) > tol:
        bad = np.argmax(np.abs(bal - want).max(axis=1))
        return [f"flow of pair {net.names[po[bad]]}->{net.names[pt[bad]]} is not conserved"]
    return []
