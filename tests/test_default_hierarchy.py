"""The default hierarchy on a history without its columns (A14): a level naming a column the
history lacks is left out with a note when the hierarchy is the default, and refused (78) when
the user configured it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mmplan.cli import app
from mmplan.config import ForecastConfig, load_config
from mmplan.errors import ConfigError
from mmplan.evaluate.gates import default_gate
from mmplan.forecasting import hierarchy_levels, hierarchy_notes
from tests.conftest import make_history

runner = CliRunner()

FAST = (
    '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nmin_history_days = 28\n'
    'reconciliation = "MinTrace(wls_struct)"\nvalidation_windows = 0\n'
)


@pytest.fixture
def bare_history(tmp_path: Path) -> Path:
    """A history with only the contract's required columns: no origin_region."""
    path = tmp_path / "history.parquet"
    make_history(n_lanes=6, days=90).drop("origin_region").write_parquet(path)
    return path


def test_forecast_with_the_default_hierarchy_leaves_out_an_absent_origin_region(
    tmp_path: Path, bare_history: Path
):
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST)  # sets [forecast] keys, but not the hierarchy
    out = tmp_path / "f.parquet"
    result = runner.invoke(
        app, ["forecast", str(bare_history), "-o", str(out), "--config", str(cfg), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["notes"]) == 1 and "origin_region" in summary["notes"][0]
    assert "left out" in summary["notes"][0]
    assert "note:" in result.stderr and "origin_region" in result.stderr
    levels = set(pl.read_parquet(out).get_column("level").unique())
    assert levels == {"total", "origin", "lane"}


def test_a_configured_hierarchy_naming_an_absent_column_is_still_refused(
    tmp_path: Path, bare_history: Path
):
    cfg = tmp_path / "explicit.toml"
    cfg.write_text(FAST + 'hierarchy = [["origin_region"], ["origin"]]\n')
    out = tmp_path / "f.parquet"
    result = runner.invoke(
        app, ["forecast", str(bare_history), "-o", str(out), "--config", str(cfg)]
    )
    assert result.exit_code == 78
    assert "[forecast].hierarchy names origin_region" in " ".join(result.output.split())
    assert not out.exists()
    explicit = load_config(cfg).forecast
    assert hierarchy_notes(explicit, ["date", "origin", "destination", "volume"]) == []
    with pytest.raises(ConfigError, match="origin_region"):
        hierarchy_levels(explicit, ["date", "origin", "destination", "volume"])


def test_the_default_gate_checks_only_the_levels_the_history_can_give():
    columns = ["date", "origin", "destination", "volume"]
    gate = default_gate(ForecastConfig(), columns)
    assert set(gate.beat_naive_by) == {"total", "origin", "lane"}
    # With the column present, the default keeps the level and says nothing.
    with_region = [*columns, "origin_region"]
    assert hierarchy_notes(ForecastConfig(), with_region) == []
    names = [name for name, _ in hierarchy_levels(ForecastConfig(), with_region)]
    assert names == ["total", "origin_region", "origin", "lane"]


def test_backtest_with_the_default_hierarchy_runs_on_a_bare_history(
    tmp_path: Path, bare_history: Path
):
    cfg = tmp_path / "fast.toml"
    cfg.write_text(FAST + "[backtest]\nwindows = 1\nstep = 7\n")
    out = tmp_path / "bt"
    result = runner.invoke(
        app, ["backtest", str(bare_history), "-o", str(out), "--config", str(cfg), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [r["level"] for r in summary["levels"]] == ["total", "origin", "lane"]
    assert any("origin_region" in n for n in summary["notes"])
