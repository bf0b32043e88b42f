"""Demand is conserved however small or large its units: served + unserved = demand per pair
for volumes scaled by 1e-9 .. 1e9, the solver's absolute tolerances notwithstanding."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from test_optimize import NODES, demand, solve
from test_optimize_cli import LANES

from mmplan.plan import Plan

PAIRS = [("F1", "D"), ("F2", "D"), ("F1", "S"), ("F2", "S")]
KEYS = ["origin", "destination", "date"]


def served_and_unserved(plan: Plan, wanted: pl.DataFrame) -> pl.DataFrame:
    """Per demand pair: its demand, what its flows bring into its destination, and what the
    plan reports unserved."""
    served = (
        plan.flows.filter(pl.col("lane_destination") == pl.col("destination"))
        .group_by(KEYS)
        .agg(pl.col("volume").sum().alias("served"))
    )
    unserved = plan.unserved.group_by(KEYS).agg(pl.col("volume").sum().alias("unserved"))
    return (
        wanted.join(served, on=KEYS, how="left").join(unserved, on=KEYS, how="left").fill_null(0.0)
    )


@settings(max_examples=12)
@given(
    volumes=st.lists(st.floats(0.01, 0.1), min_size=len(PAIRS), max_size=len(PAIRS)),
    exponent=st.sampled_from([-9, -6, -3, 0, 3, 6, 9]),
    relax=st.booleans(),
)
def test_served_plus_unserved_is_demand_at_every_scale(volumes, exponent, relax):
    factor = 10.0**exponent
    wanted = demand(*((o, d, v * factor) for (o, d), v in zip(PAIRS, volumes, strict=True)))
    plan = solve(wanted, NODES, LANES, relax=relax)
    got = served_and_unserved(plan, wanted)
    error = (got["served"] + got["unserved"] - got["volume"]).abs() / got["volume"]
    assert error.max() <= 1e-6, got
    # The plan's own tables agree: every lane that carries volume lists its trucks.
    carried = plan.flows.group_by("lane_origin", "lane_destination").agg(pl.col("volume").sum())
    assert abs(carried["volume"].sum() - plan.trucks["volume"].sum()) <= 1e-6 * (
        carried["volume"].sum() + factor * 1e-9
    )
