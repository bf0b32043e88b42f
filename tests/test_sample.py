"""The synthetic network generator (`mmplan sample`): contract, determinism and realism."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import SampleConfig, default_events
from mmplan.synthetic import sample
from mmplan.tables import validate_history, validate_lanes, validate_nodes

SMALL = dict(regions=2, fcs=2, scs=6, dss=40, days=730, seed=7)


@pytest.fixture(scope="module")
def net() -> dict[str, pl.DataFrame]:
    return sample(SampleConfig(**SMALL))


@pytest.fixture(scope="module")
def spans(net) -> pl.DataFrame:
    """Per lane: first and last date, rows, days with volume, mean volume."""
    return (
        net["history"]
        .group_by("origin", "destination")
        .agg(
            first=pl.col("date").min(),
            last=pl.col("date").max(),
            rows=pl.len(),
            shipped=(pl.col("volume") > 0).sum(),
            mean=pl.col("volume").mean(),
        )
        .with_columns(days=(pl.col("last") - pl.col("first")).dt.total_days() + 1)
    )


def _throughput(history: pl.DataFrame) -> pl.DataFrame:
    out = history.group_by(node="origin", date="date").agg(out=pl.col("volume").sum())
    inn = history.group_by(node="destination", date="date").agg(inn=pl.col("volume").sum())
    return out.join(inn, on=["node", "date"], how="full", coalesce=True).fill_null(0.0)


# --- contract -----------------------------------------------------------------------------


def test_returns_the_three_tables_that_pass_their_validators(net):
    assert list(net) == ["history", "nodes", "lanes"]
    assert validate_history(net["history"]) == []
    assert validate_nodes(net["nodes"]) == []
    assert validate_lanes(net["lanes"], net["nodes"]) == []
    h = net["history"]
    assert h.schema["date"] == pl.Date and h.schema["volume"] == pl.Float64
    assert (h["volume"] == h["volume"].round()).all()  # whole packages
    for col in ("origin_region", "destination_region"):
        assert h.schema[col] == pl.String


def test_history_lanes_and_facilities_are_in_the_network(net):
    h, nodes, lanes = net["history"], net["nodes"], net["lanes"]
    used = h.select("origin", "destination").unique()
    assert used.join(lanes, on=["origin", "destination"], how="anti").is_empty()
    assert set(nodes["kind"]) == {"FC", "SC", "DS"}
    counts = dict(nodes.group_by("kind").len().iter_rows())
    assert counts == {"FC": SMALL["fcs"], "SC": SMALL["scs"], "DS": SMALL["dss"]}
    assert nodes["node"].str.contains(r"^(FC\d{2}|SC\d{2}|DS\d{3})$").all()
    kinds = dict(nodes.select("node", "kind").iter_rows())
    types = {f"{kinds[o]}-{kinds[d]}" for o, d in lanes.select("origin", "destination").rows()}
    assert types == {"FC-SC", "SC-SC", "SC-DS", "FC-DS"}


def test_each_ds_is_served_by_one_or_two_scs_mostly_in_region(net):
    lanes, nodes = net["lanes"], net["nodes"]
    region = dict(nodes.select("node", "region").iter_rows())
    sc_ds = lanes.filter(
        pl.col("origin").str.starts_with("SC"), pl.col("destination").str.starts_with("DS")
    )
    per_ds = sc_ds.group_by("destination").len()
    assert per_ds.height == SMALL["dss"]
    assert per_ds["len"].is_between(1, 2).all()
    same = sum(region[o] == region[d] for o, d in sc_ds.select("origin", "destination").rows())
    assert same / sc_ds.height > 0.7


def test_lane_costs_and_limits_look_like_a_network(net):
    lanes = net["lanes"]
    assert lanes["truck_capacity"].is_between(1500, 3000).all()
    assert (lanes["cost_per_truck"] > 0).all() and (lanes["cost_per_package"] >= 0).all()
    assert lanes["transit_days"].dtype == pl.Int64 and (lanes["transit_days"] >= 1).all()
    assert lanes["max_trucks"].null_count() > 0 and lanes["max_trucks"].is_not_null().any()
    # Longer lanes cost more per truck.
    assert np.corrcoef(lanes["miles"], lanes["cost_per_truck"])[0, 1] > 0.99


# --- determinism --------------------------------------------------------------------------


def test_same_seed_same_tables_and_different_seed_different_tables():
    cfg = SampleConfig(regions=2, fcs=2, scs=3, dss=8, days=60, seed=3)
    a, b = sample(cfg), sample(cfg)
    for name in a:
        assert a[name].equals(b[name]), name
    c = sample(cfg.model_copy(update={"seed": 4}))
    assert not a["history"].equals(c["history"])
    assert not a["nodes"].equals(c["nodes"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    regions=st.integers(1, 4),
    fcs=st.integers(1, 3),
    scs=st.integers(1, 5),
    dss=st.integers(1, 12),
    days=st.integers(28, 70),
    seed=st.integers(0, 2**31),
)
def test_any_small_size_gives_valid_tables(regions, fcs, scs, dss, days, seed):
    cfg = SampleConfig(regions=regions, fcs=fcs, scs=scs, dss=dss, days=days, seed=seed)
    t = sample(cfg)
    assert validate_history(t["history"]) == []
    assert validate_nodes(t["nodes"]) == []
    assert validate_lanes(t["lanes"], t["nodes"]) == []
    assert t["nodes"].height == fcs + scs + dss
    assert t["history"]["date"].min() >= cfg.start
    assert t["history"]["date"].max() <= cfg.start + dt.timedelta(days=days - 1)


# --- realism ------------------------------------------------------------------------------


def test_a_lane_opens_and_a_lane_closes_with_no_rows_outside_their_span(net, spans):
    start, end = net["history"]["date"].min(), net["history"]["date"].max()
    dense = spans.filter(pl.col("mean") > 20)
    opened = dense.filter(pl.col("first") > start + dt.timedelta(days=60))
    closed = dense.filter(pl.col("last") < end - dt.timedelta(days=60))
    assert opened.height >= 1 and closed.height >= 1
    # Dense lanes keep their zero days: one row per day of their span.
    assert (dense["rows"] == dense["days"]).all()


def test_one_ds_hands_its_volume_to_a_new_ds(net, spans):
    start, end = net["history"]["date"].min(), net["history"]["date"].max()
    into = (
        spans.filter(pl.col("destination").str.starts_with("DS"))
        .group_by("destination")
        .agg(pl.col("first").min(), pl.col("last").max())
    )
    gone = into.filter(pl.col("last") < end)
    new = into.filter(pl.col("first") > start)
    assert gone.height == 1 and new.height == 1
    # The new DS starts within a month of the old one's last day (a cut-over in waves).
    gap = (new["first"][0] - gone["last"][0]).days
    assert -30 <= gap <= 1
    h = net["history"]
    before = h.filter(pl.col("destination") == gone["destination"][0])["volume"].tail(200).sum()
    after = h.filter(pl.col("destination") == new["destination"][0])["volume"].head(200).sum()
    assert 0.5 < after / before < 2.0


def test_sparse_lanes_have_mostly_zero_days(spans):
    sparse_ = spans.filter(pl.col("shipped") < 0.5 * pl.col("days"), pl.col("days") > 300)
    assert sparse_.height >= 3


def test_weekly_yearly_growth_and_events_show_in_total_volume(net):
    total = net["history"].group_by("date").agg(pl.col("volume").sum()).sort("date")
    by_dow = dict(
        total.group_by(pl.col("date").dt.weekday()).agg(pl.col("volume").mean()).iter_rows()
    )
    assert by_dow[1] > 1.25 * by_dow[7]  # Monday vs Sunday
    vol = dict(total.iter_rows())
    events = default_events()
    ordinary = total.filter(pl.col("date").dt.month().is_in([3, 4, 5]))["volume"].median()
    for day in events["prime_day"] + events["cyber_monday"]:
        if day in vol:
            assert vol[day] > 1.3 * ordinary, day
    for day in events["christmas"]:
        if day in vol:
            assert vol[day] < 0.3 * ordinary, day
    # Growth: the same quiet weeks a year apart.
    spring = [
        total.filter(pl.col("date").is_between(dt.date(y, 3, 1), dt.date(y, 4, 30)))["volume"].sum()
        for y in (2024, 2025)
    ]
    assert spring[1] > 1.04 * spring[0]
    # Yearly shape: early December (peak season) above summer.
    dec = total.filter(pl.col("date").dt.month() == 12, pl.col("date").dt.day() < 20)
    aug = total.filter(pl.col("date").dt.month() == 8)
    assert dec["volume"].mean() > 1.2 * aug["volume"].mean()


def test_noise_grows_with_volume(net):
    quiet = net["history"].filter(
        pl.col("date").is_between(dt.date(2024, 3, 4), dt.date(2024, 3, 31)),
        pl.col("date").dt.weekday() == 3,
    )
    stats = (
        quiet.group_by("origin", "destination")
        .agg(m=pl.col("volume").mean(), s=pl.col("volume").std())
        .filter(pl.col("m") > 5, pl.col("s") > 0)
    )
    assert np.corrcoef(np.log(stats["m"]), np.log(stats["s"]))[0, 1] > 0.6


def test_a_weather_disruption_drops_then_rebounds_a_region(net):
    nodes = net["nodes"]
    region = nodes.select(destination="node", region="region")
    into_ds = (
        net["history"]
        .filter(pl.col("destination").str.starts_with("DS"))
        .join(region, on="destination")
        .group_by("region", "date")
        .agg(pl.col("volume").sum())
        .sort("region", "date")
        .with_columns(week_ago=pl.col("volume").shift(7).over("region"))
    )
    december = pl.col("date").dt.month().is_in([12, 1])
    dips = into_ds.filter(~december, pl.col("volume") < 0.7 * pl.col("week_ago"))
    assert dips.height >= 1


def test_volume_follows_the_flow(net):
    h = net["history"]
    fc_in = (
        h.filter(
            pl.col("origin").str.starts_with("FC"), pl.col("destination").str.starts_with("SC")
        )
        .group_by(node="destination", date="date")
        .agg(fc_in=pl.col("volume").sum())
    )
    tp = _throughput(h).join(fc_in, on=["node", "date"])
    # Everything an SC receives from FCs leaves it the same day (plus the SC's own volume).
    assert (tp["out"] >= tp["fc_in"]).all()
    lane_mean = (
        h.group_by("origin", "destination")
        .agg(pl.col("volume").mean())
        .with_columns(kind=pl.col("origin").str.slice(0, 2) + pl.col("destination").str.slice(0, 2))
    )
    mean = dict(lane_mean.group_by("kind").agg(pl.col("volume").mean()).iter_rows())
    assert mean["FCSC"] > 2 * mean["SCDS"]
    fc_out = _throughput(h).filter(pl.col("node").str.starts_with("FC"))["out"].mean()
    assert fc_out > 10_000  # an FC ships tens of thousands of packages a day


def test_some_sorting_centers_and_lanes_bind(net):
    h, nodes, lanes = net["history"], net["nodes"], net["lanes"]
    recent = h.filter(pl.col("date") > h["date"].max() - dt.timedelta(days=28))
    peak = (
        _throughput(recent)
        .with_columns(tp=pl.max_horizontal("out", "inn"))
        .group_by("node")
        .agg(peak=pl.col("tp").max())
    )
    facilities = nodes.join(peak, on="node")
    bind = facilities.filter(pl.col("capacity") < pl.col("peak"))
    assert bind.height >= 1 and set(bind["kind"]) == {"SC"}
    assert (bind["extra_capacity"] > 0).all() and (bind["extra_capacity_cost"] > 0).all()
    assert bind.height < nodes.filter(pl.col("kind") == "SC").height  # some, not all
    assert nodes.filter(pl.col("kind") == "DS")["capacity"].is_null().all()
    lane_peak = recent.group_by("origin", "destination").agg(peak=pl.col("volume").max())
    tight = lanes.join(lane_peak, on=["origin", "destination"]).filter(
        pl.col("max_trucks") * pl.col("truck_capacity") < pl.col("peak")
    )
    assert tight.height >= 1


def test_dates_outside_the_built_in_event_calendar_still_get_events():
    cfg = SampleConfig(regions=1, fcs=1, scs=2, dss=6, days=60, start=dt.date(2031, 11, 15))
    total = dict(sample(cfg)["history"].group_by("date").agg(pl.col("volume").sum()).iter_rows())
    cyber_monday = dt.date(2031, 12, 1)  # Thanksgiving is 27 Nov 2031
    assert total[cyber_monday] > 1.3 * total[cyber_monday - dt.timedelta(days=14)]
    assert total[dt.date(2031, 12, 25)] < 0.3 * total[dt.date(2031, 12, 18)]


# --- the command --------------------------------------------------------------------------


def test_cli_writes_three_valid_files_byte_identical_for_a_seed(tmp_path):
    runner = CliRunner()
    args = [
        "--regions",
        "2",
        "--fcs",
        "2",
        "--scs",
        "3",
        "--dss",
        "9",
        "--days",
        "40",
        "--seed",
        "11",
        "--quiet",
    ]
    for name in ("a", "b"):
        result = runner.invoke(app, ["sample", str(tmp_path / name), *args])
        assert result.exit_code == 0, result.output
    for table in ("history", "nodes", "lanes"):
        a = (tmp_path / "a" / f"{table}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{table}.parquet").read_bytes(), table
    nodes = str(tmp_path / "a" / "nodes.parquet")
    for table in ("history", "nodes", "lanes"):
        result = runner.invoke(
            app,
            [
                "validate",
                str(tmp_path / "a" / f"{table}.parquet"),
                "--kind",
                table,
                "--nodes",
                nodes,
            ],
        )
        assert result.exit_code == 0, result.output


def test_cli_size_flags_and_start_date(tmp_path):
    out = tmp_path / "net"
    result = CliRunner().invoke(
        app,
        [
            "sample",
            str(out),
            "--regions",
            "3",
            "--fcs",
            "3",
            "--scs",
            "4",
            "--dss",
            "11",
            "--days",
            "35",
            "--start",
            "2025-03-01",
            "--seed",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["facilities"] == 18 and summary["first_date"] == "2025-03-01"
    assert summary["lanes"] == pl.read_parquet(out / "lanes.parquet").height
    nodes = pl.read_parquet(out / "nodes.parquet")
    assert dict(nodes.group_by("kind").len().iter_rows()) == {"FC": 3, "SC": 4, "DS": 11}
    assert nodes["region"].n_unique() == 3
    h = pl.read_parquet(out / "history.parquet")
    assert h["date"].min() == dt.date(2025, 3, 1)
    assert h["date"].max() == dt.date(2025, 4, 4)


def test_cli_rejects_a_bad_size(tmp_path):
    result = CliRunner().invoke(app, ["sample", str(tmp_path / "x"), "--days", "5"])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()
