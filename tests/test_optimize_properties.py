"""Hypothesis properties of mmplan.optimize on random small networks.

Every plan, whatever the network: flows are conserved per pair, no lane carries more than
its trucks hold, no facility sorts more than its capacity plus what was added, trucks are
whole numbers within max_trucks, the objective is the sum of its parts, and the LP
relaxation's objective is a lower bound on the MIP's.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmplan.config import OptimizeConfig
from mmplan.plan import optimize

DAY = dt.date(2025, 6, 2)
# Solver output is floating point: the product checks every plan to 1e-5 of the largest
# demand (mmplan.plan.check.TOL), and so do these properties. Demands here are at most 40.
TOL = 1e-5 * 40


@st.composite
def networks(draw):
    """2 FCs, 1-3 SCs, 2-4 DSs; random lanes, capacities, costs and demand."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    fcs = [f"F{i}" for i in range(2)]
    scs = [f"S{i}" for i in range(draw(st.integers(1, 3)))]
    dss = [f"D{i}" for i in range(draw(st.integers(2, 4)))]
    names = fcs + scs + dss
    kinds = ["FC"] * len(fcs) + ["SC"] * len(scs) + ["DS"] * len(dss)
    cap = [None if k == "DS" or rng.random() < 0.3 else float(rng.integers(10, 80)) for k in kinds]
    extra = [
        float(rng.integers(0, 20)) if c is not None and rng.random() < 0.5 else None for c in cap
    ]
    nodes = pl.DataFrame(
        {
            "node": names,
            "kind": kinds,
            "region": ["R"] * len(names),
            "capacity": cap,
            "handling_cost": rng.uniform(0, 1, len(names)).round(2),
            "extra_capacity": extra,
            "extra_capacity_cost": [float(rng.uniform(0.5, 3)) if e else None for e in extra],
        },
        schema_overrides={
            "capacity": pl.Float64,
            "extra_capacity": pl.Float64,
            "extra_capacity_cost": pl.Float64,
        },
    )
    pairs = {(f, s) for f in fcs for s in scs} | {(s, d) for s in scs for d in dss}
    pairs |= {(a, b) for a in scs for b in scs if a != b and rng.random() < 0.5}
    pairs |= {(f, d) for f in fcs for d in dss if rng.random() < 0.4}
    pairs = sorted(pairs)
    lanes = pl.DataFrame(
        {
            "origin": [p[0] for p in pairs],
            "destination": [p[1] for p in pairs],
            "truck_capacity": rng.integers(5, 30, len(pairs)).astype(float),
            "cost_per_truck": rng.uniform(10, 100, len(pairs)).round(1),
            "cost_per_package": rng.uniform(0, 0.5, len(pairs)).round(2),
            "max_trucks": [
                float(rng.integers(1, 4)) if rng.random() < 0.3 else None for _ in pairs
            ],
        },
        schema_overrides={"max_trucks": pl.Float64},
    )
    od = sorted({(f, d) for f in fcs for d in dss if rng.random() < 0.7} | {(fcs[0], dss[0])})
    days = [DAY, DAY + dt.timedelta(days=1)][: draw(st.integers(1, 2))]
    demand = pl.DataFrame(
        {
            "date": [d for d in days for _ in od],
            "origin": [o for _ in days for o, _ in od],
            "destination": [t for _ in days for _, t in od],
            "volume": rng.integers(1, 40, len(od) * len(days)).astype(float),
        }
    )
    return nodes, lanes, demand


def check_plan(plan, nodes, lanes, demand):
    flows, trucks = plan.flows, plan.trucks
    # Conservation per pair: out - in = served at the origin, -served at the destination.
    served = demand.join(
        plan.unserved.rename({"volume": "lost"}), on=["date", "origin", "destination"], how="left"
    ).with_columns(served=pl.col("volume") - pl.col("lost").fill_null(0.0))
    out = flows.group_by("date", "origin", "destination", node="lane_origin").agg(
        pl.col("volume").sum().alias("out")
    )
    inn = flows.group_by("date", "origin", "destination", node="lane_destination").agg(
        pl.col("volume").sum().alias("in")
    )
    bal = (
        out.join(inn, on=["date", "origin", "destination", "node"], how="full", coalesce=True)
        .fill_null(0.0)
        .join(
            served.select("date", "origin", "destination", "served"),
            on=["date", "origin", "destination"],
        )
        .with_columns(
            want=pl.when(pl.col("node") == pl.col("origin"))
            .then(pl.col("served"))
            .when(pl.col("node") == pl.col("destination"))
            .then(-pl.col("served"))
            .otherwise(0.0)
        )
    )
    assert (bal["out"] - bal["in"] - bal["want"]).abs().max() < TOL
    for row in served.iter_rows(named=True):  # a served pair leaves its origin
        if row["served"] > TOL:
            left = bal.filter(
                (pl.col("origin") == row["origin"])
                & (pl.col("destination") == row["destination"])
                & (pl.col("date") == row["date"])
                & (pl.col("node") == row["origin"])
            )
            assert left["out"].sum() == pytest.approx(row["served"], abs=TOL)
    # Trucks: whole, within max_trucks, carrying no more than they hold.
    lane_load = flows.group_by("date", origin="lane_origin", destination="lane_destination").agg(
        pl.col("volume").sum().alias("load")
    )
    t = lane_load.join(trucks, on=["date", "origin", "destination"], how="left").join(
        lanes, on=["origin", "destination"]
    )
    assert (t["load"] <= t["trucks"].fill_null(0) * t["truck_capacity"] + TOL).all()
    assert (trucks["trucks"] == trucks["trucks"].round(0)).all()
    capped = trucks.join(lanes, on=["origin", "destination"]).filter(
        pl.col("max_trucks").is_not_null()
    )
    assert (capped["trucks"] <= capped["max_trucks"]).all()
    # Facilities: throughput within capacity plus added, added within what is offered.
    n = plan.nodes.join(nodes.select("node", "extra_capacity"), on="node")
    limited = n.filter(pl.col("capacity").is_not_null())
    assert (limited["throughput"] <= limited["capacity"] + limited["added_capacity"] + TOL).all()
    assert (n["added_capacity"] <= n["extra_capacity"].fill_null(0.0) + TOL).all()
    # Objective: the sum of its parts.
    s = plan.summary
    parts = s["totals"]
    total = (
        parts["truck_cost"]
        + parts["package_cost"]
        + parts["handling_cost"]
        + parts["extra_capacity_cost"]
        + parts["unserved_penalty_cost"]
    )
    assert total == pytest.approx(s["objective"], rel=1e-6, abs=1e-6)
    assert s["best_bound"] <= s["objective"] + 1e-6 * abs(s["objective"]) + 1e-6


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_random_networks_give_checked_plans_bounded_by_their_lp(net):
    nodes, lanes, demand = net
    cfg = OptimizeConfig(time_limit=10, relative_gap=1e-6, workers=1)
    plan = optimize(demand, nodes, lanes, cfg, column="volume")
    check_plan(plan, nodes, lanes, demand)
    lp = optimize(demand, nodes, lanes, cfg.model_copy(update={"relax": True}), column="volume")
    assert (
        lp.summary["objective"]
        <= plan.summary["objective"] + 1e-6 * plan.summary["objective"] + 1e-6
    )
    # Recompute the truck and package costs from the tables themselves.
    t = plan.trucks.join(lanes, on=["origin", "destination"])
    cost = (t["trucks"] * t["cost_per_truck"] + t["volume"] * t["cost_per_package"]).sum()
    assert cost == pytest.approx(
        plan.summary["totals"]["truck_cost"] + plan.summary["totals"]["package_cost"],
        rel=1e-9,
        abs=1e-6,
    )
