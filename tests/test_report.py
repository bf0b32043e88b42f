"""`mmplan report`: the page, its exit codes, its atomicity, and the page in a real browser.

The inputs are made once per session by the real commands on a tiny sample network
(`mmplan sample`, `forecast`, `backtest` with one cutoff, `optimize`, `optimize --scenarios`
with two small scenarios, `simulate` of the plan beside one scenario's with a few samples,
`promise` of the plan, and `monitor` of that forecast and plan against a week of actuals
after the history), so the report reads exactly what those commands write. The browser test
opens the page in the system's headless Chromium through Playwright (which never downloads
a browser here) and fails, never skips, when Chromium is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import Config
from mmplan.report import KINDS, InputKind, build_report, register
from mmplan.report.inputs import Loaded
from mmplan.report.registry import Context, Part, Section

runner = CliRunner()

FAST = """
[forecast]
model = "SeasonalNaive"
horizon = 7
min_history_days = 28
validation_windows = 0
n_jobs = 1

[backtest]
windows = 1
step = 7
horizon = 7

[optimize]
time_limit = 20.0
workers = 1
"""


# Alert rules for the monitor: the actuals' +30% week fails some, passes others.
MONITOR_RULES = """
[monitor]
max_wape_ratio = { total = 1.5, lane = 50.0 }
max_abs_tracking_signal = { origin = 4.0 }
max_overflow_share = { network = 0.05 }
"""


# Two what-ifs on the tiny sample's first forecast days (it starts on 2024-04-30).
SCENARIOS = """
[[scenario]]
name = "sc01_down"
[[scenario.change]]
type = "facility_down"
facility = "SC01"
start = 2024-05-01
end = 2024-05-01

[[scenario]]
name = "surge"
[[scenario.change]]
type = "demand"
multiply = 1.5
start = 2024-04-30
end = 2024-05-01
"""


def _actuals(history: Path, target: Path) -> Path:
    """The history and, after it, its last week again 30% higher: what came after the
    forecast (a forecast of the whole history starts the day after it ends)."""
    table = pl.read_parquet(history)
    last = table["date"].max()
    week = table.filter(pl.col("date") > last - dt.timedelta(days=7)).with_columns(
        pl.col("date") + dt.timedelta(days=7), pl.col("volume") * 1.3
    )
    pl.concat([table, week.cast(table.schema)]).write_parquet(target)
    return target


def _run(*args: str | Path) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """History, forecast, backtest, plan and monitor of a 10-facility sample, by the real
    commands."""
    root = tmp_path_factory.mktemp("report-inputs")
    config = root / "fast.toml"
    config.write_text(FAST)
    sample = root / "sample"
    sizes = ["--regions", "2", "--fcs", "2", "--scs", "2", "--dss", "6", "--days", "120"]
    _run("sample", sample, "--seed", "3", *sizes)
    history, forecast = sample / "history.parquet", root / "forecast.parquet"
    _run("forecast", history, "-o", forecast, "-c", config)
    _run("backtest", history, "-o", root / "backtest", "-c", config)
    network = ["--nodes", sample / "nodes.parquet", "--lanes", sample / "lanes.parquet"]
    _run("optimize", forecast, *network, "-o", root / "plan", "-c", config)
    (root / "scenarios.toml").write_text(SCENARIOS)
    what_if = ["--scenarios", root / "scenarios.toml", "-o", root / "scenarios"]
    _run("optimize", forecast, *network, *what_if, "-c", config)
    compare = ["--compare", root / "scenarios" / "surge", "--samples", "8", "--seed", "1"]
    _run("simulate", root / "plan", "--demand", forecast, "-o", root / "sim", *compare)
    lanes = ["--lanes", sample / "lanes.parquet"]
    _run("promise", root / "plan", *lanes, "-o", root / "promise.parquet")
    rules = root / "monitor.toml"
    rules.write_text(FAST + MONITOR_RULES)
    actuals = _actuals(history, root / "actuals.parquet")
    baseline = ["--baseline", root / "backtest" / "metrics.json"]
    watch = ["--plan", root / "plan", "--lanes", sample / "lanes.parquet", *baseline]
    _run(
        "monitor",
        "--forecast",
        forecast,
        "--actuals",
        actuals,
        *watch,
        "-o",
        root / "monitor",
        "-c",
        rules,
    )
    return {
        "history": history,
        "forecast": forecast,
        "backtest": root / "backtest",
        "plan": root / "plan",
        "scenarios": root / "scenarios",
        "simulation": root / "sim",
        "promise": root / "promise.parquet",
        "monitor": root / "monitor",
    }


def _args(outputs: dict[str, Path], *kinds: str) -> list[str]:
    return [a for k in kinds for a in (f"--{k}", str(outputs[k]))]


ALL = ("history", "forecast", "backtest", "plan", "scenarios", "simulation", "promise", "monitor")
SECTIONS = ("forecast", "backtest", "plan", "scenarios", "simulation", "promise", "monitor")


@pytest.fixture(scope="session")
def page(outputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of every input, with one lane drawn by --series."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    lane = pl.read_parquet(outputs["forecast"]).filter(pl.col("level") == "lane")["unique_id"][0]
    result = runner.invoke(
        app, ["report", "-o", str(out), *_args(outputs, *ALL), "--series", lane, "--json"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_report_holds_every_section_and_prints_its_size(outputs, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-o", str(out), *_args(outputs, *ALL), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sections"] == list(SECTIONS)
    assert summary["notes"] == []  # every input made from the ones beside it
    assert summary["bytes"] == out.stat().st_size
    assert "MB" in result.stderr and f"{summary['bytes']:,} bytes" in result.stderr
    html = out.read_text()
    for anchor in (*SECTIONS, "provenance"):
        assert f'id="{anchor}"' in html
    # provenance: every file read, with the SHA-256 the report's record holds
    for label, entry in summary["inputs"].items():
        assert entry in html and label in html
    assert "plan/trucks.parquet" in summary["inputs"]
    assert {"monitor/scores.parquet", "monitor/plan_lanes.parquet"} <= set(summary["inputs"])
    assert {"scenarios/comparison.parquet", "simulation/samples.parquet"} <= set(summary["inputs"])


def test_page_is_self_contained_with_plotly_js_once(page):
    from mmplan.report.charts import plotly_js

    html = page.read_text()
    js = plotly_js()
    assert html.count(js) == 1  # plotly.js, inline, once
    rest = html.replace(js, "")
    assert rest.count("Plotly.newPlot(") >= 8
    assert rest.count("<script") == rest.count("</script>")
    # nothing the page itself loads from elsewhere (plotly.js names URLs in strings it never
    # fetches here: the browser test records every request)
    lowered = rest.lower()
    for external in ("<script src", "<link", "<img", "@import", "src=", 'href="http', "url("):
        assert external not in lowered, external
    assert page.stat().st_size < 10_000_000


def test_series_draws_the_named_lane(page, outputs):
    lane = pl.read_parquet(outputs["forecast"]).filter(pl.col("level") == "lane")["unique_id"][0]
    origin, destination = lane.split(":")[1].split("/")
    assert f"lane {origin} → {destination}" in page.read_text()


def test_unknown_series_is_a_usage_error(outputs, tmp_path):
    out = tmp_path / "r.html"
    args = ["report", "-o", str(out), *_args(outputs, "forecast"), "--series", "NOPE/X"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--series NOPE/X" in result.stderr
    assert not out.exists()


def test_no_input_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["report", "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "nothing to report" in result.stderr


def test_missing_file_or_folder_is_66(outputs, tmp_path):
    out = tmp_path / "r.html"
    cases = (("--forecast", "none.parquet"), ("--plan", "noplan"), ("--monitor", "nomon"))
    cases += (("--scenarios", "noscen"), ("--simulation", "nosim"), ("--promise", "no.parquet"))
    for flag, missing in cases:
        result = runner.invoke(app, ["report", "-o", str(out), flag, str(tmp_path / missing)])
        assert result.exit_code == 66, result.output
        assert missing in result.stderr
    assert not out.exists()


def test_a_folder_that_is_not_a_backtest_plan_or_monitor_is_65(outputs, tmp_path):
    out = tmp_path / "r.html"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a plan")
    cases = [("--backtest", outputs["plan"]), ("--plan", outputs["backtest"]), ("--plan", other)]
    cases += [("--monitor", outputs["plan"]), ("--monitor", other)]
    cases += [("--monitor", outputs["backtest"]), ("--plan", outputs["monitor"])]
    cases += [("--simulation", outputs["plan"]), ("--simulation", other)]
    cases += [("--simulation", outputs["forecast"]), ("--scenarios", outputs["simulation"])]
    for flag, folder in cases:
        result = runner.invoke(app, ["report", "-o", str(out), flag, str(folder)])
        assert result.exit_code == 65, result.output
        assert str(folder) in " ".join(result.stderr.split())
    # a scenario folder and a plan folder, each where the other goes, say which option fits
    for flag, folder, hint in (
        ("--plan", outputs["scenarios"], "--scenarios"),
        ("--scenarios", outputs["plan"], "--plan"),
    ):
        result = runner.invoke(app, ["report", "-o", str(out), flag, str(folder)])
        assert result.exit_code == 65, result.output
        message = " ".join(result.stderr.split())
        assert str(folder) in message and f"with {hint}" in message, message
    # a forecast where a history goes is a table that breaks its contract
    result = runner.invoke(app, ["report", "-o", str(out), "--history", str(outputs["forecast"])])
    assert result.exit_code == 65
    assert not out.exists()


def test_monitor_section_shows_alerts_expected_error_drift_and_overflow(outputs, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-o", str(out), *_args(outputs, "monitor"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["sections"] == ["monitor"]
    html = out.read_text()
    section = html[html.index('id="monitor"') :]
    alerts = pl.read_parquet(outputs["monitor"] / "alerts.parquet")
    assert set(alerts["status"]) == {"FAIL", "pass"}  # the +30% week fails some rules
    # failed rules first: every FAIL row comes before the first pass row
    body = section[section.index("<h3>Alerts</h3>") :]
    body = body[: body.index("</table>")]
    assert body.rindex(">FAIL<") < body.index("<td>pass</td>")
    summary = json.loads((outputs["monitor"] / "summary.json").read_text())
    total = summary["levels"]["total"]
    assert f"{total['wape_ratio']:.2f}" in section  # the ratio, in the table and the chart
    assert "observed against expected" in section and "nominal" in section
    assert "Series by tracking signal" in section and "beyond expected" in section
    assert "The plan against the actuals" in section and "Lanes overflowing" in section
    assert section.count("Plotly.newPlot(") >= 3
    # levels in hierarchy order, total first and lane last
    rows = [f"<tr><td>{lv}</td>" for lv in ("total", "origin_region", "origin", "lane")]
    found = [section.index(r) for r in rows]
    assert found == sorted(found)


def test_a_monitor_folder_with_a_bad_or_missing_file_is_65(outputs, tmp_path):
    out = tmp_path / "r.html"
    broken = tmp_path / "monitor"
    shutil.copytree(outputs["monitor"], broken)
    (broken / "plan_lanes.parquet").unlink()  # summary.json has a plan check
    result = runner.invoke(app, ["report", "-o", str(out), "--monitor", str(broken)])
    assert result.exit_code == 65, result.output
    assert "plan_lanes.parquet" in result.stderr
    shutil.copy(outputs["monitor"] / "plan_lanes.parquet", broken)
    scores = pl.read_parquet(broken / "scores.parquet").drop("wape")
    scores.write_parquet(broken / "scores.parquet")
    result = runner.invoke(app, ["report", "-o", str(out), "--monitor", str(broken)])
    assert result.exit_code == 65, result.output
    message = " ".join(result.stderr.split())
    assert "scores.parquet" in message and "wape" in message
    assert not out.exists()


def test_a_monitor_without_plan_baseline_or_rules_says_so(outputs, tmp_path):
    """What `mmplan monitor` writes without --plan, --baseline or [monitor] rules (and its
    per-market record with [markets] column)."""
    bare = tmp_path / "monitor"
    shutil.copytree(outputs["monitor"], bare)
    for name in ("plan_lanes.parquet", "plan_facilities.parquet"):
        (bare / name).unlink()
    alerts = pl.read_parquet(bare / "alerts.parquet")
    alerts.head(0).write_parquet(bare / "alerts.parquet")
    summary = json.loads((bare / "summary.json").read_text())
    summary["plan"] = None
    for entry in summary["levels"].values():
        for key in [k for k in entry if k.startswith("expected") or k == "wape_ratio"]:
            entry.pop(key)
    # and with [markets] column, a record per market
    summary["markets"] = {"east": {"total": {"wape": 0.125, "wape_ratio": 2.5}}}
    (bare / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-o", str(out), "--monitor", str(bare)])
    assert result.exit_code == 0, result.output
    html = " ".join(out.read_text().split())
    assert "No alert rules are configured" in html and "No expected WAPE" in html
    assert "The plan against the actuals" not in html
    assert "<h3>Markets</h3>" in html and "<td>east</td><td>total</td>" in html
    assert "12.5%" in html and "2.50" in html


def test_header_notes_a_monitor_and_simulation_of_another_forecast_and_plan(outputs, tmp_path):
    forecast = tmp_path / "forecast.parquet"
    pl.read_parquet(outputs["forecast"]).write_parquet(forecast)  # same rows, another file
    plan = tmp_path / "plan"
    shutil.copytree(outputs["plan"], plan)
    for name in ("trucks", "flows"):
        pl.read_parquet(plan / f"{name}.parquet").write_parquet(plan / f"{name}.parquet")
    out = tmp_path / "r.html"
    args = ["report", "-o", str(out), "--forecast", str(forecast), "--plan", str(plan)]
    others = _args(outputs, "monitor", "simulation", "promise")
    result = runner.invoke(app, [*args, *others, "--json"])
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout.strip().splitlines()[-1])["notes"]
    monitor = [n for n in notes if n.startswith("The monitor was made from")]
    assert len(monitor) == 2, notes
    assert any("not from the plan given here" in n for n in monitor), notes
    # the simulation of the original plan and forecast: the header says it is of neither
    sim = [n for n in notes if n.startswith("The simulation was made from")]
    assert len(sim) == 2, notes
    assert any(str(outputs["forecast"]) in n and "forecast given here" in n for n in sim), notes
    assert any("not the plan given with --plan" in n for n in sim), notes
    section = out.read_text()[out.read_text().index('id="simulation"') :]
    assert "(the plan given with --plan)" not in section
    # the promise of the original plan's flows
    promise = [n for n in notes if n.startswith("The promise was made from")]
    assert len(promise) == 1 and "not from the plan given here" in promise[0], notes


def _renamed(path: Path, target: Path, column: str) -> Path:
    """`path` with every DS facility in `column` (and the lane ids) renamed: another network."""
    table = pl.read_parquet(path)
    exprs = [pl.col(column).str.replace("^DS", "XS")]
    if "unique_id" in table.columns:
        exprs.append(pl.col("unique_id").str.replace("/DS", "/XS"))
    table.with_columns(exprs).write_parquet(target)
    return target


def test_forecast_and_plan_of_different_networks_are_65(outputs, tmp_path):
    out = tmp_path / "r.html"
    other = _renamed(outputs["forecast"], tmp_path / "other.parquet", "destination")
    result = runner.invoke(
        app, ["report", "-o", str(out), "--forecast", str(other), "--plan", str(outputs["plan"])]
    )
    assert result.exit_code == 65, result.output
    message = " ".join(result.stderr.split())
    assert str(other) in message and str(outputs["plan"]) in message
    assert "same network" in message


def test_forecast_and_simulation_of_different_networks_are_65(outputs, tmp_path):
    out = tmp_path / "r.html"
    other = _renamed(outputs["forecast"], tmp_path / "other.parquet", "destination")
    args = ["report", "-o", str(out), "--forecast", str(other), *_args(outputs, "simulation")]
    result = runner.invoke(app, args)
    assert result.exit_code == 65, result.output
    message = " ".join(result.stderr.split())
    assert str(other) in message and str(outputs["simulation"]) in message
    assert "same network" in message


def test_forecast_and_history_of_different_networks_are_65(outputs, tmp_path):
    out = tmp_path / "r.html"
    other = _renamed(outputs["history"], tmp_path / "h.parquet", "destination")
    args = ["report", "-o", str(out), "--history", str(other), *_args(outputs, "forecast")]
    result = runner.invoke(app, args)
    assert result.exit_code == 65, result.output
    assert str(other) in " ".join(result.stderr.split())


def test_a_failed_run_leaves_the_earlier_report_untouched(outputs, tmp_path):
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", "-o", str(out), *_args(outputs, "plan")]).exit_code == 0
    before = out.read_bytes()
    other = _renamed(outputs["forecast"], tmp_path / "other.parquet", "destination")
    args = ["report", "-o", str(out), "--forecast", str(other), *_args(outputs, "plan")]
    assert runner.invoke(app, args).exit_code == 65
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.parquet", "r.html"]


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def test_scenario_section_compares_every_scenario_with_the_base(outputs, tmp_path):
    """Each scenario of comparison.parquet, base first, with its figures and deltas; a
    scenario that could not be planned (what `optimize` writes for it: its status and
    message, only a summary.json) keeps its row and is left out of the charts."""
    folder = tmp_path / "scenarios"
    shutil.copytree(outputs["scenarios"], folder)
    comparison = pl.read_parquet(folder / "comparison.parquet")
    failed = {"scenario": "broken", "status": "FAILED", "message": "solver gave up"}
    comparison = pl.concat([comparison, pl.DataFrame([failed])], how="diagonal_relaxed")
    comparison.write_parquet(folder / "comparison.parquet")
    (folder / "broken").mkdir()
    (folder / "broken" / "summary.json").write_text(json.dumps(failed))
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-o", str(out), "--scenarios", str(folder)])
    assert result.exit_code == 0, result.output
    section = _section(out.read_text(), "scenarios")
    rows = [section.index(f"<tr><td>{name}</td>") for name in comparison["scenario"]]
    assert rows == sorted(rows)  # base first, in the comparison's order
    base, down, surge = comparison.head(3).iter_rows(named=True)
    assert down["closed_facility_volume"] > 0  # SC01's own volume on its day down
    assert f"{down['closed_facility_volume']:,.0f}" in section
    for row in (base, down, surge):
        assert f"{row['total_cost']:,.0f}" in section and f"{row['handling_cost']:,.0f}" in section
    delta = surge["delta_total_cost"]
    assert f"{delta:+,.0f} ({delta / base['total_cost']:+.1%})" in section
    assert "FAILED<br><small>solver gave up</small>" in section
    assert "not planned" in section and ">1</div>" in section  # the tile counts it
    assert section.count("Plotly.newPlot(") == 2
    drawn = json.dumps(["base", "sc01_down", "surge"], separators=(",", ":"))
    assert section.count(f'"x":{drawn}') == 6  # 4 cost components, unserved, closed
    # a scenario named in the comparison without its folder is not a whole scenario folder
    shutil.rmtree(folder / "broken")
    result = runner.invoke(app, ["report", "-o", str(out), "--scenarios", str(folder)])
    assert result.exit_code == 65, result.output
    assert "broken" in result.stderr and "summary.json" in result.stderr
    comparison.head(0).write_parquet(folder / "comparison.parquet")
    result = runner.invoke(app, ["report", "-o", str(out), "--scenarios", str(folder)])
    assert result.exit_code == 65, result.output
    assert "comparison.parquet has no rows" in " ".join(result.stderr.split())


def test_simulation_section_shows_each_plan_its_distribution_and_worst_service(outputs, tmp_path):
    out = tmp_path / "r.html"
    args = _args(outputs, "forecast", "plan", "simulation")
    assert runner.invoke(app, ["report", "-o", str(out), *args]).exit_code == 0
    section = _section(out.read_text(), "simulation")
    summary = json.loads((outputs["simulation"] / "summary.json").read_text())
    plans = summary["plans"]
    assert set(plans) == {"plan", "surge"}
    for entry in plans.values():
        for key in ("cost_p50", "cost_p90", "cost_p99", "expected_unserved_volume"):
            assert f"{entry[key]:,.0f}" in section, key
        assert f"{100 * entry['p_any_unserved']:.1f}%" in section
    best = min(plans, key=lambda name: plans[name]["cost_mean"])
    assert f"{best} minimises expected total cost" in section
    assert f"{best} <strong>(lowest expected cost)</strong>" in section
    # what it was made from: the plan and forecast given beside it
    assert "(the plan given with --plan)" in section
    assert "(the forecast given with --forecast)" in section
    # a box of total cost and one of unserved volume per plan, the simulated plan first
    assert section.count('"type":"box"') == 2 * len(plans)
    assert section.index('"name":"plan"') < section.index('"name":"surge"')
    # the facility with the lowest service level under the simulated plan heads its table
    facilities = pl.read_parquet(outputs["simulation"] / "facilities.parquet")
    worst = facilities.filter(pl.col("plan") == "plan").sort("service_level", "facility")
    table_ = section[section.index("Facilities by service level") :]
    assert table_.index(f"<tr><td>{worst['facility'][0]}</td>") < table_.index(
        f"<tr><td>{worst['facility'][-1]}</td>"
    )
    assert f"{100 * worst['service_level'][0]:.2f}%" in table_
    assert "Origin-destination pairs by service level" in section


def test_promise_section_shows_volume_by_days_and_the_longest_promises(outputs, tmp_path):
    out = tmp_path / "r.html"
    args = ["report", "-o", str(out), *_args(outputs, "forecast", "plan", "promise"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["notes"] == []
    section = _section(out.read_text(), "promise")
    promise = pl.read_parquet(outputs["promise"])
    days = promise.group_by("origin", "destination", "date").agg(
        pl.col("volume").sum(), pl.col("promised_days").first()
    )
    for d in days["promised_days"].unique():
        assert f'"{d:g} d"' in section  # a bar per promised days
    assert f"{days['volume'].sum():,.0f}" in section
    # a pair with the longest volume-weighted promise heads the table
    pairs = days.group_by("origin", "destination").agg(
        ((pl.col("promised_days") * pl.col("volume")).sum() / pl.col("volume").sum()).alias("m")
    )
    longest = pairs.filter(pl.col("m").is_not_nan())["m"].max()
    body = section[section.index("Longest promises") :]
    first = body[body.index("<tbody><tr><td>") + 15 :].split("</td>")[0]
    origin, destination = first.split(" → ")
    mine = pairs.filter((pl.col("origin") == origin) & (pl.col("destination") == destination))
    assert mine["m"][0] == pytest.approx(longest)
    assert f"{longest:.2f}" in body
    # a table that is not a promise is 65 naming it and the column
    broken = tmp_path / "promise.parquet"
    promise.drop("promised_days").write_parquet(broken)
    result = runner.invoke(app, ["report", "-o", str(out), "--promise", str(broken)])
    assert result.exit_code == 65, result.output
    message = " ".join(result.stderr.split())
    assert str(broken) in message and "promised_days" in message


def test_a_simulation_folder_with_a_bad_or_missing_file_is_65(outputs, tmp_path):
    out = tmp_path / "r.html"
    broken = tmp_path / "sim"
    shutil.copytree(outputs["simulation"], broken)
    (broken / "pairs.parquet").unlink()
    result = runner.invoke(app, ["report", "-o", str(out), "--simulation", str(broken)])
    assert result.exit_code == 65, result.output
    assert "pairs.parquet" in result.stderr
    shutil.copy(outputs["simulation"] / "pairs.parquet", broken)
    samples = pl.read_parquet(broken / "samples.parquet").drop("total_cost")
    samples.write_parquet(broken / "samples.parquet")
    result = runner.invoke(app, ["report", "-o", str(out), "--simulation", str(broken)])
    assert result.exit_code == 65, result.output
    message = " ".join(result.stderr.split())
    assert "samples.parquet" in message and "total_cost" in message
    samples = pl.read_parquet(outputs["simulation"] / "samples.parquet")
    samples.with_columns(pl.col("total_cost").cast(pl.String)).write_parquet(
        broken / "samples.parquet"
    )
    result = runner.invoke(app, ["report", "-o", str(out), "--simulation", str(broken)])
    assert result.exit_code == 65, result.output
    assert "total_cost is String, not numbers" in " ".join(result.stderr.split())
    shutil.copy(outputs["simulation"] / "samples.parquet", broken)
    summary = json.loads((broken / "summary.json").read_text())
    summary["plans"]["surge"].pop("cost_p90")
    (broken / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["report", "-o", str(out), "--simulation", str(broken)])
    assert result.exit_code == 65, result.output
    message = " ".join(result.stderr.split())
    assert "summary.json" in message and "surge" in message and "cost_p90" in message
    assert not out.exists()


def test_series_without_a_forecast_is_a_usage_error(outputs, tmp_path):
    args = ["report", "-o", str(tmp_path / "r.html"), *_args(outputs, "plan"), "--series", "A/B"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--forecast" in result.stderr


def test_header_warns_of_inputs_not_made_from_each_other(outputs, tmp_path):
    """Same network, another file: a rewritten forecast, a plan table changed since its
    manifest. Not errors; the header and the summary say so."""
    forecast = tmp_path / "forecast.parquet"
    pl.read_parquet(outputs["forecast"]).write_parquet(forecast)
    plan = tmp_path / "plan"
    shutil.copytree(outputs["plan"], plan)
    pl.read_parquet(plan / "unserved.parquet").write_parquet(plan / "unserved.parquet")
    out = tmp_path / "r.html"
    args = ["report", "-o", str(out), "--forecast", str(forecast), "--plan", str(plan), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout.strip().splitlines()[-1])["notes"]
    assert any("not from the forecast given here" in n for n in notes), notes
    assert any("unserved.parquet changed since" in n for n in notes), notes
    assert "not from the forecast given here" in out.read_text()


def test_output_in_a_missing_folder_is_73_before_reading(outputs, tmp_path):
    out = tmp_path / "no" / "r.html"
    result = runner.invoke(app, ["report", "-o", str(out), *_args(outputs, "forecast")])
    assert result.exit_code == 73


def test_history_alone_draws_the_history(outputs, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-o", str(out), *_args(outputs, "history"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["sections"] == ["history"]


def test_a_registered_kind_adds_its_section(outputs):
    """The extension point later commands use: one InputKind, read and rendered."""

    def read(path: Path) -> Loaded:
        return Loaded("extra", path, path.read_text())

    def render(ctx: Context) -> Section:
        return Section("extra", "Extra", [Part(f"<p>{ctx.inputs['extra'].data}</p>")])

    note = outputs["plan"].parent / "extra.txt"
    note.write_text("hello from a new command")
    register(InputKind("extra", read, render, order=99))
    try:
        page = build_report({"extra": note, "plan": outputs["plan"]}, Config())
    finally:
        KINDS.pop("extra")
    assert page.sections == ["plan", "extra"]
    assert "hello from a new command" in page.html


# --- the page in a real browser ---------------------------------------------------------

INSTALL = (
    "Chromium is needed for the browser test and was not found (looked for $MMPLAN_CHROMIUM, "
    "chromium, chromium-browser). Install it: `sudo apt-get install -y chromium` on Debian "
    "or Ubuntu (`make test` does this itself when run as root), or point MMPLAN_CHROMIUM at "
    "a Chromium or Chrome binary. Playwright's own browser download is not used."
)


def _chromium() -> str:
    for candidate in (os.environ.get("MMPLAN_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail(INSTALL)


def test_page_in_headless_chromium(page, tmp_path):
    from io import BytesIO

    from PIL import Image, ImageStat
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    url = page.resolve().as_uri()
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(url, wait_until="load")
            charts = tab.locator(".plotly-graph-div").count()
            tab.wait_for_function(
                f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= {charts}"
            )
            for anchor in ("provenance", *SECTIONS):
                assert tab.locator(f"#{anchor}").is_visible(), anchor
            shot = tab.screenshot(full_page=False)
        finally:
            browser.close()
    assert problems == []
    assert requests == [url], "the page fetched something besides itself"
    assert charts >= 12
    pixels = Image.open(BytesIO(shot)).convert("L")
    assert ImageStat.Stat(pixels).stddev[0] > 10, "the screenshot is blank"
