"""Reader for the MCND (.dow) network design instances: the tests' own in tests/data/mcnd.

It maps an instance onto mmplan's tables as the data README says: every node a facility
volume may pass through (no capacity, no handling cost), every arc a lane with
truck_capacity = capacity, cost_per_truck = fixed cost, max_trucks = 1,
cost_per_package = unit cost, and every commodity a demand row on one date. The plan's
objective then equals the instance's. It lives with the tests: it is not part of mmplan.

The tests solve only the instances vendored in tests/data/mcnd, so a fresh clone needs
nothing beside it; the benchmarks pass `root` to read the full published sets.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

__all__ = ["VENDORED_DIR", "OPTIMA", "read_dow"]

VENDORED_DIR = Path(__file__).resolve().parent / "data" / "mcnd"

# Proven optima from the data README.
OPTIMA = {
    "C/c33": 423848,
    "C/c35": 371475,
    "C/c36": 643036,
    "C/c41": 429398,
    "C/c42": 586077,
    "C/c43": 464509,
    "C/c44": 604198,
    "CPlus/c25_100_10_F_L_5": 14941,
    "CPlus/c25_100_30_F_T_5": 85530,
}


def read_dow(name: str, root: Path | None = None) -> dict[str, pl.DataFrame]:
    """Nodes, lanes and demand tables for instance `name` (e.g. "C/c33").

    Without `root`, the copy vendored in tests/data/mcnd.
    """
    root = VENDORED_DIR if root is None else root
    tokens = (root / f"{name}.dow").read_text().split()
    start = tokens.index("MULTIGEN.DAT:") + 1 if "MULTIGEN.DAT:" in tokens else 0
    n, a, k = (int(t) for t in tokens[start : start + 3])
    pos = start + 3
    arcs = [tokens[pos + 7 * i : pos + 7 * i + 5] for i in range(a)]
    pos += 7 * a
    comms = [tokens[pos + 3 * i : pos + 3 * i + 3] for i in range(k)]
    name_of = [f"N{i:03d}" for i in range(n + 1)]
    nodes = pl.DataFrame(
        {
            "node": name_of[1:],
            "kind": ["SC"] * n,
            "region": ["R"] * n,
            "capacity": [None] * n,
            "handling_cost": [0.0] * n,
        },
        schema_overrides={"capacity": pl.Float64},
    )
    lanes = pl.DataFrame(
        {
            "origin": [name_of[int(r[0])] for r in arcs],
            "destination": [name_of[int(r[1])] for r in arcs],
            "truck_capacity": [float(r[3]) for r in arcs],
            "cost_per_truck": [float(r[4]) for r in arcs],
            "cost_per_package": [float(r[2]) for r in arcs],
            "max_trucks": [1.0] * a,
        }
    )
    demand = pl.DataFrame(
        {
            "date": [dt.date(2025, 1, 1)] * k,
            "origin": [name_of[int(r[0])] for r in comms],
            "destination": [name_of[int(r[1])] for r in comms],
            "volume": [float(r[2]) for r in comms],
        }
    )
    return {"nodes": nodes, "lanes": lanes, "demand": demand}
