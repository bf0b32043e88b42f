"""Why volume goes unserved, per pair (A15): a penalty below the cost of carrying is named as
the reason, not capacity; capacity is blamed only when capacity is what binds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from test_optimize import NODES, demand, solve
from test_optimize_cli import LANES, run

from mmplan.config import OptimizeConfig
from mmplan.plan.network import index_network
from mmplan.plan.unserved import carry_costs

# On LANES (handling 0), F1 -> D and F2 -> D both cost 7.2 per package at full trucks (via S:
# 30/10 + 0.1 + 40/10 + 0.1); 6 packages alone on those trucks pay 70/6 + 0.2 each.
BOTH = demand(("F1", "D", 6), ("F2", "D", 4))


def test_carry_costs_price_the_cheapest_path_through_transit_facilities():
    net = index_network(NODES, LANES, OptimizeConfig())
    ix = {n: i for i, n in enumerate(net.names.tolist())}
    po = np.array([ix["F1"], ix["F2"], ix["F1"], ix["F1"]])
    pt = np.array([ix["D"], ix["D"], ix["S"], ix["D"]])
    full, alone = carry_costs(net, po, pt, np.array([1.0, 5.0, 20.0, 1e-3]))
    np.testing.assert_allclose(full, [7.2, 7.2, 3.1, 7.2])
    # Alone on the path via S: 30/v + 0.1 + 40/v + 0.1, a truck holding at most 10.
    np.testing.assert_allclose(alone, [70.2, 14.2, 3.1, 70_000.2])
    # A DS is no transit facility: nothing reaches F1 from D, nor S through D.
    back, _ = carry_costs(net, np.array([ix["D"]]), np.array([ix["F1"]]), np.ones(1))
    assert np.isinf(back).all()


def test_a_penalty_below_the_carrying_cost_is_the_reason_not_capacity():
    plan = solve(BOTH, NODES, LANES, unserved_penalty=0.5)
    assert plan.unserved["volume"].sum() == 10
    reasons = plan.summary["unserved_reasons"]
    assert [r["reason"] for r in reasons] == ["penalty"]
    assert reasons[0]["volume"] == 10 and reasons[0]["pairs"] == 2
    assert "below the cost of carrying" in reasons[0]["message"]
    assert "raise [optimize] unserved_penalty" in reasons[0]["message"]
    assert "capacity" not in reasons[0]["message"]
    assert {p["reason"] for p in plan.summary["unserved_pairs"]} == {"penalty"}


def test_a_penalty_that_pays_only_for_full_trucks_says_so():
    # 8 per package beats 7.2 at full trucks, but 10 packages do not fill what they need.
    plan = solve(BOTH, NODES, LANES, unserved_penalty=8.0)
    assert plan.unserved["volume"].sum() == 10
    reasons = plan.summary["unserved_reasons"]
    assert [r["reason"] for r in reasons] == ["truck_fill"]
    assert "part-full" in reasons[0]["message"]


def test_less_than_a_package_a_day_is_not_blamed_on_capacity():
    # The default penalty beats a whole truck per package, not per 1e-6 of a package.
    plan = solve(demand(("F1", "D", 1e-6)), NODES, LANES)
    assert plan.unserved["volume"].sum() == 1e-6
    assert [r["reason"] for r in plan.summary["unserved_reasons"]] == ["truck_fill"]


def test_capacity_is_blamed_when_capacity_binds():
    tight = NODES.with_columns(capacity=pl.when(pl.col("node") == "S").then(5.0))
    plan = solve(demand(("F2", "D", 30)), tight, LANES)  # the default penalty
    assert plan.unserved["volume"].sum() == 25
    reasons = plan.summary["unserved_reasons"]
    assert [r["reason"] for r in reasons] == ["capacity"]
    assert reasons[0]["message"] == "capacity ran out"


def test_the_summary_line_and_summary_json_name_the_penalty(tmp_path: Path):
    files = {}
    for name, df in (("nodes", NODES), ("lanes", LANES), ("demand", BOTH)):
        files[name] = tmp_path / f"{name}.parquet"
        df.write_parquet(files[name])
    cfg = tmp_path / "cheap.toml"
    cfg.write_text("[optimize]\nunserved_penalty = 0.5\n")
    result = run(files, "--config", str(cfg), "--json")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "the penalty (0.5 per package) is below the cost of carrying it" in text
    assert "capacity ran out" not in text
    printed = json.loads(result.stdout)["unserved"]
    assert [r["reason"] for r in printed["reasons"]] == ["penalty"]
    assert {p["reason"] for p in printed["worst_pairs"]} == {"penalty"}
    written = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert written["unserved_reasons"][0]["reason"] == "penalty"
