"""The restricted MIP in disaggregated form: one commodity per demand pair, on the lanes of
the plan pool only.

The date's model keys commodities by origin (or destination), which is exact but makes
strong linking weak: x_ka <= min(b_ka, u_a) y_a with b_ka the whole origin's volume. Keyed by
pair, b_ka is the pair's own demand, the classic strong linking of the network design
literature, and the LP is far tighter (on R-dev r13.2: 251,085 against 221,669; best known
263,800). On the whole network that LP is too big for the time (200 pairs x 300 lanes took
GLOP over 60 s), but restricted to the lanes of the pool's best plans it is small, and SCIP
searches that neighbourhood much better with it. Its trucks then go back to the date's own
model, whose flows the LP with those trucks fixed gives (as for CP-SAT's whole packages).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from mmplan.plan.model import Model, build_model
from mmplan.plan.network import Network


class Pairs(NamedTuple):
    """The date's demand pairs as the model sees them (commodity side first)."""

    po: np.ndarray
    pt: np.ndarray
    q: np.ndarray


class Restricted(NamedTuple):
    """The disaggregated model on the kept lanes, and where its truck columns sit in the
    date's model."""

    model: Model
    to_day: np.ndarray  # y column of the date's model for each of this model's y columns


def columns(pairs: Pairs, m: Model, ub_y: np.ndarray) -> int:
    """About how many flow columns the disaggregated restricted model has."""
    return len(pairs.q) * int((ub_y > 0).sum())


def build(
    m: Model, net: Network, pairs: Pairs, penalty: float, ub_y: np.ndarray
) -> Restricted | None:
    """The disaggregated MIP on the lanes where `ub_y` (per y column of `m`) allows trucks,
    with at most those trucks (None when no lane is kept)."""
    keep = m.y_lane[ub_y > 0]
    if not len(keep):
        return None
    maxt = np.zeros(len(net.lo))
    maxt[m.y_lane] = ub_y
    sub = replace(net.keep_lanes(keep), maxt=np.minimum(net.maxt[keep], maxt[keep]))
    model = build_model(sub, pairs.po, pairs.pt, pairs.q, penalty, group=np.arange(len(pairs.q)))
    to_day = np.searchsorted(m.y_lane, keep[model.y_lane])
    return Restricted(model, to_day)


def hint(r: Restricted, day_values: np.ndarray, m: Model) -> dict[int, float]:
    """A partial hint: the trucks of a plan of the date's model (SCIP completes the flows)."""
    y = np.round(day_values[m.y_cols])[r.to_day]
    return dict(zip(r.model.y_cols.tolist(), y.tolist(), strict=True))


def day_trucks(r: Restricted, values: np.ndarray, m: Model) -> np.ndarray:
    """The restricted plan's trucks per y column of the date's model."""
    y = np.zeros(m.n_y)
    y[r.to_day] = np.round(values[r.model.y_cols])
    return y
