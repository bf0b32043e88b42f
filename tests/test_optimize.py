"""mmplan.optimize on tiny networks solved by hand, and on MCND instances with known optima."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from mcnd import OPTIMA, read_dow

from mmplan.config import OptimizeConfig
from mmplan.errors import DataError, InfeasibleError
from mmplan.plan import Plan, default_penalty, demand_rows, optimize

DAY = dt.date(2025, 3, 3)


def nodes(*rows: tuple) -> pl.DataFrame:
    """(node, kind, capacity, handling, extra, extra_cost) rows."""
    return pl.DataFrame(
        [
            dict(
                zip(
                    (
                        "node",
                        "kind",
                        "capacity",
                        "handling_cost",
                        "extra_capacity",
                        "extra_capacity_cost",
                    ),
                    r,
                    strict=True,
                )
            )
            | {"region": "R"}
            for r in rows
        ],
        schema={
            "node": pl.String,
            "kind": pl.String,
            "capacity": pl.Float64,
            "handling_cost": pl.Float64,
            "extra_capacity": pl.Float64,
            "extra_capacity_cost": pl.Float64,
            "region": pl.String,
        },
    )


def lanes(*rows: tuple) -> pl.DataFrame:
    """(origin, destination, truck_capacity, cost_per_truck, cost_per_package, max_trucks)."""
    return pl.DataFrame(
        [
            dict(
                zip(
                    (
                        "origin",
                        "destination",
                        "truck_capacity",
                        "cost_per_truck",
                        "cost_per_package",
                        "max_trucks",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in rows
        ],
        schema={
            "origin": pl.String,
            "destination": pl.String,
            "truck_capacity": pl.Float64,
            "cost_per_truck": pl.Float64,
            "cost_per_package": pl.Float64,
            "max_trucks": pl.Float64,
        },
    )


def demand(*rows: tuple, day: dt.date = DAY) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [day] * len(rows),
            "origin": [r[0] for r in rows],
            "destination": [r[1] for r in rows],
            "volume": [float(r[2]) for r in rows],
        }
    )


CFG = OptimizeConfig(time_limit=20, relative_gap=1e-6, workers=1)

NODES = nodes(
    ("F1", "FC", None, 0.0, None, None),
    ("F2", "FC", None, 0.0, None, None),
    ("S", "SC", None, 0.0, None, None),
    ("D", "DS", None, 0.0, None, None),
)


def solve(d: pl.DataFrame, n: pl.DataFrame, lanes_: pl.DataFrame, **cfg) -> Plan:
    return optimize(d, n, lanes_, CFG.model_copy(update=cfg), column="volume")


def trucks_on(plan: Plan, o: str, d: str) -> float:
    row = plan.trucks.filter((pl.col("origin") == o) & (pl.col("destination") == d))
    return float(row["trucks"].sum())


def test_cheaper_path_through_a_sort_center_wins_over_direct():
    # Direct costs 100 a truck; F1 -> S -> D costs 30 + 30.
    ln = lanes(
        ("F1", "D", 10, 100, 0, None), ("F1", "S", 10, 30, 0, None), ("S", "D", 10, 30, 0, None)
    )
    plan = solve(demand(("F1", "D", 5)), NODES, ln)
    assert plan.summary["objective"] == pytest.approx(60)
    assert trucks_on(plan, "F1", "D") == 0
    assert plan.flows["volume"].sum() == pytest.approx(10)  # 5 packages on two lanes


def test_two_origins_consolidate_at_the_sort_center():
    # Direct: 50 + 50. Consolidated: 20 + 20 + one shared truck S -> D at 30 = 70.
    ln = lanes(
        ("F1", "D", 10, 50, 0, None),
        ("F2", "D", 10, 50, 0, None),
        ("F1", "S", 10, 20, 0, None),
        ("F2", "S", 10, 20, 0, None),
        ("S", "D", 10, 30, 0, None),
    )
    plan = solve(demand(("F1", "D", 4), ("F2", "D", 4)), NODES, ln)
    assert plan.summary["objective"] == pytest.approx(70)
    assert trucks_on(plan, "S", "D") == 1


def test_trucks_are_whole_and_package_costs_count():
    ln = lanes(("F1", "D", 10, 100, 0.5, None))
    plan = solve(demand(("F1", "D", 25)), NODES, ln)
    assert trucks_on(plan, "F1", "D") == 3
    assert plan.summary["objective"] == pytest.approx(300 + 12.5)
    assert plan.trucks["utilization"][0] == pytest.approx(25 / 30)


def test_max_trucks_pushes_volume_onto_the_longer_path():
    # One truck direct (cap 10), the other 5 packages through S.
    ln = lanes(("F1", "D", 10, 40, 0, 1), ("F1", "S", 10, 30, 0, None), ("S", "D", 10, 30, 0, None))
    plan = solve(demand(("F1", "D", 15)), NODES, ln)
    assert plan.summary["objective"] == pytest.approx(40 + 60)
    via = plan.flows.filter(pl.col("lane_origin") == "S")["volume"].sum()
    # The direct truck holds 10, so at least 5 go through S; packages cost nothing, so any
    # split from 10/5 to 5/10 costs the same 100 (which one is the LP's vertex choice).
    assert 5 - 1e-6 <= via <= 10 + 1e-6
    direct = plan.flows.filter(pl.col("lane_origin") == "F1", pl.col("lane_destination") == "D")
    assert direct["volume"].sum() <= 10 + 1e-6


def test_extra_capacity_is_bought_and_its_shadow_price_is_its_cost():
    # S sorts 5 a day; 3 more cost 2 each. 7 packages must pass S (throughput 7), so it
    # buys 2 and has 1 left to buy: the price of capacity is exactly the price of buying.
    n = nodes(
        ("F1", "FC", None, 0.0, None, None),
        ("S", "SC", 5.0, 1.0, 3.0, 2.0),
        ("D", "DS", None, 0.0, None, None),
    )
    ln = lanes(("F1", "S", 10, 10, 0, None), ("S", "D", 10, 10, 0, None))
    plan = solve(demand(("F1", "D", 7)), n, ln)
    s = plan.nodes.filter(pl.col("node") == "S").row(0, named=True)
    assert s["throughput"] == pytest.approx(7)
    assert s["added_capacity"] == pytest.approx(2)
    assert s["shadow_price"] == pytest.approx(2)  # one more unit saves one bought unit
    assert plan.summary["objective"] == pytest.approx(20 + 7 * 1.0 + 2 * 2)
    assert plan.summary["totals"]["unserved_volume"] == 0


def test_volume_beyond_capacity_is_unserved_at_the_penalty_not_an_error():
    n = nodes(
        ("F1", "FC", None, 0.0, None, None),
        ("S", "SC", 5.0, 0.0, 2.0, 1.0),
        ("D", "DS", None, 0.0, None, None),
    )
    ln = lanes(("F1", "S", 10, 10, 0, None), ("S", "D", 10, 10, 0, None))
    plan = solve(demand(("F1", "D", 9)), n, ln)
    penalty = plan.summary["unserved_penalty"]
    assert plan.unserved["volume"].sum() == pytest.approx(2)
    assert plan.summary["totals"]["unserved_penalty_cost"] == pytest.approx(2 * penalty)
    assert plan.summary["objective"] == pytest.approx(20 + 2 * 1.0 + 2 * penalty)
    # The default penalty is above the dearest path: two lanes with a whole truck each.
    assert penalty > 10 + 10 + 1.0


def test_penalty_is_above_any_path_cost():
    ln = lanes(
        ("F1", "D", 10, 100, 0.5, None), ("F1", "S", 10, 30, 1, None), ("S", "D", 10, 30, 0, None)
    )
    from mmplan.plan.network import index_network as _network

    assert default_penalty(_network(NODES, ln, CFG)) > max(100.5, 31 + 30)


def test_days_are_planned_independently():
    ln = lanes(("F1", "D", 10, 100, 0, None))
    d = pl.concat([demand(("F1", "D", 5)), demand(("F1", "D", 15), day=DAY + dt.timedelta(1))])
    plan = solve(d, NODES, ln, workers=2)
    assert sorted(plan.trucks["trucks"].to_list()) == [1, 2]
    assert plan.summary["dates"] == 2


def test_demand_can_start_and_end_at_a_sort_center_but_not_pass_a_delivery_station():
    ln = lanes(("S", "D", 10, 10, 0, None), ("D", "F1", 10, 10, 0, None))
    plan = solve(demand(("S", "D", 3)), NODES, ln)
    assert plan.summary["objective"] == pytest.approx(10)
    with pytest.raises(DataError, match="S->F1"):
        solve(demand(("S", "F1", 3)), NODES, ln)  # would have to pass through D


def test_relaxation_bounds_the_mip_and_reports_its_duals():
    ln = lanes(
        ("F1", "D", 10, 100, 0, None), ("F1", "S", 10, 30, 0, None), ("S", "D", 10, 30, 0, None)
    )
    mip = solve(demand(("F1", "D", 15)), NODES, ln)
    lp = solve(demand(("F1", "D", 15)), NODES, ln, relax=True)
    assert lp.summary["objective"] <= mip.summary["objective"] + 1e-6
    assert lp.summary["problem"] == "LP relaxation"
    assert "relaxation" in lp.summary["shadow_prices"]


def test_a_partly_filled_last_truck_is_paid_whole_or_rerouted_in_the_lp_too():
    # F1 -> S: 150 packages on trucks of 100 at 100 each, or partly via T, whose own 50 leave
    # room for 50 more on one F1 -> T truck; T -> S costs 30. Best: one truck on each lane,
    # 230. The plain LP pays 1.5 + 0.5 trucks, 200; the rounding cut on F1 -> S
    # (50 y + volume re-routed into S >= 100) makes it re-route 50 packages: 215.
    n = nodes(
        ("F1", "FC", None, 0.0, None, None),
        ("S", "SC", None, 0.0, None, None),
        ("T", "SC", None, 0.0, None, None),
    )
    ln = lanes(
        ("F1", "S", 100, 100, 0, None), ("F1", "T", 100, 100, 0, None), ("T", "S", 100, 30, 0, None)
    )
    d = demand(("F1", "S", 150), ("F1", "T", 50))
    mip = solve(d, n, ln)
    lp = solve(d, n, ln, relax=True)
    assert mip.summary["objective"] == pytest.approx(230)
    assert lp.summary["objective"] == pytest.approx(215)


def test_destination_keyed_commodities_give_the_same_answer():
    # One destination, several origins: the model is solved on the reversed network.
    ln = lanes(
        ("F1", "D", 10, 50, 0, None),
        ("F2", "D", 10, 50, 0, None),
        ("F1", "S", 10, 20, 0, None),
        ("F2", "S", 10, 20, 0, None),
        ("S", "D", 10, 30, 0, None),
    )
    plan = solve(demand(("F1", "D", 4), ("F2", "D", 4)), NODES, ln)
    pair = plan.flows.filter(pl.col("origin") == "F2")
    assert set(pair["lane_origin"].to_list()) == {"F2", "S"}
    assert pair.filter(pl.col("lane_origin") == "S")["volume"].sum() == pytest.approx(4)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda n, ln, d: (n, pl.concat([ln, ln.head(1)]), d), "duplicated lanes"),
        (
            lambda n, ln, d: (n, ln.with_columns(truck_capacity=pl.lit(0.0)), d),
            "truck capacity that is not a positive",
        ),
        (lambda n, ln, d: (n, ln, demand(("F1", "X9", 3))), "X9"),
        (lambda n, ln, d: (n, pl.concat([ln, lanes(("S", "Q1", 10, 5, 0, None))]), d), "Q1"),
        (
            lambda n, ln, d: (n.with_columns(extra_capacity=pl.lit(5.0)), ln, d),
            "extra_capacity without",
        ),
        (lambda n, ln, d: (n.with_columns(capacity=pl.lit(-1.0)), ln, d), "negative capacity"),
        (lambda n, ln, d: (n, ln.filter(pl.col("destination") != "D"), d), "F1->D"),
    ],
    ids=[
        "duplicate-lane",
        "truck-capacity",
        "unknown-facility",
        "lane-to-nowhere",
        "contradictory-limits",
        "negative-capacity",
        "no-path",
    ],
)
def test_bad_inputs_are_data_errors_that_name_the_culprits(change, match):
    ln = lanes(("F1", "S", 10, 30, 0, None), ("S", "D", 10, 30, 0, None))
    n, ln, d = change(NODES, ln, demand(("F1", "D", 5)))
    with pytest.raises(DataError, match=match):
        solve(d, n, ln)


def test_a_time_limit_without_any_plan_is_infeasible_error(solver_without_a_plan):
    inst = read_dow("C/c33")
    with pytest.raises(
        InfeasibleError, match=r"SCIP stopped \(NOT_SOLVED\) without a feasible plan"
    ):
        optimize(
            inst["demand"],
            inst["nodes"],
            inst["lanes"],
            OptimizeConfig(workers=1),
            column="volume",
        )


def test_forecast_tables_plan_their_lane_rows_and_chosen_column():
    fc = pl.DataFrame(
        {
            "unique_id": ["total", "F1/D"],
            "level": ["total", "lane"],
            "origin": [None, "F1"],
            "destination": [None, "D"],
            "date": [DAY, DAY],
            "forecast": [7.0, 7.0],
            "hi_80": [9.0, 9.0],
            "model": ["AutoETS"] * 2,
        }
    )
    rows = demand_rows(fc, "hi_80")
    assert rows.height == 1 and rows["hi_80"][0] == 9.0
    with pytest.raises(DataError, match="no column 'hi_95'"):
        demand_rows(fc, "hi_95")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["C/c33", "C/c41"])
def test_mcnd_instances_reach_their_published_optimum(name):
    inst = read_dow(name)
    gap = 1e-4
    plan = optimize(
        inst["demand"],
        inst["nodes"],
        inst["lanes"],
        OptimizeConfig(time_limit=60, relative_gap=gap),
        column="volume",
    )
    best = OPTIMA[name]
    s = plan.summary
    assert s["totals"]["unserved_volume"] == 0
    assert s["best_bound"] <= best + 1e-6 * best  # the bound is valid
    assert s["objective"] <= best * (1 + gap) + 1e-6  # and the plan is within the gap
    assert s["objective"] >= best - 1e-6 * best


def test_progress_is_reported_per_date():
    from pathlib import Path

    good = Path(__file__).parent / "data" / "good"
    demand = pl.read_parquet(good / "demand.parquet")
    calls = []
    optimize(
        demand,
        pl.read_parquet(good / "nodes.parquet"),
        pl.read_parquet(good / "lanes.parquet"),
        OptimizeConfig(workers=2),
        column="volume",
        progress=lambda *a: calls.append(a),
    )
    dates = demand["date"].n_unique()
    assert calls[0][:2] == (0, dates) and calls[-1][:2] == (dates, dates)
