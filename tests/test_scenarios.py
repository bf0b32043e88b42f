"""Scenario files and fleet budgets on a tiny network, real solver and real Parquet."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_optimize import lanes, nodes
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import FleetConfig, OptimizeConfig
from mmplan.errors import DataError
from mmplan.plan import optimize, plan_scenarios
from mmplan.scenario_file import ScenarioFile

D1, D2, D3 = (dt.date(2025, 3, 3) + dt.timedelta(days=i) for i in range(3))
NODES = nodes(
    ("F1", "FC", None, 0.0, None, None),
    ("F2", "FC", None, 0.0, None, None),
    ("S1", "SC", None, 0.1, None, None),
    ("S2", "SC", None, 0.2, None, None),
    ("D1", "DS", None, 0.0, None, None),
    ("D2", "DS", None, 0.0, None, None),
)
LANES = lanes(
    ("F1", "S1", 10, 20, 0.0, None),
    ("F1", "S2", 10, 35, 0.0, None),
    ("F2", "S1", 10, 20, 0.0, None),
    ("S1", "D1", 10, 20, 0.0, None),
    ("S1", "D2", 10, 20, 0.0, None),
    ("S2", "D1", 10, 30, 0.0, None),
    ("S2", "D2", 10, 30, 0.0, None),
)
PAIRS = (("F1", "D1", 6.0), ("F1", "D2", 4.0), ("F2", "D1", 5.0), ("F1", "S1", 3.0))
DEMAND = pl.DataFrame(
    {
        "date": [d for d in (D1, D2, D3) for _ in PAIRS],
        "origin": [p[0] for _ in range(3) for p in PAIRS],
        "destination": [p[1] for _ in range(3) for p in PAIRS],
        "volume": [p[2] * (1 + i) for i in range(3) for p in PAIRS],
    }
)
CFG = OptimizeConfig(time_limit=30, relative_gap=1e-6, workers=2)


def spec(*scenarios: dict) -> ScenarioFile:
    return ScenarioFile.model_validate({"scenario": list(scenarios)})


def run(*scenarios: dict, cfg: OptimizeConfig = CFG):
    return plan_scenarios(DEMAND, NODES, LANES, cfg, spec(*scenarios), "volume")


def on(df: pl.DataFrame, date: dt.date) -> pl.DataFrame:
    return df.filter(pl.col("date") == date)


def test_a_facility_down_carries_nothing_and_its_own_volume_is_closed():
    down = {"type": "facility_down", "facility": "S1", "start": D2, "end": D2}
    result = run({"name": "s1_down", "change": [down]})
    base, sp = result.plans["base"].plan, result.plans["s1_down"]
    plan = sp.plan
    assert sp.resolved_dates == [str(D2)] and sp.reused_dates == [str(D1), str(D3)]
    day = on(plan.flows, D2)
    assert day.filter(
        (pl.col("lane_origin") == "S1") | (pl.col("lane_destination") == "S1")
    ).is_empty()
    assert on(plan.trucks, D2).filter(pl.col("destination") == "S1").is_empty()
    # F1's volume re-routes through S2; F2 has no path avoiding S1, so it goes unserved.
    served = day.filter(pl.col("lane_destination") == pl.col("destination"))
    assert served.filter(pl.col("origin") == "F1")["volume"].sum() == pytest.approx(20.0)
    assert on(plan.unserved, D2)["volume"].sum() == pytest.approx(10.0)
    # Volume ending at S1 is closed-facility volume, apart from unserved volume.
    assert sp.closed["volume"].sum() == pytest.approx(6.0)
    assert plan.summary["totals"]["closed_facility_volume"] == pytest.approx(6.0)
    row = result.comparison.filter(pl.col("scenario") == "s1_down").row(0, named=True)
    assert row["closed_facility_volume"] == pytest.approx(6.0)
    assert row["unserved_volume"] == pytest.approx(10.0)
    # The other dates are the base plan's, bit for bit.
    for table in ("trucks", "flows", "nodes", "unserved"):
        for date in (D1, D3):
            assert on(getattr(plan, table), date).equals(on(getattr(base, table), date))


def test_a_multiplier_of_one_reproduces_the_base_plan():
    same = {"type": "demand", "multiply": 1.0, "origin": "F1"}
    result = run({"name": "same", "change": [same]})
    base, plan = result.plans["base"].plan, result.plans["same"].plan
    assert result.plans["same"].resolved_dates == []
    for table in ("trucks", "flows", "nodes", "unserved"):
        assert getattr(plan, table).equals(getattr(base, table))
    row = result.comparison.filter(pl.col("scenario") == "same").row(0, named=True)
    assert row["delta_total_cost"] == 0 and row["delta_trucks"] == 0


def test_the_base_plan_is_the_plain_optimize_plan():
    result = run({"name": "x", "change": [{"type": "demand", "multiply": 2.0, "start": D3}]})
    alone = optimize(DEMAND, NODES, LANES, CFG, column="volume")
    assert result.plans["base"].plan.trucks.equals(alone.trucks)
    # Only the changed date is re-solved.
    assert result.plans["x"].resolved_dates == [str(D3)]
    doubled = on(result.plans["x"].plan.flows, D3)
    assert doubled.filter(pl.col("lane_destination") == pl.col("destination"))[
        "volume"
    ].sum() == pytest.approx(2 * 3 * sum(p[2] for p in PAIRS))


def test_network_changes_add_remove_and_price_lanes():
    changes = [
        {"type": "remove_lane", "origin": "S1", "destination": "D2"},
        {
            "type": "add_lane",
            "origin": "F1",
            "destination": "D1",
            "truck_capacity": 50,
            "cost_per_truck": 1.0,
        },
        {"type": "capacity", "facility": "S2", "capacity": 1000.0},
        {"type": "lane", "origin": "F2", "destination": "S1", "cost_per_truck": 5.0},
    ]
    plan = run({"name": "net", "change": changes}).plans["net"].plan
    assert plan.trucks.filter(
        (pl.col("origin") == "S1") & (pl.col("destination") == "D2")
    ).is_empty()
    direct = plan.flows.filter(
        (pl.col("lane_origin") == "F1") & (pl.col("lane_destination") == "D1")
    )
    assert direct["volume"].sum() == pytest.approx(6 + 12 + 18)
    f2 = plan.trucks.filter(pl.col("origin") == "F2")
    assert (f2["cost"] / f2["trucks"]).to_list() == pytest.approx([5.0] * f2.height)


def test_adding_to_a_pair_without_demand_creates_its_volume():
    # F2 -> D2 has no demand on any date; 7 packages a day on D2 and D3 must be planned
    # (over F2 -> S1 -> D2: no truck lane joins them) and nothing on D1, which is reused.
    add = {"type": "demand", "lane": "F2->D2", "add": 7.0, "start": D2}
    sp = run({"name": "new_pair", "change": [add]}).plans["new_pair"]
    assert sp.resolved_dates == [str(D2), str(D3)] and sp.reused_dates == [str(D1)]
    pair = (pl.col("origin") == "F2") & (pl.col("destination") == "D2")
    delivered = sp.plan.flows.filter(pair & (pl.col("lane_destination") == "D2"))
    unserved = sp.plan.unserved.filter(pair)
    per_date = {
        d: on(delivered, d)["volume"].sum() + on(unserved, d)["volume"].sum() for d in (D1, D2, D3)
    }
    assert per_date == pytest.approx({D1: 0.0, D2: 7.0, D3: 7.0})
    # The same addition keyed by origin and destination does the same.
    keyed = {"type": "demand", "origin": "F2", "destination": "D2", "add": 7.0, "start": D2}
    other = run({"name": "keyed", "change": [keyed]}).plans["keyed"].plan
    assert other.flows.equals(sp.plan.flows)
    # A change matching a set of rows (one origin) still leaves pairs without demand alone.
    broad = {"type": "demand", "origin": "F2", "add": 1.0}
    flows = run({"name": "broad", "change": [broad]}).plans["broad"].plan.flows
    assert flows.filter(pair).is_empty()


def test_a_lane_key_names_a_demand_pair_of_two_facilities():
    # F1 -> D1 is demand routed through a sort center, not a truck lane.
    double = {"type": "demand", "lane": "F1->D1", "multiply": 2.0, "start": D1, "end": D1}
    plan = run({"name": "double", "change": [double]}).plans["double"].plan
    pair = (pl.col("origin") == "F1") & (pl.col("destination") == "D1")
    moved = on(plan.flows, D1).filter(pair & (pl.col("lane_destination") == "D1"))
    assert moved["volume"].sum() + on(plan.unserved, D1).filter(pair)["volume"].sum() == (
        pytest.approx(12.0)
    )
    for lane in ("F1->D9", "F1->F1"):
        with pytest.raises(DataError, match=f"key 'lane' = '{lane}'.*two different facilities"):
            run({"name": "bad", "change": [{"type": "demand", "lane": lane, "add": 1.0}]})


def test_names_the_data_lacks_are_data_errors():
    with pytest.raises(DataError, match="scenario 'bad', change 1 \\(facility_down\\).*'S9'"):
        run({"name": "bad", "change": [{"type": "facility_down", "facility": "S9"}]})
    with pytest.raises(DataError, match="lane S1->F1"):
        run(
            {
                "name": "bad",
                "change": [{"type": "remove_lane", "origin": "S1", "destination": "F1"}],
            }
        )


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(total=st.integers(min_value=0, max_value=8), per_f1=st.integers(min_value=0, max_value=6))
def test_a_fleet_budget_is_never_exceeded(total, per_f1):
    cfg = CFG.model_copy(
        update={"fleet": FleetConfig(total=total, origin={"F1": per_f1}), "time_limit": 10}
    )
    plan = optimize(DEMAND, NODES, LANES, cfg, column="volume")
    per_date = plan.trucks.group_by("date").agg(pl.col("trucks").sum())
    assert (per_date["trucks"] <= total + 1e-9).all()
    f1 = plan.trucks.filter(pl.col("origin") == "F1").group_by("date").agg(pl.col("trucks").sum())
    assert (f1["trucks"] <= per_f1 + 1e-9).all()
    fleet = plan.summary["fleet"]
    assert fleet["peak"] == pytest.approx(float(per_date["trucks"].max() or 0.0))


def test_fleet_needed_and_the_marginal_value_of_one_more_truck():
    free = optimize(DEMAND, NODES, LANES, CFG, column="volume")
    peak = free.summary["fleet"]["peak"]
    assert free.summary["fleet"]["peak_date"] == str(D3)
    tight = CFG.model_copy(update={"fleet": FleetConfig(total=int(peak) - 1)})
    plan = optimize(DEMAND, NODES, LANES, tight, column="volume")
    value = plan.summary["fleet"]["marginal_value"]["total"]
    assert value["method"].startswith("re-solved")
    assert str(D3) in value["per_date"]
    # One more truck on the peak date gives back the free plan's cost there.
    free_d3 = free.summary["per_date"][str(D3)]["objective"]
    tight_d3 = plan.summary["per_date"][str(D3)]["objective"]
    assert value["per_date"][str(D3)] == pytest.approx(tight_d3 - free_d3, rel=1e-6)


def test_the_marginal_value_of_a_scenario_is_measured_on_its_dates_network():
    # S1 is down on D3 and the fleet is one truck short of the scenario's own plan there:
    # one more truck must save what the scenario itself saves with that truck (re-solved
    # on the network without S1), not what it would save with S1 open.
    down = {"type": "facility_down", "facility": "S1", "start": D3, "end": D3}
    free = run({"name": "down", "change": [down]}).plans["down"].plan
    need = int(
        free.trucks.filter(pl.col("date") == D3)["trucks"].sum()
    )  # the scenario's fleet on D3
    tight, loose = (
        run({"name": "down", "change": [down], "fleet": {"total": n}}).plans["down"].plan
        for n in (need - 1, need)
    )
    value = tight.summary["fleet"]["marginal_value"]["total"]
    d3 = str(D3)
    saved = tight.summary["per_date"][d3]["objective"] - loose.summary["per_date"][d3]["objective"]
    assert value["per_date"][d3] == pytest.approx(saved, rel=1e-6)


def test_fleet_re_solves_are_skipped_when_the_plan_left_no_time(tmp_path):
    # time_limit bounds the whole run: with under a second of it, there is no time left
    # for the re-solves, and the summary says so instead of reporting a saving.
    free = optimize(DEMAND, NODES, LANES, CFG, column="volume")
    budget = FleetConfig(total=int(free.summary["fleet"]["peak"]) - 1)
    cfg = CFG.model_copy(update={"fleet": budget, "time_limit": 0.5})
    plan = optimize(DEMAND, NODES, LANES, cfg, column="volume")
    value = plan.summary["fleet"]["marginal_value"]["total"]
    assert value["saved"] is None and value["per_date"] == {}
    assert value["method"].startswith("not measured")
    assert plan.summary["fleet"]["budget"]["total"] == budget.total


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, df in (("nodes", NODES), ("lanes", LANES), ("demand", DEMAND)):
        out[name] = tmp_path / f"{name}.parquet"
        df.write_parquet(out[name])
    return out


def cli(files: dict[str, Path], scenarios: str, *extra: str):
    out = files["nodes"].parent / "plans"
    args = [
        "optimize",
        str(files["demand"]),
        "--nodes",
        str(files["nodes"]),
        "--lanes",
        str(files["lanes"]),
        "-o",
        str(out),
        "--scenarios",
        scenarios,
        *extra,
    ]
    return CliRunner().invoke(app, args), out


SCENARIOS = """
[[scenario]]
name = "s1_down"
[[scenario.change]]
type = "facility_down"
facility = "S1"
start = 2025-03-04
end = 2025-03-04
"""


def test_cli_writes_a_plan_folder_per_scenario_and_the_comparison(files):
    path = files["nodes"].parent / "s.toml"
    path.write_text(SCENARIOS)
    result, out = cli(files, str(path), "--json")
    assert result.exit_code == 0, result.output
    assert {"base", "s1_down", "comparison.parquet", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
    assert (out / "s1_down" / "closed.parquet").exists()
    comparison = pl.read_parquet(out / "comparison.parquet")
    assert comparison["scenario"].to_list() == ["base", "s1_down"]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["comparison"][1]["dates_resolved"] == 1


@pytest.mark.parametrize(
    ("text", "code", "needles"),
    [
        (SCENARIOS.replace("facility =", "facilty ="), 78, ["s1_down", "change 1", "facilty"]),
        (SCENARIOS.replace('"S1"', "1"), 78, ["s1_down", "facility"]),
        (SCENARIOS.replace('"S1"', '"S9"'), 65, ["s1_down", "change 1", "S9"]),
        (SCENARIOS + 'column = "hi_80"\n', 78, ["s1_down", "change 1", "column"]),
        (
            SCENARIOS.replace('name = "s1_down"', 'name = "s1_down"\ncolumn = "hi_80"'),
            65,
            ["s1_down", "column", "hi_80"],
        ),
        ("[[scenario]]\nname = 'base'\n", 78, ["base"]),
    ],
)
def test_cli_exit_codes_for_bad_scenario_files(files, text, code, needles):
    path = files["nodes"].parent / "s.toml"
    path.write_text(text)
    result, _ = cli(files, str(path))
    assert result.exit_code == code, result.output
    for needle in needles:
        assert needle in result.output
    # The error is the scenario file's: it names that file first, before any table.
    flat = "".join(result.output.split())
    assert flat.startswith("error:") and flat.split(":")[1].endswith("s.toml"), result.output


def test_a_missing_scenario_file_is_66(files):
    result, _ = cli(files, str(files["nodes"].parent / "none.toml"))
    assert result.exit_code == 66, result.output


def test_the_shipped_scenario_file_loads():
    from mmplan.scenario_file import load_scenarios

    root = Path(__file__).resolve().parents[1]
    assert len(load_scenarios(root / "configs" / "scenarios.toml").scenario) >= 4


def test_a_scenario_that_cannot_be_planned_does_not_stop_the_others(monkeypatch):
    import mmplan.plan.parallel as parallel
    from mmplan.errors import InfeasibleError

    real = parallel.solve_date

    def solve_date(day, net, penalty, config, limit):
        if (net.maxt == 0).any():  # the scenario that removes a lane: its solver "gives up"
            raise InfeasibleError("SCIP stopped (NOT_SOLVED) without a feasible plan")
        return real(day, net, penalty, config, limit)

    monkeypatch.setattr(parallel, "solve_date", solve_date)
    result = run(
        {
            "name": "broken",
            "change": [{"type": "remove_lane", "origin": "S1", "destination": "D2"}],
        },
        {"name": "fine", "change": [{"type": "demand", "multiply": 1.5, "start": D3}]},
    )
    rows = {r["scenario"]: r for r in result.comparison.to_dicts()}
    assert rows["broken"]["status"] == "FAILED" and "NOT_SOLVED" in rows["broken"]["message"]
    assert rows["broken"]["total_cost"] is None
    assert rows["fine"]["status"] != "FAILED" and rows["fine"]["total_cost"] > 0
    assert result.plans["broken"].plan is None


@pytest.mark.parametrize(
    ("fleet", "code"),
    [
        ("total = 3", 0),
        ("origin = { F1 = 2 }", 0),
        ("origin = { S9 = 2 }", 65),
        ('total = "three"', 78),
        ("totl = 3", 78),
        ("total = -1", 78),
    ],
)
def test_cli_fleet_budget_and_its_exit_codes(files, fleet, code):
    cfg = files["nodes"].parent / "fleet.toml"
    cfg.write_text(f"[optimize]\ntime_limit = 20.0\n[optimize.fleet]\n{fleet}\n")
    out = files["nodes"].parent / "plan"
    args = [
        "optimize",
        str(files["demand"]),
        "--nodes",
        str(files["nodes"]),
        "--lanes",
        str(files["lanes"]),
        "-o",
        str(out),
        "--column",
        "volume",
        "--config",
        str(cfg),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    if code == 0:
        summary = json.loads((out / "summary.json").read_text())
        if fleet.startswith("total"):
            assert summary["fleet"]["peak"] <= 3
        else:
            assert summary["fleet"]["peak_per_origin"]["F1"] <= 2
            f1 = pl.read_parquet(out / "trucks.parquet").filter(pl.col("origin") == "F1")
            assert (f1.group_by("date").agg(pl.col("trucks").sum())["trucks"] <= 2).all()
        assert "fleet: peak" in result.output
        if summary["fleet"]["marginal_value"]:
            assert "one more truck a day" in result.output


def test_a_scenario_plan_is_simulated_on_its_own_network(tmp_path):
    from mmplan.cli.inputs import plan_scenario
    from mmplan.config import SimulateConfig
    from mmplan.plan.simulation import PlanTables, sample_demand, simulate

    changes = [
        {
            "type": "add_lane",
            "origin": "F1",
            "destination": "D1",
            "truck_capacity": 50,
            "cost_per_truck": 1.0,
        },
        {"type": "capacity", "facility": "S1", "capacity": 20.0},
    ]
    plan = run({"name": "net", "change": changes}).plans["net"].plan
    # The plan folder's summary.json gives back the scenario it was planned on.
    (tmp_path / "summary.json").write_text(json.dumps(plan.summary, default=str))
    scenario = plan_scenario(tmp_path)
    assert scenario is not None and scenario.name == "net" and len(scenario.change) == 2
    # Twice the planned demand, no spread; spot trucks can be hired on any lane.
    forecast = DEMAND.select(
        "date", "origin", "destination", (pl.col("volume") * 2).alias("forecast")
    ).with_columns(
        level=pl.lit("lane"),
        unique_id=pl.format("lane:{}/{}", "origin", "destination"),
        lo_80=pl.col("forecast"),
        hi_80=pl.col("forecast"),
    )
    cfg = SimulateConfig(samples=2, seed=1, spot_premium=1.0)
    ds = sample_demand(forecast, cfg, 2, 1)
    tables = PlanTables(plan.trucks, plan.nodes, scenario)
    res = simulate({"net": tables}, ds, NODES, LANES, CFG, cfg)
    pairs = {
        (o, d): row
        for o, d, *row in res.pairs.select(
            "origin", "destination", "demand", "unserved"
        ).iter_rows()
    }
    # The added lane carries F1 -> D1 (the base lanes alone would not know the plan's
    # trucks on it); S1 takes at most 20 a day, so of what must arrive there (F2 -> D1 has
    # no other way, F1 -> S1 ends there) at most 60 of 96 gets through over 3 dates, where
    # the base network's unlimited S1 would take all of it on spot trucks.
    through_s1 = [("F2", "D1"), ("F1", "S1")]
    demand = sum(pairs[p][0] for p in through_s1)
    served = demand - sum(pairs[p][1] for p in through_s1)
    assert demand == pytest.approx(96.0)
    assert 0 < served <= 60 + 1e-6
    assert pairs[("F1", "D1")][1] == pytest.approx(0.0, abs=1e-6)
