"""`optimize --grain week|month`: the weekly (monthly) capacity plan on tiny networks whose
loads, fleet and binding capacity are worked out by hand in each test.

The forecast with week rows is made here by summing a daily table into ISO weeks (the
long-range forecast that writes them is another stage's), with `date` the week's Monday.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_optimize import CFG, lanes, nodes
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import FleetConfig
from mmplan.errors import DataError
from mmplan.plan import demand_rows, optimize
from mmplan.plan.grain import operating_days

MONDAY = dt.date(2025, 3, 3)
NODES = nodes(
    ("F1", "FC", None, 0.0, None, None),
    ("F2", "FC", None, 0.0, None, None),
    ("D", "DS", None, 0.0, None, None),
)
# Two direct lanes: F1 -> D carries 10 a truck, F2 -> D 8 a truck.
LANES = lanes(("F1", "D", 10, 100, 0.0, None), ("F2", "D", 8, 100, 0.0, None))


def daily(per_day: dict[tuple[str, str], list[float]]) -> pl.DataFrame:
    """Daily demand rows from MONDAY: per lane, one volume per day."""
    rows = [
        {"date": MONDAY + dt.timedelta(days=i), "origin": o, "destination": d, "volume": v}
        for (o, d), volumes in per_day.items()
        for i, v in enumerate(volumes)
    ]
    return pl.DataFrame(rows, schema_overrides={"date": pl.Date})


def with_weeks(day_rows: pl.DataFrame) -> pl.DataFrame:
    """The daily rows (grain day) and their ISO-week sums (grain week, date = Monday)."""
    weeks = (
        day_rows.group_by("origin", "destination", pl.col("date").dt.truncate("1w"))
        .agg(pl.col("volume").sum())
        .select(day_rows.columns)
    )
    return pl.concat(
        [
            day_rows.with_columns(grain=pl.lit("day")),
            weeks.with_columns(grain=pl.lit("week")),
        ]
    ).sort("grain", "date", "origin")


# Week 1: F1 13 a day (91), F2 5 a day (35); week 2: F1 22 a day (154), F2 none.
DEMAND = daily({("F1", "D"): [13.0] * 7 + [22.0] * 7, ("F2", "D"): [5.0] * 7 + [0.0] * 7})
WEEK2 = MONDAY + dt.timedelta(days=7)


def plan_weeks(d: pl.DataFrame, nodes_: pl.DataFrame = NODES, **cfg):
    config = CFG.model_copy(update={"grain": "week", **cfg})
    return optimize(demand_rows(d, "volume", grain="week"), nodes_, LANES, config, "volume")


def loads(plan, origin: str, date: dt.date) -> float:
    rows = plan.trucks.filter((pl.col("origin") == origin) & (pl.col("date") == date))
    return float(rows["trucks"].sum())


def test_weekly_trucks_are_loads_that_cover_the_weeks_demand():
    plan = plan_weeks(with_weeks(DEMAND))
    # By hand: ceil(91 / 10) = 10 and ceil(35 / 8) = 5 loads in week 1; ceil(154 / 10) = 16
    # in week 2 (a daily plan needs 2 trucks a day for 13, 14 loads in week 1).
    assert loads(plan, "F1", MONDAY) == 10
    assert loads(plan, "F2", MONDAY) == 5
    assert loads(plan, "F1", WEEK2) == 16
    assert loads(plan, "F2", WEEK2) == 0
    t = plan.trucks.join(LANES, on=["origin", "destination"])
    assert (t["volume"] <= t["trucks"] * t["truck_capacity"] + 1e-9).all()
    assert plan.unserved.height == 0
    assert plan.summary["objective"] == pytest.approx(100 * (10 + 5 + 16))
    assert plan.summary["grain"] == "week"
    fleet = plan.extra["fleet"]
    f1 = fleet.filter(pl.col("origin") == "F1").sort("date")
    # Trucks a day: ceil(10 / 7) = 2, ceil(16 / 7) = 3; the network 15 / 7 -> 3, 16 / 7 -> 3.
    assert f1["fleet"].to_list() == [2.0, 3.0]
    assert fleet.filter(pl.col("level") == "total")["fleet"].to_list() == [3.0, 3.0]
    assert plan.summary["fleet"]["peak_per_origin"] == {"F1": 3.0, "F2": 1.0}
    again = plan_weeks(with_weeks(DEMAND))  # the same inputs give the same plan
    assert again.trucks.equals(plan.trucks) and again.extra["fleet"].equals(fleet)


@pytest.mark.parametrize(("per_week", "binds"), [(5, True), (7, False)])
def test_facility_capacity_scales_by_operating_days(per_week, binds):
    # D sorts 20 a day; F1 sends 18 a day for 7 days = 126 a week, never full on a day.
    # With 5 operating days D's week holds 100: full, 26 short; with 7 it holds 140.
    n = NODES.with_columns(
        capacity=pl.when(pl.col("node") == "D").then(20.0).otherwise(pl.col("capacity"))
    )
    d = daily({("F1", "D"): [18.0] * 7})
    ln = lanes(("F1", "D", 30, 100, 0.0, None))
    config = CFG.model_copy(update={"grain": "week", "operating_days_per_week": per_week})
    week = optimize(demand_rows(with_weeks(d), "volume", grain="week"), n, ln, config, "volume")
    day = optimize(d, n, ln, CFG, "volume")
    assert day.unserved.height == 0  # daily, 18 <= 20 always
    row = week.extra["capacity"].filter(pl.col("node") == "D").row(0, named=True)
    assert row["capacity"] == 20 * per_week
    assert row["capacity_per_day"] == 20
    assert row["binds"] is binds
    assert row["unserved_volume"] == pytest.approx(26.0 if binds else 0.0)
    assert float(week.unserved["volume"].sum()) == pytest.approx(row["unserved_volume"])
    if binds:
        # Trucks have room (4 loads of 30 carry 100): a package more of capacity saves its
        # penalty, the only cost it changes.
        assert row["shadow_price"] == pytest.approx(week.summary["unserved_penalty"])
        # With loads free too, that package needs a thirtieth of a 100 load.
        penalty = week.summary["unserved_penalty"]
        assert row["capacity_value"] == pytest.approx(penalty - 100 / 30)
        assert week.summary["capacity"]["binding_periods"] == [str(MONDAY)]
    else:
        assert week.summary["capacity"]["binding"] == []
        assert row["capacity_value"] is None  # priced only where a facility binds


def test_a_fleet_budget_names_the_weeks_it_falls_short():
    # F1 may run 2 trucks a day: 14 loads a week. Week 1 needs 10 (fleet 2: all of it, yet
    # enough); week 2 needs 16: 14 carry 140 and 14 packages go unserved.
    plan = plan_weeks(with_weeks(DEMAND), fleet=FleetConfig(origin={"F1": 2}))
    budget = plan.summary["fleet"]["budget"]
    assert budget["binding_dates"] == {"F1": [str(MONDAY), str(WEEK2)]}
    assert budget["short_periods"] == {"F1": [str(WEEK2)]}
    f1 = plan.extra["fleet"].filter(pl.col("origin") == "F1").sort("date")
    assert f1["budget_loads"].to_list() == [14.0, 14.0]
    assert f1["short"].to_list() == [False, True]
    assert loads(plan, "F1", WEEK2) == 14
    assert float(plan.unserved["volume"].sum()) == pytest.approx(14.0)
    # One more truck a day: 2 more loads carry the 14 at 200 instead of 14 penalties.
    saved = f1["one_more_truck_saves"].to_list()
    assert saved[0] == pytest.approx(0.0)
    assert saved[1] == pytest.approx(14 * plan.summary["unserved_penalty"] - 200)


def test_one_more_truck_is_not_measured_when_the_plan_left_no_time():
    # time_limit bounds the whole run, re-solves included: with under a second of it the
    # week plan is still made (every period gets its LP and a rounded plan) and the saving
    # is left unmeasured rather than re-solved on a budget of its own.
    plan = plan_weeks(with_weeks(DEMAND), fleet=FleetConfig(origin={"F1": 2}), time_limit=0.5)
    f1 = plan.extra["fleet"].filter(pl.col("origin") == "F1").sort("date")
    assert f1["binds"].to_list() == [True, True]
    assert f1["one_more_truck_saves"].to_list() == [None, None]
    assert loads(plan, "F1", WEEK2) == 14


def test_day_grain_plans_the_day_rows_as_a_table_without_grain():
    days = DEMAND.filter(pl.col("date").is_in([MONDAY, WEEK2]))  # a day of each week
    both = with_weeks(days)
    alone = optimize(days, NODES, LANES, CFG, "volume")
    picked = optimize(demand_rows(both, "volume"), NODES, LANES, CFG, "volume")
    assert picked.trucks.equals(alone.trucks)
    assert picked.flows.equals(alone.flows)
    assert picked.summary["objective"] == alone.summary["objective"]
    assert picked.summary["grain"] == "day"
    assert picked.extra == {}


def test_week_rows_must_start_on_a_monday():
    bad = with_weeks(DEMAND).with_columns(
        date=pl.when(pl.col("grain") == "week")
        .then(pl.col("date") + dt.timedelta(days=1))
        .otherwise(pl.col("date"))
    )
    with pytest.raises(DataError, match="Monday"):
        demand_rows(bad, "volume", "f.parquet", grain="week")
    # From Python too: daily rows handed to a week plan are refused, not planned as weeks.
    with pytest.raises(DataError, match="Monday"):
        optimize(DEMAND, NODES, LANES, CFG.model_copy(update={"grain": "week"}), "volume")


def cli(tmp_path: Path, table: pl.DataFrame, *extra: str):
    paths = {}
    for name, df in (("nodes", NODES), ("lanes", LANES), ("demand", table)):
        paths[name] = tmp_path / f"{name}.parquet"
        df.write_parquet(paths[name])
    out = tmp_path / "plan"
    args = ["optimize", str(paths["demand"]), "--nodes", str(paths["nodes"])]
    args += ["--lanes", str(paths["lanes"]), "-o", str(out), "--column", "volume", *extra]
    return CliRunner().invoke(app, args), out


def test_grain_week_on_a_daily_only_table_is_65_naming_file_and_grains(tmp_path):
    result, out = cli(tmp_path, DEMAND, "--grain", "week")
    assert result.exit_code == 65, result.output
    assert "demand.parquet" in result.output and "grains: day" in result.output
    assert not out.exists()
    result, _ = cli(tmp_path, with_weeks(DEMAND), "--grain", "month")
    assert result.exit_code == 65
    assert "its grains are day, week" in result.output


def test_cli_writes_the_week_plan_with_fleet_and_capacity(tmp_path):
    result, out = cli(tmp_path, with_weeks(DEMAND), "--grain", "week")
    assert result.exit_code == 0, result.output
    assert {"fleet.parquet", "capacity.parquet", "trucks.parquet"} <= {
        p.name for p in out.iterdir()
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grain"] == "week"
    assert summary["fleet"]["peak"] == 3.0
    assert "weekly plan: 2 weeks" in result.output
    # promise (and simulate) read trucks a day: a week plan's loads are refused, not misread.
    args = ["promise", str(out), "--lanes", str(tmp_path / "lanes.parquet")]
    refused = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "promise.parquet")])
    assert refused.exit_code == 65 and "a week plan" in refused.output
    assert not (tmp_path / "promise.parquet").exists()
    assert cli(tmp_path, with_weeks(DEMAND), "--grain", "fortnight")[0].exit_code == 2
    # From Wednesday: the first week is partial, said on the terminal and in fleet.parquet.
    late = DEMAND.filter(pl.col("date") >= MONDAY + dt.timedelta(days=2))
    (tmp_path / "late").mkdir()
    result, out = cli(tmp_path / "late", with_weeks(late), "--grain", "week")
    assert result.exit_code == 0, result.output
    assert f"partial week {MONDAY}: 5 of 7 days" in result.output
    fleet = pl.read_parquet(out / "fleet.parquet").filter(pl.col("level") == "total")
    assert fleet.sort("date")["covered_days"].to_list() == [5, 7]


@pytest.mark.parametrize(
    ("per_week", "open_days", "unserved"),
    # Wednesday to Sunday covered: 5 days of 7, or Wednesday to Friday of Mondays-Fridays.
    [(7, 5, 120.0 - 100.0), (5, 3, 120.0 - 60.0)],
)
@pytest.mark.parametrize("from_file", [True, False])
def test_a_partial_weeks_capacity_is_its_covered_days(per_week, open_days, unserved, from_file):
    # A horizon from Wednesday: week 1 holds 5 of its days, F1 sends 24 a day = 120; week 2
    # is whole, 18 a day = 126. D sorts 20 a day. By hand: week 1 holds 20 x (its operating
    # days among Wed-Sun) = 100 (7 a week) or 60 (Mon-Fri), so 20 or 60 go unserved; the
    # whole week's 140 (100) would have carried all 120. Week 2 holds 140 (100): 126 fits
    # with 7 operating days; with 5, 26 are short.
    n = NODES.with_columns(
        capacity=pl.when(pl.col("node") == "D").then(20.0).otherwise(pl.col("capacity"))
    )
    start = MONDAY + dt.timedelta(days=2)
    d = pl.DataFrame(
        [
            {"date": start + dt.timedelta(days=i), "origin": "F1", "destination": "D", "volume": v}
            for i, v in enumerate([24.0] * 5 + [18.0] * 7)
        ],
        schema_overrides={"date": pl.Date},
    )
    ln = lanes(("F1", "D", 30, 100, 0.0, None))
    config = CFG.model_copy(update={"grain": "week", "operating_days_per_week": per_week})
    # demand_rows (as the CLI reads a forecast) carries the coverage in columns; a table
    # handed to optimize from Python has its day rows instead.
    table = with_weeks(d)
    demand = demand_rows(table, "volume", grain="week") if from_file else table
    plan = optimize(demand, n, ln, config, "volume")
    cap = plan.extra["capacity"].sort("date")
    assert cap["capacity"].to_list() == [20.0 * open_days, 20.0 * per_week]
    assert cap["binds"].to_list() == [True, per_week == 5]
    assert cap["unserved_volume"].to_list() == pytest.approx(
        [unserved, 126.0 - 100.0 if per_week == 5 else 0.0]
    )
    assert cap["covered_days"].to_list() == [5, 7]
    assert cap["period_days"].to_list() == [7, 7]
    assert cap["operating_days"].to_list() == [open_days, per_week]
    assert cap["capacity_per_day"].to_list() == [20.0, 20.0]
    fleet = plan.extra["fleet"].filter(pl.col("level") == "total").sort("date")
    assert fleet["covered_days"].to_list() == [5, 7]
    assert fleet["operating_days"].to_list() == [open_days, per_week]
    assert plan.summary["operating_days"][str(MONDAY)] == open_days
    assert plan.summary["partial_periods"] == {
        str(MONDAY): {
            "first": str(start),
            "last": str(MONDAY + dt.timedelta(days=6)),
            "covered_days": 5,
            "period_days": 7,
            "operating_days": open_days,
        }
    }


def test_a_partial_week_without_an_operating_day_moves_nothing():
    # Saturday and Sunday only, Mondays to Fridays operating: no lane runs, all unserved,
    # and the fleet is 0 (not loads / 0 days).
    sat = MONDAY + dt.timedelta(days=5)
    d = pl.DataFrame(
        {"date": [sat, sat + dt.timedelta(days=1)], "origin": "F1", "destination": "D"}
    ).with_columns(volume=pl.lit(9.0), date=pl.col("date").cast(pl.Date))
    config = CFG.model_copy(update={"grain": "week", "operating_days_per_week": 5})
    plan = optimize(
        demand_rows(with_weeks(d), "volume", grain="week"), NODES, LANES, config, "volume"
    )
    assert plan.trucks["trucks"].sum() == 0
    assert float(plan.unserved["volume"].sum()) == pytest.approx(18.0)
    fleet = plan.extra["fleet"].filter(pl.col("level") == "total")
    assert fleet["operating_days"].to_list() == [0]
    assert fleet["fleet"].to_list() == [0.0]


@settings(max_examples=60, deadline=None)
@given(
    year=st.integers(1990, 2060),
    month=st.integers(1, 12),
    per_week=st.integers(1, 7),
)
def test_a_months_operating_days_are_its_days_on_operating_weekdays(year, month, per_week):
    start = dt.date(year, month, 1)
    days = calendar.monthrange(year, month)[1]
    got = operating_days(start, "month", per_week)
    # Four whole weeks are in every month, and at most five of each weekday.
    assert 4 * per_week <= got <= min(days, 5 * per_week)
    assert operating_days(start, "month", 7) == days
    # One more operating weekday adds that weekday's 4 or 5 days of the month.
    if per_week < 7:
        assert operating_days(start, "month", per_week + 1) - got in (4, 5)


def test_a_partial_months_operating_days_are_those_of_the_days_it_covers():
    # March 2026 from Tuesday the 10th: Tue-Fri 10-13, 16-20, 23-27, Mon-Tue 30-31 = 16
    # weekdays of the whole month's 22; every day counts with 7 operating days.
    march = dt.date(2026, 3, 1)
    assert operating_days(march, "month", 5, dt.date(2026, 3, 10), dt.date(2026, 3, 31)) == 16
    assert operating_days(march, "month", 7, dt.date(2026, 3, 10), dt.date(2026, 3, 31)) == 22
    assert operating_days(march, "month", 5) == 22


def test_a_month_holds_its_operating_weekdays_of_capacity():
    # Mondays to Fridays: February 2026 has 20 of them, March 2026 22 (it starts on a
    # Sunday). D sorts 20 a day: 400 in February (450 asked: 50 short), 440 in March (430).
    months = pl.DataFrame(
        {
            "date": [dt.date(2026, 2, 1), dt.date(2026, 3, 1)],
            "origin": ["F1", "F1"],
            "destination": ["D", "D"],
            "volume": [450.0, 430.0],
            "grain": ["month", "month"],
        }
    )
    n = NODES.with_columns(
        capacity=pl.when(pl.col("node") == "D").then(20.0).otherwise(pl.col("capacity"))
    )
    ln = lanes(("F1", "D", 30, 100, 0.0, None))
    config = CFG.model_copy(update={"grain": "month", "operating_days_per_week": 5})
    plan = optimize(demand_rows(months, "volume", grain="month"), n, ln, config, "volume")
    assert plan.summary["operating_days"] == {"2026-02-01": 20, "2026-03-01": 22}
    cap = plan.extra["capacity"].sort("date")
    assert cap["capacity"].to_list() == [400.0, 440.0]
    assert cap["binds"].to_list() == [True, False]
    assert cap["unserved_volume"].to_list() == pytest.approx([50.0, 0.0])
    # Loads: ceil(400 / 30) = 14 and ceil(430 / 30) = 15; a truck a day covers both months.
    assert plan.trucks.sort("date")["trucks"].to_list() == [14.0, 15.0]
    assert plan.extra["fleet"].filter(pl.col("origin") == "F1")["fleet"].to_list() == [1.0, 1.0]


@settings(max_examples=8, deadline=None)
@given(
    volumes=st.lists(st.integers(1, 60), min_size=4, max_size=4),
    budget=st.integers(1, 3),
    per_week=st.integers(1, 7),
)
def test_week_plans_conserve_volume_and_keep_budgets(volumes, budget, per_week):
    # Two weeks of two lanes: every package is carried or unserved, loads hold the volume
    # they carry, and no origin runs more loads than its budget times the operating days.
    d = pl.DataFrame(
        {
            "date": [MONDAY, MONDAY, WEEK2, WEEK2],
            "origin": ["F1", "F2", "F1", "F2"],
            "destination": ["D"] * 4,
            "volume": [float(v) for v in volumes],
            "grain": ["week"] * 4,
        }
    )
    fleet = FleetConfig(origin={"F1": budget, "F2": budget}, marginal_value=False)
    plan = plan_weeks(d, fleet=fleet, operating_days_per_week=per_week)
    t = plan.trucks.join(LANES, on=["origin", "destination"])
    assert (t["volume"] <= t["trucks"] * t["truck_capacity"] + 1e-6).all()
    assert (t["trucks"] <= budget * per_week + 1e-9).all()
    carried = float(plan.trucks["volume"].sum()) + float(plan.unserved["volume"].sum())
    assert carried == pytest.approx(float(d["volume"].sum()))
    fleet_rows = plan.extra["fleet"].filter(pl.col("level") == "origin")
    assert (fleet_rows["fleet"] <= budget).all()


def test_a_forecasts_week_lane_rows_are_planned_and_bad_rows_named_as_in_the_file():
    weeks = with_weeks(DEMAND)
    fc = pl.concat(
        [
            weeks.with_columns(
                unique_id=pl.format("lane:{}/{}", "origin", "destination"),
                level=pl.lit("lane"),
            ),
            weeks.group_by("date", "grain")
            .agg(pl.col("volume").sum())
            .with_columns(
                unique_id=pl.lit("total"),
                level=pl.lit("total"),
                origin=pl.lit(None, dtype=pl.String),
                destination=pl.lit(None, dtype=pl.String),
            ),
        ],
        how="diagonal",
    ).rename({"volume": "forecast"})
    rows = demand_rows(fc, "forecast", "fc.parquet", grain="week")
    assert rows.height == 4  # two lanes, two weeks; the total's rows are not planned
    assert float(rows["forecast"].sum()) == pytest.approx(float(DEMAND["volume"].sum()))
    target = fc.with_row_index().filter(
        (pl.col("grain") == "week") & (pl.col("level") == "lane") & (pl.col("date") == WEEK2)
    )["index"][0]
    broken = (
        fc.with_row_index()
        .with_columns(
            forecast=pl.when(pl.col("index") == target).then(-1.0).otherwise(pl.col("forecast"))
        )
        .drop("index")
    )
    with pytest.raises(DataError, match=rf"\(1 rows: {target}\)"):
        demand_rows(broken, "forecast", "fc.parquet", grain="week")
