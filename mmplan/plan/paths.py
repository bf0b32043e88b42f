"""Per-pair flows from a plan's commodity flows: each pair's volume along paths o -> t.

The model carries one commodity per origin (or destination); the flows table and the checks
need each demand pair's own route, so each commodity's lane flows are split into paths.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmplan.plan.model import Model
from mmplan.plan.network import NOISE, Network


class PairFlows(NamedTuple):
    """Volume of demand pair `pair` on lane `lane`, one entry per (pair, lane, path)."""

    pair: np.ndarray
    lane: np.ndarray
    volume: np.ndarray


def decompose(
    m: Model,
    values: np.ndarray,
    net: Network,
    po: np.ndarray,
    pt: np.ndarray,
    q: np.ndarray,
    scale: float,
) -> PairFlows:
    """Split each commodity's lane flows into per-pair flows along paths (o -> t)."""
    x = values[: m.n_x]
    keep = x > NOISE * scale
    key, lane, vol = m.x_key[keep], m.x_lane[keep], x[keep].copy()
    s = values[m.s_cols]
    out_pair: list[int] = []
    out_lane: list[int] = []
    out_vol: list[float] = []
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
            while need > NOISE * q[p]:  # relative to the pair, however small
                path = _path_back(flow, into, net, t, k, NOISE * scale)
                if not path:
                    break  # the checker reports the pair as not conserved
                amount = min(need, *(flow[a] for a in path))
                for a in path:
                    flow[a] -= amount
                    out_pair.append(p)
                    out_lane.append(a)
                    out_vol.append(amount)
                need -= amount
    return PairFlows(
        np.array(out_pair, dtype=np.int64),
        np.array(out_lane, dtype=np.int64),
        np.array(out_vol, dtype=float),
    )


def _path_back(
    flow: dict[int, float],
    into: dict[int, list[int]],
    net: Network,
    t: int,
    k: int,
    noise: float,
) -> list[int]:
    """Lanes from k to t that still carry flow of k, found walking back from t ([] when
    there is none). A cycle of zero-cost flow met on the way is cancelled and the walk
    starts over."""
    path: list[int] = []
    node, seen = t, {t}
    while node != k:
        cands = [a for a in into.get(node, []) if flow[a] > noise]
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
    return path if node == k else []
