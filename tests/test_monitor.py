"""`mmplan monitor`: a forecast scored against the actuals that followed it.

Real commands on a tiny `mmplan sample` network: the backtest's scores reproduced, a +30%
shift caught by the tracking signal and the WAPE ratio, overflow against a hand-made plan,
partial horizons, the store, every exit code, and properties of the drift and WAPE maths.
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.errors import EXIT_CHECK_FAILED, EXIT_CONFIG, EXIT_DATA, EXIT_NO_INPUT
from mmplan.evaluate import compute_metrics
from mmplan.evaluate.drift import tracking_signal
from tests.conftest import make_history

runner = CliRunner()

FAST_TOML = """
[forecast]
model = "SeasonalNaive"
horizon = 7
min_history_days = 28
lanes = "model"
validation_windows = 0
n_jobs = 1

[backtest]
windows = 2
step = 7
"""

SHIFT_RULES = """
[monitor]
max_wape_ratio = { origin = 1.5 }
max_abs_tracking_signal = { origin = 4.0 }
"""


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def ok(result) -> None:
    assert result.exit_code == 0, result.output


class Net:
    """A sample network, its backtest and the forecast of the backtest's first cutoff."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.history = root / "s" / "history.parquet"
        self.config = root / "fast.toml"
        self.backtest = root / "bt"
        self.forecast = root / "forecast.parquet"
        self.cutoff: dt.date = dt.date.min

    @property
    def metrics(self) -> Path:
        return self.backtest / "metrics.json"

    def table(self) -> pl.DataFrame:
        return pl.read_parquet(self.history)

    def write(self, df: pl.DataFrame, name: str) -> Path:
        path = self.root / name
        df.write_parquet(path)
        return path


def backtest_and_forecast(n: Net) -> Net:
    """Backtest the network, and forecast from its first cutoff."""
    n.config.write_text(FAST_TOML)
    ok(run("backtest", n.history, "-o", n.backtest, "-c", n.config))
    n.cutoff = dt.date.fromisoformat(json.loads(n.metrics.read_text())["cutoffs"][0])
    train = n.write(n.table().filter(pl.col("date") <= n.cutoff), "train.parquet")
    ok(run("forecast", train, "-o", n.forecast, "-c", n.config))
    return n


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Net:
    """A tiny `mmplan sample` network (13 lanes, 120 days)."""
    root = tmp_path_factory.mktemp("monitor")
    sample = ("--seed", 3, "--regions", 1, "--fcs", 1, "--scs", 2, "--dss", 4, "--days", 120)
    ok(run("sample", root / "s", *sample))
    return backtest_and_forecast(Net(root))


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Net:
    """A stationary network (tests.conftest.make_history without new, closed or sparse
    lanes): its seasonal naive does not drift on its own. The sample's growth, peaks and
    disruptions make a seasonal naive drift by itself (|TS| 5.3 at an origin), which is what
    monitoring is for, but not what a test of a planted shift should stand on."""
    root = tmp_path_factory.mktemp("steady")
    n = Net(root)
    n.history.parent.mkdir()
    make_history(new_lane=False, closed_lane=False, sparse_every=0).write_parquet(n.history)
    return backtest_and_forecast(n)


def monitor(net: Net, out: Path, *extra: object, actuals: Path | None = None):
    args = ["monitor", "--forecast", net.forecast, "--actuals", actuals or net.history]
    return run(*args, "-o", out, "-c", extra[0] if extra else net.config, *extra[1:])


def level_scores(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "scores.parquet").filter(pl.col("scope") == "level")


# --------------------------------------------------------------------------- the backtest


def test_a_backtest_cutoff_monitored_scores_what_the_backtest_scored(net, tmp_path):
    """Actuals holding days before and after the forecast; scores equal the backtest's own
    metrics for that cutoff, skill against its naive included."""
    ok(monitor(net, tmp_path / "m"))
    points = pl.read_parquet(net.backtest / "points.parquet").filter(pl.col("cutoff") == net.cutoff)
    primary = json.loads(net.metrics.read_text())["primary"]
    expected = compute_metrics(points, [80, 95]).filter(
        (pl.col("run") == primary) & pl.col("step").is_null()
    )
    got = level_scores(tmp_path / "m")
    cols = ["points", "sum_actual", "sum_abs_error", "wape", "bias", "mase", "skill"]
    cols += ["coverage_80", "coverage_95"]
    joined = expected.join(got, on="level", suffix="_monitor")
    assert joined.height == 4
    for c in cols:
        # The naive's values come from statsforecast in the backtest and from the actuals
        # here: the same numbers, summed in another order (skill agrees to 1e-9).
        tol = {"rel": 1e-8} if c == "skill" else {"abs": 1e-12}
        assert joined[c].to_list() == pytest.approx(joined[f"{c}_monitor"].to_list(), **tol), c
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["observed_share"] == "7/7" and not summary["partial"]
    assert summary["forecast_date"] == str(net.cutoff)


def test_per_step_scores_match_the_backtest_too(net, tmp_path):
    ok(monitor(net, tmp_path / "m"))
    points = pl.read_parquet(net.backtest / "points.parquet").filter(pl.col("cutoff") == net.cutoff)
    primary = json.loads(net.metrics.read_text())["primary"]
    expected = compute_metrics(points, [80, 95]).filter(
        (pl.col("run") == primary) & pl.col("step").is_not_null()
    )
    got = pl.read_parquet(tmp_path / "m" / "scores.parquet").filter(pl.col("scope") == "step")
    joined = expected.join(got, on=["level", "step"], suffix="_m")
    assert joined.height == 4 * 7
    assert joined["wape"].to_list() == pytest.approx(joined["wape_m"].to_list(), abs=1e-12)


# --------------------------------------------------------------------------- drift


def shifted(net: Net, factor: float) -> tuple[pl.DataFrame, str]:
    """The history with the biggest origin's lanes scaled by `factor` after the cutoff."""
    h = net.table()
    origin = h.group_by("origin").agg(pl.col("volume").sum()).sort("volume")["origin"][-1]
    after = (pl.col("date") > net.cutoff) & (pl.col("origin") == origin)
    return h.with_columns(
        pl.when(after).then(pl.col("volume") * factor).otherwise(pl.col("volume")).alias("volume")
    ), origin


def test_a_shift_of_30_percent_trips_the_tracking_signal_and_the_wape_ratio(steady, tmp_path):
    net = steady
    rules = tmp_path / "rules.toml"
    rules.write_text(FAST_TOML + SHIFT_RULES)
    history, origin = shifted(net, 1.3)
    actuals = net.write(history, "shifted.parquet")
    junit = tmp_path / "alerts.xml"
    result = monitor(
        net,
        tmp_path / "m",
        rules,
        "--baseline",
        net.metrics,
        "--gate",
        "--junit",
        junit,
        actuals=actuals,
    )
    assert result.exit_code == EXIT_CHECK_FAILED, result.output
    alerts = pl.read_parquet(tmp_path / "m" / "alerts.parquet")
    failed = alerts.filter(pl.col("status") == "FAIL")
    assert set(failed["rule"]) == {"max_wape_ratio", "max_abs_tracking_signal"}
    ts = alerts.filter(pl.col("rule") == "max_abs_tracking_signal")
    assert ts["measured"][0] == pytest.approx(7.0)  # under-forecast on every one of 7 days
    assert f"origin:{origin}" in ts["detail"][0]
    assert alerts.filter(pl.col("rule") == "max_wape_ratio")["measured"][0] > 1.5
    scores = pl.read_parquet(tmp_path / "m" / "scores.parquet")
    row = scores.filter(pl.col("unique_id") == f"origin:{origin}")
    assert row["tracking_signal"][0] == pytest.approx(-7.0) and row["drift"][0]
    cases = ET.parse(junit).getroot().iter("testcase")
    assert sum(c.find("failure") is not None for c in cases) == 2


def test_the_unshifted_actuals_raise_no_alert(steady, tmp_path):
    net = steady
    rules = tmp_path / "rules.toml"
    rules.write_text(FAST_TOML + SHIFT_RULES)
    md = tmp_path / "summary.md"
    result = monitor(
        net, tmp_path / "m", rules, "--baseline", net.metrics, "--gate", "--summary", md
    )
    ok(result)
    alerts = pl.read_parquet(tmp_path / "m" / "alerts.parquet")
    assert set(alerts["status"]) == {"pass"}, alerts
    assert "mmplan monitor passed" in md.read_text()


def test_the_wape_ratio_is_held_against_the_backtest_on_the_same_steps(net, tmp_path):
    ok(monitor(net, tmp_path / "m", net.config, "--baseline", net.metrics))
    record = json.loads(net.metrics.read_text())
    steps = record["metrics"][record["primary"]]["total"]["by_step"]
    expected = sum(steps[str(s)]["sum_abs_error"] for s in range(1, 8)) / sum(
        steps[str(s)]["sum_actual"] for s in range(1, 8)
    )
    total = level_scores(tmp_path / "m").filter(pl.col("level") == "total").row(0, named=True)
    assert total["expected_wape"] == pytest.approx(expected)
    assert total["wape_ratio"] == pytest.approx(total["wape"] / expected)
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    top = summary["levels"]["lane"]["top_excess"]
    assert top and all(t["unique_id"].startswith("lane:") for t in top)


def test_the_store_counts_a_rerun_once_and_adds_other_forecasts(net, tmp_path):
    store = tmp_path / "store"
    for _ in range(2):  # a cron retry
        ok(monitor(net, tmp_path / "m", net.config, "--append", store))
    files = list(store.glob("forecast_date=*/*.parquet"))
    assert len(files) == 1 and files[0].parent.name == f"forecast_date={net.cutoff}"
    dataset = pl.read_parquet(store, hive_partitioning=True)
    assert dataset.filter(pl.col("scope") == "level").height == 4
    scores = pl.read_parquet(tmp_path / "m" / "scores.parquet")
    assert set(scores.filter(pl.col("scope") == "series")["runs"]) == {1}
    # A second forecast (another origin) adds its own file, and drift spans both runs.
    later = net.write(
        net.table().filter(pl.col("date") <= net.cutoff + dt.timedelta(7)), "t2.parquet"
    )
    second = tmp_path / "f2.parquet"
    ok(run("forecast", later, "-o", second, "-c", net.config))
    args = ["--forecast", second, "--actuals", net.history, "-c", net.config]
    ok(run("monitor", *args, "-o", tmp_path / "m2", "--append", store))
    assert len(list(store.glob("forecast_date=*/*.parquet"))) == 2
    both = pl.read_parquet(tmp_path / "m2" / "scores.parquet").filter(pl.col("scope") == "series")
    total = both.filter(pl.col("unique_id") == "total").row(0, named=True)
    assert total["runs"] == 2 and total["points_all"] == 14


# --------------------------------------------------------------------------- partial, skill


def test_a_partly_observed_horizon_is_scored_on_what_is_there(net, tmp_path):
    end = net.cutoff + dt.timedelta(days=3)
    actuals = net.write(net.table().filter(pl.col("date") <= end), "partial.parquet")
    ok(monitor(net, tmp_path / "m", actuals=actuals))
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["observed_share"] == "3/7" and summary["partial"]
    assert any("partial horizon" in n for n in summary["notes"])
    scores = pl.read_parquet(tmp_path / "m" / "scores.parquet")
    assert scores.filter(pl.col("scope") == "step")["step"].max() == 3
    points = pl.read_parquet(net.backtest / "points.parquet").filter(
        (pl.col("cutoff") == net.cutoff) & (pl.col("step") <= 3)
    )
    primary = json.loads(net.metrics.read_text())["primary"]
    expected = compute_metrics(points, [80, 95]).filter(
        (pl.col("run") == primary) & pl.col("step").is_null() & (pl.col("level") == "total")
    )
    total = level_scores(tmp_path / "m").filter(pl.col("level") == "total")
    assert total["wape"][0] == pytest.approx(expected["wape"][0], abs=1e-12)


def test_without_the_season_before_the_origin_skill_is_null_and_says_why(net, tmp_path):
    actuals = net.write(
        net.table().filter(pl.col("date") > net.cutoff - dt.timedelta(3)), "a.parquet"
    )
    ok(monitor(net, tmp_path / "m", actuals=actuals))
    assert level_scores(tmp_path / "m")["skill"].is_null().all()
    notes = json.loads((tmp_path / "m" / "summary.json").read_text())["notes"]
    assert any("skill is null" in n and "season" in n for n in notes)


def test_a_lane_the_forecast_lacks_is_scored_as_zero_new(net, tmp_path):
    h = net.table()
    extra = (
        h.filter(pl.col("date") > net.cutoff)
        .head(1)
        .with_columns(pl.lit("DS999").alias("destination"), pl.lit(100.0).alias("volume"))
    )
    actuals = net.write(
        pl.concat([h.with_columns(pl.col("volume").cast(pl.Float64)), extra]), "new.parquet"
    )
    ok(monitor(net, tmp_path / "m", actuals=actuals))
    notes = json.loads((tmp_path / "m" / "summary.json").read_text())["notes"]
    assert any("Zero/new" in n for n in notes)


# --------------------------------------------------------------------------- the plan


def hand_plan(root: Path) -> tuple[Path, Path, Path, Path]:
    """A two-lane network, a forecast, actuals and a plan whose numbers are easy to check."""
    days = [dt.date(2025, 3, 1) + dt.timedelta(d) for d in range(2)]
    lanes = [("A", "B"), ("A", "C")]
    fc_rows = []
    for day in days:
        for o, d in lanes:
            fc_rows.append(("lane:" + o + "/" + d, "lane", o, d, day, 60.0))
        fc_rows.append(("total", "total", None, None, day, 120.0))
    forecast = pl.DataFrame(
        fc_rows,
        schema={
            "unique_id": pl.String,
            "level": pl.String,
            "origin": pl.String,
            "destination": pl.String,
            "date": pl.Date,
            "forecast": pl.Float64,
        },
        orient="row",
    ).with_columns(
        (pl.col("forecast") * 0.8).alias("lo_80"),
        (pl.col("forecast") * 1.2).alias("hi_80"),
        pl.lit("Hand").alias("model"),
    )
    history = pl.DataFrame(
        {
            "date": [days[0], days[0], days[1], days[1]],
            "origin": ["A"] * 4,
            "destination": ["B", "C", "B", "C"],
            "volume": [130.0, 50.0, 150.0, 0.0],
        }
    )
    trucks = pl.DataFrame(
        {
            "origin": ["A", "A", "A"],
            "destination": ["B", "B", "C"],
            "date": [days[0], days[1], days[1]],
            "trucks": [1.0, 2.0, 1.0],
            "volume": [60.0, 60.0, 60.0],
            "utilization": [0.6, 0.3, 0.6],
            "cost": [1.0, 2.0, 1.0],
        }
    )
    nodes = pl.DataFrame(
        {
            "node": ["A", "A", "B", "B", "C", "C"],
            "date": [days[0], days[1]] * 3,
            "throughput": [120.0] * 2 + [60.0] * 4,
            "capacity": [150.0, 150.0, None, None, 40.0, 40.0],
            "added_capacity": [0.0] * 6,
            "utilization": [0.8] * 6,
            "shadow_price": [0.0] * 6,
        }
    )
    lane_table = pl.DataFrame(
        {"origin": ["A", "A"], "destination": ["B", "C"], "truck_capacity": [100.0, 100.0]}
        | {"cost_per_truck": [1.0, 1.0]}
    )
    plan = root / "plan"
    plan.mkdir()
    trucks.write_parquet(plan / "trucks.parquet")
    nodes.write_parquet(plan / "nodes.parquet")
    paths = [root / "fc.parquet", root / "actuals.parquet", plan, root / "lanes.parquet"]
    forecast.write_parquet(paths[0])
    history.write_parquet(paths[1])
    lane_table.write_parquet(paths[3])
    return paths[0], paths[1], paths[2], paths[3]


@pytest.mark.parametrize("with_lanes", [True, False])
def test_overflow_and_idle_capacity_against_a_hand_made_plan(tmp_path, with_lanes):
    fc, actuals, plan, lanes = hand_plan(tmp_path)
    extra = ["--lanes", lanes] if with_lanes else []
    out = tmp_path / "m"
    ok(run("monitor", "--forecast", fc, "--actuals", actuals, "-o", out, "--plan", plan, *extra))
    # Day 1: A->B 130 on 1 truck of 100 (30 over), A->C 50 on no truck (50 over).
    # Day 2: A->B 150 on 2 trucks (50 idle), A->C 0 on 1 truck (100 idle).
    by_lane = pl.read_parquet(out / "plan_lanes.parquet").sort("date", "destination")
    assert by_lane["overflow"].to_list() == [30.0, 50.0, 0.0, 0.0]
    assert by_lane["idle"].to_list() == [0.0, 0.0, 50.0, 100.0]
    plan_summary = json.loads((out / "summary.json").read_text())["plan"]
    assert plan_summary["overflow"] == 80.0 and plan_summary["idle"] == 150.0
    assert plan_summary["overflow_share"] == pytest.approx(80 / 330)
    assert plan_summary["worst_lane"] == "A->C" and plan_summary["worst_lane_share"] == 1.0
    # A ships 180 then 150 (capacity 150: 30 over on day 1); C receives 50 against 40.
    fac = pl.read_parquet(out / "plan_facilities.parquet").sort("node", "date")
    assert fac.filter(pl.col("node") == "A")["over"].to_list() == [30.0, 0.0]
    assert fac.filter(pl.col("node") == "C")["over"].to_list() == [10.0, 0.0]
    assert fac.filter(pl.col("node") == "B")["over"].to_list() == [0.0, 0.0]  # unlimited


def test_overflow_alerts_per_lane_and_network(tmp_path):
    fc, actuals, plan, lanes = hand_plan(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[monitor]\nmax_overflow_share = { lane = 0.5, network = 0.3 }\n")
    args = ["--forecast", fc, "--actuals", actuals, "--plan", plan, "-c", cfg, "--gate"]
    result = run("monitor", *args, "-o", tmp_path / "m")
    assert result.exit_code == EXIT_CHECK_FAILED, result.output
    alerts = pl.read_parquet(tmp_path / "m" / "alerts.parquet").sort("level")
    assert alerts["status"].to_list() == ["FAIL", "pass"]  # lane A->C 100%; network 24%


# --------------------------------------------------------------------------- exit codes


def test_exit_0_without_gate_and_default_rules_with_it(net, tmp_path):
    ok(monitor(net, tmp_path / "m"))
    assert pl.read_parquet(tmp_path / "m" / "alerts.parquet").height == 0
    result = monitor(net, tmp_path / "g", net.config, "--gate")
    assert result.exit_code in (0, EXIT_CHECK_FAILED)
    rules = set(pl.read_parquet(tmp_path / "g" / "alerts.parquet")["rule"])
    assert {"min_coverage", "max_abs_tracking_signal", "max_wape_ratio"} <= rules


def test_exit_65_for_actuals_of_another_network(net, tmp_path):
    other = net.table().with_columns(
        (pl.lit("X-") + pl.col("origin")).alias("origin"),
        (pl.lit("X-") + pl.col("destination")).alias("destination"),
    )
    result = monitor(net, tmp_path / "m", actuals=net.write(other, "other.parquet"))
    assert result.exit_code == EXIT_DATA
    assert "other.parquet" in result.output and "forecast.parquet" in result.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "body",
    [
        "[monitor]\nmax_wape = { nowhere = 0.1 }\n",
        "[monitor]\nmax_wape_ratio = { total = -1 }\n",
        "[monitor]\nmin_coverage = { lane = 1.5 }\n",
        "[monitor]\nmax_overflow_share = { facility = 0.1 }\n",
        "[monitor]\nmax_tracking = { total = 4 }\n",
        "[monitor]\ncoverage_interval = 50\nmin_coverage = { total = 0.3 }\n",
    ],
)
def test_exit_78_for_bad_thresholds(net, tmp_path, body):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    result = monitor(net, tmp_path / "m", cfg)
    assert result.exit_code == EXIT_CONFIG, result.output
    assert "bad.toml" in result.output


def test_exit_66_for_a_missing_file(net, tmp_path):
    args = ["--forecast", tmp_path / "nope.parquet", "--actuals", net.history]
    result = run("monitor", *args, "-o", tmp_path / "m")
    assert result.exit_code == EXIT_NO_INPUT
    assert "nope.parquet" in result.output


# --------------------------------------------------------------------------- properties


errors = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60)
volumes = st.integers(0, 100_000).map(float)


@given(errors)
def test_the_tracking_signal_is_bounded_by_the_number_of_days(e):
    df = pl.DataFrame({"e": e}).select(
        pl.len().alias("points"),
        pl.col("e").sum().alias("sum_error"),
        pl.col("e").abs().sum().alias("sum_abs_error"),
    )
    ts = df.select(tracking_signal())[0, 0]
    assert abs(ts) <= len(e) * (1 + 1e-9)


@given(
    # Whole packages: a subnormal volume scaled by 1e-3 would round to zero.
    st.lists(st.tuples(volumes, volumes), min_size=1, max_size=40),
    st.floats(1e-3, 1e3),
)
def test_wape_bias_and_tracking_signal_do_not_change_with_the_units(rows, k):
    def scores(scale: float) -> pl.DataFrame:
        pts = pl.DataFrame(rows, schema=["actual", "forecast"], orient="row").with_columns(
            pl.col("actual") * scale,
            pl.col("forecast") * scale,
            pl.lit("forecast").alias("run"),
            pl.lit("total").alias("level"),
            pl.lit(1, pl.Int32).alias("step"),
            pl.lit(None, pl.Float64).alias("mase_scale"),
        )
        return (
            compute_metrics(pts, [])
            .filter(pl.col("step").is_null())
            .with_columns(tracking_signal().alias("ts"))
        )

    a, b = scores(1.0).row(0, named=True), scores(k).row(0, named=True)
    for key in ("wape", "bias", "ts"):
        if a[key] is None:
            assert b[key] is None or abs(b[key]) < 1e-6
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9)


def test_help_has_an_example_and_the_outputs_validate(net, tmp_path):
    result = run("monitor", "--help")
    assert result.exit_code == 0 and "Example: mmplan monitor" in " ".join(result.output.split())
    gated = monitor(net, tmp_path / "m", net.config, "--gate")
    assert gated.exit_code == EXIT_CHECK_FAILED  # the sample's coverage is under 65%
    for name, kind in (("scores", "scores"), ("alerts", "alerts")):
        checked = run("validate", tmp_path / "m" / f"{name}.parquet")
        assert checked.exit_code == 0 and f"valid {kind} table" in checked.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert {"scores.parquet", "alerts.parquet", "summary.json"} <= set(manifest["files"])


def _state(pid: int) -> str:
    """The process's state letter (T when stopped), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def test_a_run_killed_while_appending_leaves_the_store_as_it_was(net, tmp_path):
    """SIGKILL at the store's rename (the run's third Parquet write): the earlier run's file
    is intact, nothing half-written is visible, and the next run tidies up and appends."""
    import os
    import signal
    import subprocess
    import sys
    import time

    store = tmp_path / "store"
    ok(monitor(net, tmp_path / "m", net.config, "--append", store))
    (before,) = store.glob("forecast_date=*/*.parquet")
    content = before.read_bytes()
    later = net.cutoff + dt.timedelta(7)
    train = net.write(net.table().filter(pl.col("date") <= later), "t3.parquet")
    second = tmp_path / "f3.parquet"
    ok(run("forecast", train, "-o", second, "-c", net.config))
    args = ["--forecast", second, "--actuals", net.history, "-c", net.config, "-q"]
    cmd = [sys.executable, "-m", "mmplan", "monitor", *map(str, args), "-o", str(tmp_path / "m2")]
    env = os.environ | {"MMPLAN_STOP_AT": "write_parquet.renaming:3"}
    proc = subprocess.Popen([*cmd, "--append", str(store)], env=env)
    guard = time.monotonic() + 300
    while _state(proc.pid) not in ("T", "t"):
        assert proc.poll() is None, "the run ended before the store's rename"
        assert time.monotonic() < guard
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "m2" / "summary.json").exists()  # killed after OUTDIR, at the store
    assert list(store.glob("forecast_date=*/*.parquet")) == [before]
    assert before.read_bytes() == content
    ok(run("monitor", *args, "-o", tmp_path / "m2", "--append", store))
    assert len(list(store.glob("forecast_date=*/*.parquet"))) == 2
    assert not list(store.glob("forecast_date=*/.*"))
    assert pl.read_parquet(store, hive_partitioning=True).height > 0
