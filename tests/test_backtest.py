"""The backtest stage: no leakage, hand-checked metrics, champions, gates and their exit codes."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import polars.selectors as cs
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import BacktestConfig, Config, ForecastConfig, GateConfig
from mmplan.errors import EXIT_CHECK_FAILED, EXIT_CONFIG, EXIT_DATA, ConfigError
from mmplan.evaluate import NEW_MODEL, backtest
from mmplan.forecasting import forecast
from tests.conftest import START, fast_config, make_history

runner = CliRunner()

FAST_TOML = """
[forecast]
model = "SeasonalNaive"
horizon = 7
min_history_days = 28
reconciliation = "MinTrace(wls_struct)"
n_jobs = 1

[backtest]
windows = 2
step = 7
"""


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def fast(windows: int = 2, **forecast_overrides) -> Config:
    return Config(
        forecast=fast_config(n_jobs=1, **forecast_overrides),
        backtest=BacktestConfig(windows=windows, step=7),
    )


# --------------------------------------------------------------------------- leakage


@pytest.mark.slow
def test_no_leakage_history_after_cutoff_cannot_change_its_forecasts():
    history = make_history(n_lanes=6, days=120)
    cfg = fast()
    first = backtest(history, cfg)
    cutoff = first.points["cutoff"].min()
    # Rewrite everything after the first cutoff: other volumes, and a lane that opens later.
    rng = np.random.default_rng(1)
    after = pl.col("date") > cutoff
    changed = history.with_columns(
        pl.when(after)
        .then(pl.lit(rng.uniform(0, 1000, history.height)))
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    late = changed.filter(pl.col("destination") == "DS03", after).with_columns(
        destination=pl.lit("DS99")
    )
    changed = pl.concat([changed, late])
    second = backtest(changed, cfg)

    cols = ["run", "unique_id", "date", "forecast", "lo_80", "hi_80", "lo_95", "hi_95", "model"]

    def forecasts(result, day):
        return result.points.filter(
            (pl.col("cutoff") == day) & (pl.col("model") != NEW_MODEL)
        ).select(cols)

    assert forecasts(first, cutoff).equals(forecasts(second, cutoff))  # bit for bit
    # ... while the later cutoff, which sees the rewritten days, does change.
    later = first.points["cutoff"].max()
    assert not forecasts(first, later).equals(forecasts(second, later))
    # The new lane is scored at the first cutoff as a zero forecast of its real volume.
    new = second.points.filter((pl.col("cutoff") == cutoff) & (pl.col("model") == NEW_MODEL))
    assert set(new["unique_id"]) == {"lane:FC0/DS99"}
    assert (new["forecast"] == 0).all() and new["actual"].sum() > 0


def test_points_are_exactly_the_forecast_pipeline_on_truncated_history():
    history = make_history(n_lanes=5, days=100)
    cfg = fast(windows=1)
    result = backtest(history, cfg)
    cutoff = result.points["cutoff"].min()
    direct = forecast(history.filter(pl.col("date") <= cutoff), cfg)
    pts = result.points.filter(pl.col("run") == "SeasonalNaive").sort("unique_id", "date")
    direct = direct.sort("unique_id", "date")
    for col in ["unique_id", "date", "forecast", "lo_80", "hi_95", "model"]:
        assert pts[col].equals(direct[col]), col


# --------------------------------------------------------------------------- metrics by hand

P_A = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]


def tiny_history() -> pl.DataFrame:
    """Four lanes over 35 days; the last 7 days are the single backtest window.

    A: weekly pattern, +10 from day 14, +5 in the window (instead of +10);
    B: 100 a day, then nothing in the window; C: rows of zero volume only;
    D: opens on day 30 with 8 a day (after the cutoff, day 27).
    """
    rows = []
    for t in range(35):
        day = START + dt.timedelta(days=t)
        a = P_A[t % 7] + (5 if t >= 28 else 10 if t >= 14 else 0)
        rows.append((day, "A", a))
        rows.append((day, "B", 100.0 if t < 28 else 0.0))
        rows.append((day, "C", 0.0))
        if t >= 30:
            rows.append((day, "D", 8.0))
    return pl.DataFrame(
        rows, schema={"date": pl.Date, "destination": pl.Utf8, "volume": pl.Float64}, orient="row"
    ).with_columns(origin=pl.lit("F1"))


def test_metrics_match_hand_computation():
    cfg = Config(
        forecast=ForecastConfig(
            model="Naive",
            horizon=7,
            hierarchy=[],
            reconciliation="BottomUp",
            min_history_days=1,
            n_jobs=1,
            lanes="model",
        ),
        backtest=BacktestConfig(windows=1, step=7),
    )
    result = backtest(tiny_history(), cfg)
    assert result.metrics_json["cutoffs"] == [str(START + dt.timedelta(days=27))]
    overall = {
        (r["run"], r["level"]): r
        for r in result.metrics.filter(pl.col("step").is_null()).iter_rows(named=True)
    }
    # Seasonal naive repeats days 21..27: A is 5 over every day (35), B 100 over (700),
    # C is closed (0 = 0), D is new: forecast 0 against 40.
    sn_lane = overall[("naive", "lane")]
    assert sn_lane["sum_actual"] == pytest.approx(355)
    assert sn_lane["wape"] == pytest.approx(775 / 355)
    assert sn_lane["bias"] == pytest.approx(695 / 355)
    # MASE scale: A's |y_t - y_(t-7)| over days 7..27 is 10 on 7 days of 21; B, C are flat;
    # D has no training days and is left out of MASE.
    assert sn_lane["mase"] == pytest.approx(735 / (7 * 10 / 3))
    sn_total = overall[("naive", "total")]
    assert sn_total["wape"] == pytest.approx(695 / 355)  # 105, 105, 97 x 5
    assert sn_total["mase"] == pytest.approx(695 / (7 * 10 / 3))
    assert sn_total["skill"] == pytest.approx(0.0)
    # Naive repeats day 27 (A 80, B 100): A's errors 65, 55, ..., 5.
    nv_lane, nv_total = overall[("Naive", "lane")], overall[("Naive", "total")]
    assert nv_lane["wape"] == pytest.approx(985 / 355)
    assert nv_lane["bias"] == pytest.approx(905 / 355)
    assert nv_total["wape"] == pytest.approx(905 / 355)
    assert nv_total["skill"] == pytest.approx(1 - 905 / 695)
    # Per step: step 1 of the total, Naive: forecast 180 against A 15 (+ B, C, D 0).
    step1 = result.metrics.filter(
        (pl.col("run") == "Naive") & (pl.col("level") == "total") & (pl.col("step") == 1)
    ).row(0, named=True)
    assert step1["wape"] == pytest.approx(165 / 15)
    # Coverage is the share of points inside their interval.
    pts = result.points.filter((pl.col("run") == "Naive") & (pl.col("level") == "lane"))
    inside = (pts["lo_80"] <= pts["actual"]) & (pts["actual"] <= pts["hi_80"])
    assert nv_lane["coverage_80"] == pytest.approx(inside.mean())
    # Zero-safe per series: B (actual 0, error 700) is undefined, C (0 and 0) is perfect.
    json_lane = result.metrics_json["metrics"]["Naive"]["lane"]
    assert json_lane["wape"] == pytest.approx(985 / 355)
    assert set(json_lane["by_step"]) == {str(s) for s in range(1, 8)}


def test_zero_volume_lanes_give_no_nan():
    history = tiny_history()
    cfg = Config(
        forecast=ForecastConfig(
            model="SeasonalNaive",
            horizon=7,
            hierarchy=[],
            reconciliation="BottomUp",
            n_jobs=1,
            lanes="model",
        ),
        backtest=BacktestConfig(windows=1, select=True, candidates=["SeasonalNaive", "Naive"]),
    )
    result = backtest(history, cfg)
    for frame in (result.points, result.metrics):
        assert frame.select(cs.float().is_nan().any()).row(0) == (False,) * len(
            frame.select(cs.float()).columns
        )
    json.dumps(result.metrics_json, allow_nan=False)  # finite or null, never NaN/inf
    # A window where a level has no volume at all: zero error is 0, any error is null.
    only_c = history.filter(pl.col("destination").is_in(["A", "C"]))
    zero = only_c.with_columns(
        volume=pl.when(pl.col("destination") == "A").then(pl.col("volume")).otherwise(0.0)
    )
    r = backtest(zero, cfg)
    c = r.points.filter(pl.col("unique_id") == "lane:F1/C")
    assert (c["actual"] == 0).all() and (c["forecast"] == 0).all()
    champs = r.champions
    assert champs is not None and champs.filter(pl.col("unique_id") == "lane:F1/C")["wape"][0] == 0


# --------------------------------------------------------------------------- config checks


def test_unknown_gate_level_is_config_error():
    cfg = fast()
    cfg.gate = GateConfig(max_wape={"warehouse": 0.1})
    with pytest.raises(ConfigError, match="warehouse"):
        backtest(make_history(n_lanes=3, days=80), cfg)


def test_library_api_is_exported():
    import mmplan

    assert mmplan.backtest is backtest


def test_too_short_history_is_config_error():
    cfg = fast(windows=20)
    with pytest.raises(ConfigError, match="windows"):
        backtest(make_history(n_lanes=3, days=80), cfg)


def test_cli_unknown_gate_level_or_metric_exits_78(tmp_path, history_file):
    bad_level = tmp_path / "level.toml"
    bad_level.write_text(FAST_TOML + "\n[gate]\nmax_wape = { depot = 0.2 }\n")
    res = run("backtest", history_file, "-o", tmp_path / "bt", "--gate", "--config", bad_level)
    assert res.exit_code == EXIT_CONFIG, res.output
    assert "depot" in res.output and "lane" in res.output
    bad_metric = tmp_path / "metric.toml"
    bad_metric.write_text(FAST_TOML + "\n[gate]\nmax_mape = { lane = 0.2 }\n")
    res = run("backtest", history_file, "-o", tmp_path / "bt", "--gate", "--config", bad_metric)
    assert res.exit_code == EXIT_CONFIG, res.output
    assert "max_mape" in res.output
    bad_interval = tmp_path / "interval.toml"
    bad_interval.write_text(
        FAST_TOML + "\n[gate]\nmin_coverage = { lane = 0.5 }\ncoverage_interval = 90\n"
    )
    res = run("backtest", history_file, "-o", tmp_path / "bt", "--config", bad_interval)
    assert res.exit_code == EXIT_CONFIG, res.output
    assert not (tmp_path / "bt").exists()


# --------------------------------------------------------------------------- CLI and gates

PASS_GATE = """
[gate]
max_wape = { total = 0.5, lane = 0.9 }
max_abs_bias = { total = 0.5 }
min_coverage = { lane = 0.2 }
beat_naive_by = { total = -0.01 }
max_regression = { lane = 0.02 }
"""


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory):
    """One CLI backtest with passing rules, reused by the tests below."""
    root = tmp_path_factory.mktemp("gate")
    history = root / "history.parquet"
    make_history().write_parquet(history)
    config = root / "pass.toml"
    config.write_text(FAST_TOML + PASS_GATE)
    out = root / "bt"
    res = run(
        "backtest",
        history,
        "-o",
        out,
        "--gate",
        "--config",
        config,
        "--junit",
        root / "gate.xml",
        "--summary",
        root / "summary.md",
        "--json",
    )
    return root, history, out, res


def test_gate_pass_exit_0_and_outputs(gate_run):
    root, _, out, res = gate_run
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {
        "points.parquet",
        "metrics.parquet",
        "metrics.json",
        "manifest.json",
        "calibration.parquet",
    }
    points = pl.read_parquet(out / "points.parquet")
    for col in [
        "unique_id",
        "level",
        "cutoff",
        "date",
        "step",
        "actual",
        "forecast",
        "lo_80",
        "hi_80",
        "model",
        "run",
    ]:
        assert col in points.columns
    assert points["step"].min() == 1 and points["step"].max() == 7
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["gate"]["passed"] is True
    assert metrics["provenance"]["command"] == "backtest"
    # the plain-lines rendering (no TTY): one line per rule with threshold and measurement
    assert "gate pass: max_wape level=lane wape <= 90.0% measured=" in res.output
    assert "gate skipped: max_regression level=lane" in res.output  # no --baseline
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["gate"]["passed"] is True
    md = (root / "summary.md").read_text()
    assert "gate passed" in md and "| max_wape | lane |" in md


def test_junit_is_well_formed_one_testcase_per_rule(gate_run):
    root = gate_run[0]
    tree = ET.parse(root / "gate.xml")
    cases = tree.getroot().findall(".//testcase")
    assert len(cases) == 6  # 2 max_wape, bias, coverage, naive, regression
    assert {c.get("classname") for c in cases} == {
        "mmplan.gate.max_wape",
        "mmplan.gate.max_abs_bias",
        "mmplan.gate.min_coverage",
        "mmplan.gate.beat_naive_by",
        "mmplan.gate.max_regression",
    }
    suite = tree.getroot().find("testsuite")
    assert suite.get("tests") == "6" and suite.get("failures") == "0"
    assert suite.get("skipped") == "1"


def test_gate_fail_exit_1_with_junit_failures(gate_run, tmp_path):
    _, history, _, _ = gate_run
    config = tmp_path / "fail.toml"
    config.write_text(FAST_TOML + "\n[gate]\nmax_wape = { total = 0.001, lane = 0.9 }\n")
    junit = tmp_path / "gate.xml"
    res = run(
        "backtest", history, "-o", tmp_path / "bt", "--gate", "--config", config, "--junit", junit
    )
    assert res.exit_code == EXIT_CHECK_FAILED, res.output
    assert "gate FAIL: max_wape level=total" in res.output
    assert "gate: FAILED (1 of 2 rules)" in res.output
    failures = ET.parse(junit).getroot().findall(".//testcase/failure")
    assert len(failures) == 1 and "total" in failures[0].get("message")
    # the outputs are written all the same: the run worked, the check failed
    assert (tmp_path / "bt" / "metrics.json").exists()
    # without --gate the same failing rules only report
    res = run("backtest", history, "-o", tmp_path / "bt", "--config", config)
    assert res.exit_code == 0, res.output


def test_regression_against_baseline(gate_run, tmp_path):
    _, history, out, _ = gate_run
    earlier = json.loads((out / "metrics.json").read_text())
    config = tmp_path / "reg.toml"
    config.write_text(FAST_TOML + "\n[gate]\nmax_regression = { lane = 0.02, total = 0.02 }\n")
    same = tmp_path / "same.json"
    same.write_text(json.dumps(earlier))
    res = run(
        "backtest", history, "-o", tmp_path / "a", "--gate", "--config", config, "--baseline", same
    )
    assert res.exit_code == 0, res.output
    assert "gate pass: max_regression level=lane wape_increase <= 2.0% measured=0.0%" in (
        res.output
    )
    # an earlier run that was 5 points better at lane level: now a regression
    better = json.loads(json.dumps(earlier))
    lane = better["metrics"][better["primary"]]["lane"]
    lane["wape"] -= 0.05
    better_file = tmp_path / "better.json"
    better_file.write_text(json.dumps(better))
    res = run(
        "backtest",
        history,
        "-o",
        tmp_path / "b",
        "--gate",
        "--config",
        config,
        "--baseline",
        better_file,
    )
    assert res.exit_code == EXIT_CHECK_FAILED, res.output
    assert "gate FAIL: max_regression level=lane wape_increase <= 2.0% measured=5.0%" in (
        res.output
    )
    assert "gate pass: max_regression level=total" in res.output
    # a baseline that is not a metrics.json is bad data, found before any fitting
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    res = run("backtest", history, "-o", tmp_path / "c", "--config", config, "--baseline", junk)
    assert res.exit_code == EXIT_DATA, res.output


def test_champion_selection_round_trip_through_forecast(tmp_path):
    # Two lanes without a weekly pattern, where the historic average beats seasonal naive.
    rng = np.random.default_rng(3)
    flat = pl.DataFrame(
        {
            "date": [START + dt.timedelta(days=k) for k in range(150)] * 2,
            "origin": "FC9",
            "destination": ["DS90"] * 150 + ["DS91"] * 150,
            "volume": rng.poisson(200, 300).astype(float),
            "origin_region": "WEST",
        }
    )
    history_file = tmp_path / "history.parquet"
    pl.concat([make_history(n_lanes=6), flat]).write_parquet(history_file)
    config = tmp_path / "select.toml"
    select = 'step = 7\nselect = true\ncandidates = ["HistoricAverage", "SeasonalNaive"]'
    # With shared-out lanes only the levels above the lanes get champions.
    shared = tmp_path / "shared.toml"
    shared.write_text(
        FAST_TOML.replace("step = 7", select).replace("n_jobs", 'lanes = "share"\nn_jobs')
    )
    res = run("backtest", history_file, "-o", tmp_path / "bt_shared", "--config", shared)
    assert res.exit_code == 0, res.output
    lanes = pl.read_parquet(tmp_path / "bt_shared" / "champions.parquet")["unique_id"]
    assert lanes.len() > 0 and not lanes.str.starts_with("lane:").any()
    config = tmp_path / "select.toml"
    per_lane = FAST_TOML.replace("n_jobs = 1", 'n_jobs = 1\nlanes = "model"')
    config.write_text(per_lane.replace("step = 7", select))
    out = tmp_path / "bt"
    res = run("backtest", history_file, "-o", out, "--config", config)
    assert res.exit_code == 0, res.output
    champions = pl.read_parquet(out / "champions.parquet")
    assert {"unique_id", "model"} <= set(champions.columns)
    assert set(champions["model"]) <= {"HistoricAverage", "SeasonalNaive"}
    # each champion is the candidate with the lower backtest error on that series (the
    # baseline run is not a candidate)
    points = pl.read_parquet(out / "points.parquet").filter(
        (pl.col("model") != NEW_MODEL) & (pl.col("run") != "naive")
    )
    err = points.group_by("unique_id", "run").agg(
        (pl.col("forecast") - pl.col("actual")).abs().sum().alias("e")
    )
    best = err.sort("e").group_by("unique_id").first()
    joined = champions.join(err, left_on=["unique_id", "model"], right_on=["unique_id", "run"])
    assert (
        joined.join(best, on="unique_id")
        .select((pl.col("e") <= pl.col("e_right") + 1e-9).all())
        .item()
    )
    fc_file = tmp_path / "fc.parquet"
    res = run(
        "forecast",
        history_file,
        "-o",
        fc_file,
        "--config",
        config,
        "--champions",
        out / "champions.parquet",
    )
    assert res.exit_code == 0, res.output
    fc = pl.read_parquet(fc_file).select("unique_id", "model").unique()
    regular = fc.join(
        champions.select("unique_id", pl.col("model").alias("champion")), on="unique_id"
    ).filter(~pl.col("model").str.contains("/"))
    assert regular.height > 0
    assert (regular["model"] == regular["champion"]).all()
    assert "HistoricAverage" in set(regular["model"])


def test_select_by_level_gives_one_model_per_level():
    cfg = fast()
    cfg.backtest.select = True
    cfg.backtest.select_by = "level"
    cfg.backtest.candidates = ["HistoricAverage", "SeasonalNaive"]
    result = backtest(make_history(n_lanes=6, days=100), cfg)
    per_level = result.champions.group_by("level").agg(pl.col("model").n_unique())
    assert (per_level["model"] == 1).all()
    assert set(result.metrics["run"]) == {"SeasonalNaive", "HistoricAverage", "naive"}


def test_cli_config_error_found_while_running_names_the_config_file(tmp_path):
    history = tmp_path / "history.parquet"
    make_history(n_lanes=3, days=80).write_parquet(history)
    config = tmp_path / "long.toml"
    config.write_text(FAST_TOML.replace("windows = 2", "windows = 12"))
    res = run("backtest", history, "-o", tmp_path / "bt", "--config", config)
    assert res.exit_code == EXIT_CONFIG, res.output
    assert str(config) in res.output and "windows = 12" in res.output
    assert not (tmp_path / "bt").exists()


# --------------------------------------------------------------------------- honest baseline


def test_naive_baseline_is_per_lane_seasonal_naive_summed_up_whatever_lanes_says():
    history = make_history(n_lanes=6, days=100)
    cfg = fast(windows=1, lanes="share", model="AutoETS", reconciliation="MinTrace(wls_struct)")
    result = backtest(history, cfg)
    assert result.metrics_json["format"] == 2 and result.metrics_json["baseline"] == "naive"
    cutoff = result.points["cutoff"].min()
    by_hand = forecast(
        history.filter(pl.col("date") <= cutoff),
        fast_config(
            n_jobs=1, lanes="model", reconciliation="BottomUp", sparse_model="SeasonalNaive"
        ),
    ).sort("unique_id", "date")
    naive = result.points.filter(pl.col("run") == "naive").sort("unique_id", "date")
    assert naive["forecast"].equals(by_hand["forecast"])
    lanes = naive.filter(pl.col("level") == "lane")
    # Every open lane has its own seasonal naive (a historic average below two seasons),
    # not a share of its parent; sparse lanes too.
    models = set(lanes["model"].str.split("/").list.first())
    assert models <= {"SeasonalNaive", "HistoricAverage", "Zero"}
    assert {"SeasonalNaive", "SeasonalNaive/sparse"} <= set(lanes["model"])
    primary = result.points.filter((pl.col("run") == "AutoETS") & (pl.col("level") == "lane"))
    assert "Share" in set(primary["model"])


def test_baseline_of_the_old_format_is_refused_naming_its_version(gate_run, tmp_path):
    _, history, out, _ = gate_run
    old = json.loads((out / "metrics.json").read_text())
    old["format"] = 1
    old_file = tmp_path / "old.json"
    old_file.write_text(json.dumps(old))
    res = run("backtest", history, "-o", tmp_path / "x", "--baseline", old_file)
    assert res.exit_code == EXIT_DATA, res.output
    assert "format 1" in res.output and "format 2" in res.output
    assert not (tmp_path / "x").exists()


def test_calibration_of_the_old_format_is_refused_naming_its_version(gate_run, tmp_path):
    _, history, out, _ = gate_run
    table = pl.read_parquet(out / "calibration.parquet")
    assert set(table["format"]) == {2}
    old = tmp_path / "old.parquet"
    table.drop("format").write_parquet(old)
    config = tmp_path / "c.toml"
    config.write_text(FAST_TOML)
    res = run(
        "forecast", history, "-o", tmp_path / "f.parquet", "--config", config, "--calibration", old
    )
    assert res.exit_code == EXIT_DATA, res.output
    assert "format 1" in res.output and "old.parquet" in res.output
    assert not (tmp_path / "f.parquet").exists()


def test_a_cutoff_on_a_day_without_rows_still_scores_every_step_after_it():
    # A shop closed on the cutoff day: no lane has a row then. The window still ends on the
    # cutoff, so the forecast covers the `horizon` days after it, steps 1..horizon.
    history = make_history(n_lanes=5, days=100)
    cfg = fast(windows=2)
    cuts = backtest(history, cfg).points["cutoff"].unique().sort().to_list()
    closed = history.filter(~pl.col("date").is_in(cuts))
    points = backtest(closed, cfg).points
    horizon = cfg.backtest.horizon or cfg.forecast.horizon
    for cutoff in cuts:
        at = points.filter(pl.col("cutoff") == cutoff, pl.col("level") == "total")
        want = [cutoff + dt.timedelta(days=k) for k in range(1, horizon + 1)]
        assert at.get_column("date").unique().sort().to_list() == want
        assert at.get_column("step").unique().sort().to_list() == list(range(1, horizon + 1))
