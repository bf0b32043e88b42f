"""Markets: `sample --market`, the market x level scoreboard of backtest and monitor, and
per-market gate and alert rules, on two tiny `mmplan sample` markets stacked together."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.errors import EXIT_CHECK_FAILED, EXIT_CONFIG
from mmplan.evaluate import compute_metrics

runner = CliRunner()

FAST = """
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

[markets]
column = "market"
"""


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def ok(result) -> None:
    assert result.exit_code == 0, result.output


SIZES = {"east": (3, 4), "west": (4, 3)}  # seed, delivery stations


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two markets' samples stacked, backtested with [markets] column = "market"."""
    root = tmp_path_factory.mktemp("markets")
    frames = []
    for market, (seed, dss) in SIZES.items():
        flags = ("--seed", seed, "--regions", 1, "--fcs", 1, "--scs", 2, "--dss", dss)
        ok(run("sample", root / market, "--market", market, *flags, "--days", 120))
        frames.append(pl.read_parquet(root / market / "history.parquet"))
    pl.concat(frames).write_parquet(root / "history.parquet")
    (root / "fast.toml").write_text(FAST)
    ok(run("backtest", root / "history.parquet", "-o", root / "bt", "-c", root / "fast.toml"))
    return root


def test_sample_market_adds_a_column_and_prefixes_facilities(two):
    history = pl.read_parquet(two / "east" / "history.parquet")
    assert set(history["market"]) == {"east"}
    assert history["origin"].str.starts_with("east-").all()
    assert history["destination"].str.starts_with("east-").all()
    nodes = pl.read_parquet(two / "east" / "nodes.parquet")
    lanes = pl.read_parquet(two / "east" / "lanes.parquet")
    assert nodes["node"].str.starts_with("east-").all()
    assert set(lanes["origin"]) <= set(nodes["node"])
    ok(run("validate", two / "east" / "lanes.parquet", "--nodes", two / "east" / "nodes.parquet"))


def test_the_scoreboard_scores_each_market_on_its_own_lanes(two):
    board = pl.read_parquet(two / "bt" / "markets.parquet")
    points = pl.read_parquet(two / "bt" / "points.parquet")
    primary = json.loads((two / "bt" / "metrics.json").read_text())["primary"]
    overall = board.filter((pl.col("run") == primary) & pl.col("step").is_null())
    assert set(overall["market"]) == {"east", "west"}
    assert set(overall["level"]) == {"total", "origin_region", "origin", "lane"}
    for market in SIZES:
        lanes = points.filter(
            (pl.col("run") == primary)
            & (pl.col("level") == "lane")
            & pl.col("unique_id").str.starts_with(f"lane:{market}-")
        )
        lane_wape = compute_metrics(lanes, [80, 95]).filter(pl.col("step").is_null())["wape"][0]
        mine = overall.filter(pl.col("market") == market)
        assert mine.filter(pl.col("level") == "lane")["wape"][0] == pytest.approx(lane_wape)
        # The market's total: its lanes summed per day, then pooled.
        day = lanes.group_by("cutoff", "date").agg(pl.col("actual", "forecast").sum())
        wape = (day["forecast"] - day["actual"]).abs().sum() / day["actual"].sum()
        total = mine.filter(pl.col("level") == "total").row(0, named=True)
        assert total["wape"] == pytest.approx(wape)
        assert total["coverage_80"] is None and total["mase"] is None  # spans markets
        origin = mine.filter(pl.col("level") == "origin").row(0, named=True)
        assert origin["coverage_80"] is not None and origin["skill"] is not None
    record = json.loads((two / "bt" / "metrics.json").read_text())["markets"]
    assert set(record) == {"east", "west"} and "total" in record["east"][primary]


def test_market_overrides_gate_that_market_only(two, tmp_path):
    cfg = tmp_path / "gate.toml"
    rules = "[gate]\nmax_wape = { total = 0.9 }\n[gate.markets.west]\nmax_wape = { total = 0.01 }\n"
    cfg.write_text(FAST + rules)
    result = run("backtest", two / "history.parquet", "-o", tmp_path / "bt", "-c", cfg, "--gate")
    assert result.exit_code == EXIT_CHECK_FAILED, result.output
    verdicts = {
        r["level"]: r["status"]
        for r in json.loads((tmp_path / "bt" / "metrics.json").read_text())["gate"]["rules"]
    }
    assert verdicts == {"total": "pass", "east:total": "pass", "west:total": "FAIL"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[gate.markets.north]\nmax_wape = { total = 0.1 }\n", ["north", "east, west"]),
        ("[gate.markets.west]\nmax_wape = { nowhere = 0.1 }\n", ["nowhere"]),
        ("[gate.markets.west]\nmax_wap = { total = 0.1 }\n", ["max_wap"]),
    ],
)
def test_an_unknown_market_or_rule_is_exit_78(two, tmp_path, body, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(FAST + body)
    result = run("backtest", two / "history.parquet", "-o", tmp_path / "bt", "-c", cfg)
    assert result.exit_code == EXIT_CONFIG, result.output
    for word in words:
        assert word in result.output


def test_a_market_column_the_history_lacks_is_exit_78(two, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(FAST.replace('column = "market"', 'column = "country"'))
    result = run("backtest", two / "history.parquet", "-o", tmp_path / "bt", "-c", cfg)
    assert result.exit_code == EXIT_CONFIG and "country" in result.output


def test_monitor_scores_and_alerts_each_market(two, tmp_path):
    cutoff = dt.date.fromisoformat(
        json.loads((two / "bt" / "metrics.json").read_text())["cutoffs"][0]
    )
    train = tmp_path / "train.parquet"
    pl.read_parquet(two / "history.parquet").filter(pl.col("date") <= cutoff).write_parquet(train)
    ok(run("forecast", train, "-o", tmp_path / "fc.parquet", "-c", two / "fast.toml"))
    cfg = tmp_path / "mon.toml"
    rules = "[monitor]\nmax_wape = { total = 0.9 }\n"
    rules += "[monitor.markets.east]\nmax_wape = { total = 0.01 }\n"
    cfg.write_text(FAST + rules)
    args = ["--forecast", tmp_path / "fc.parquet", "--actuals", two / "history.parquet"]
    args += ["--baseline", two / "bt" / "metrics.json", "-c", cfg, "--gate"]
    result = run("monitor", *args, "-o", tmp_path / "m")
    assert result.exit_code == EXIT_CHECK_FAILED, result.output
    alerts = pl.read_parquet(tmp_path / "m" / "alerts.parquet")
    assert dict(alerts.select("level", "status").iter_rows()) == {
        "total": "pass",
        "east:total": "FAIL",
        "west:total": "pass",
    }
    scores = pl.read_parquet(tmp_path / "m" / "scores.parquet").filter(pl.col("scope") == "market")
    assert scores.height == 2 * 4
    # The monitored cutoff scores what the backtest's scoreboard scored for it.
    board = pl.read_parquet(two / "bt" / "markets.parquet")
    assert scores["wape_ratio"].is_not_null().all()
    points = pl.read_parquet(two / "bt" / "points.parquet").filter(pl.col("cutoff") == cutoff)
    lanes = points.filter(
        (pl.col("level") == "lane") & pl.col("unique_id").str.starts_with("lane:west-")
    )
    primary = board["run"].filter(board["run"] != "naive")[0]
    west = compute_metrics(lanes.filter(pl.col("run") == primary), [80, 95])
    got = scores.filter((pl.col("market") == "west") & (pl.col("level") == "lane"))
    assert got["wape"][0] == pytest.approx(west.filter(pl.col("step").is_null())["wape"][0])
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert set(summary["markets"]) == {"east", "west"}


def test_monitor_refuses_an_unknown_market(two, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(FAST + "[monitor.markets.north]\nmax_wape = { total = 0.1 }\n")
    fc = tmp_path / "fc.parquet"
    train = tmp_path / "train.parquet"
    pl.read_parquet(two / "history.parquet").filter(
        pl.col("date") <= dt.date(2024, 4, 20)
    ).write_parquet(train)
    ok(run("forecast", train, "-o", fc, "-c", two / "fast.toml"))
    args = ["--forecast", fc, "--actuals", two / "history.parquet", "-c", cfg]
    result = run("monitor", *args, "-o", tmp_path / "m")
    assert result.exit_code == EXIT_CONFIG and "north" in result.output
