"""The network as the optimizer indexes it: facilities and lanes as arrays, and reachability.

`index_network` checks the nodes and lanes tables for everything the optimizer relies on and
turns them into a `Network` of NumPy arrays (facilities by index, lanes as origin/destination
index pairs). `adjacency` and `reach` answer "where can volume go from here" on it, and
`default_penalty` prices a package that goes unserved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import scipy.sparse as sp

from mmplan.config import OptimizeConfig
from mmplan.errors import DataError
from mmplan.tables import validate_lanes, validate_nodes

# Volumes below this fraction of the largest demand are solver noise, not packages.
NOISE = 1e-7


@dataclass
class Network:
    """Facilities and lanes as arrays; lane a runs from facility lo[a] to facility ld[a]."""

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
    # Fleet budgets (mmplan.plan.fleet): trucks in use per day network-wide, and per lane
    # origin facility (inf where none); `owner` is each lane's origin in the network's own
    # direction, kept when the network is reversed.
    fleet_total: float = math.inf
    fleet_node: np.ndarray | None = None
    owner: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.names)

    def reversed(self) -> Network:
        """The same network with every lane pointing the other way."""
        return Network(**{**self.__dict__, "lo": self.ld, "ld": self.lo})

    def keep_lanes(self, keep: np.ndarray) -> Network:
        """The network with only the lanes `keep` (a mask or lane indices). Each kept lane
        keeps its origin for the per-origin fleet budgets (`owner`), which a copy of the
        lane arrays alone left at its old length, counting other lanes' trucks."""
        owner = self.owner if self.owner is not None else self.lo
        return replace(
            self,
            lo=self.lo[keep],
            ld=self.ld[keep],
            u=self.u[keep],
            f=self.f[keep],
            c=self.c[keep],
            maxt=self.maxt[keep],
            owner=owner[keep],
        )


def fail(what: str, problems: list[str]) -> None:
    """Raise one DataError naming every problem, or return when there are none."""
    if problems:
        raise DataError(f"{what}: " + "; ".join(problems) + ". Fix the input and run again.")


def names_list(values: list[str], limit: int = 5) -> str:
    """The first `limit` values, and how many more there are."""
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def index_network(nodes: pl.DataFrame, lanes: pl.DataFrame, config: OptimizeConfig) -> Network:
    """Check nodes and lanes for everything the optimizer relies on, and index them (the
    fleet budgets are added by mmplan.plan.fleet.with_fleet)."""
    fail("nodes table is not valid", [p.describe() for p in validate_nodes(nodes)])
    fail("lanes table is not valid", [p.describe() for p in validate_lanes(lanes, nodes)])
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
    lo = np.array([index[o] for o in lanes["origin"].to_list()], dtype=np.int64)
    return Network(
        names=names,
        kind=nodes["kind"].to_numpy().astype(str),
        cap=nodes["capacity"].fill_null(np.inf).to_numpy(),
        handling=nodes["handling_cost"].to_numpy(),
        extra=nodes["extra_capacity"].fill_null(0.0).to_numpy(),
        extra_cost=nodes["extra_capacity_cost"].fill_null(0.0).to_numpy(),
        transit=np.isin(nodes["kind"].to_numpy().astype(str), list(config.transit_kinds)),
        lo=lo,
        ld=np.array([index[d] for d in lanes["destination"].to_list()], dtype=np.int64),
        u=lanes["truck_capacity"].to_numpy(),
        f=lanes["cost_per_truck"].to_numpy(),
        c=lanes["cost_per_package"].fill_null(0.0).to_numpy(),
        maxt=lanes["max_trucks"].fill_null(np.inf).to_numpy(),
        owner=lo,
    )


def default_penalty(net: Network) -> float:
    """A per-package penalty above the cost of carrying a package on any simple path.

    A path visits at most |T| transit facilities, so it has at most |T|+1 lanes and |T|+2
    facilities; price it with the dearest lanes (a whole truck each) and facilities.
    """
    hops = min(int(net.transit.sum()) + 1, len(net.lo))
    lane_cost = np.sort(net.f + net.c)[::-1][:hops].sum()
    node_cost = np.sort(net.handling + net.extra_cost)[::-1][: hops + 1].sum()
    return float(math.ceil(lane_cost + node_cost) + 1)


def adjacency(net: Network, rows: np.ndarray) -> sp.csr_matrix:
    """Lane adjacency keeping only lanes that leave a node where `rows` is True."""
    keep = rows[net.lo]
    return sp.csr_matrix((np.ones(keep.sum()), (net.lo[keep], net.ld[keep])), shape=(net.n,) * 2)


def reach(adj: sp.csr_matrix, start: np.ndarray) -> np.ndarray:
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
