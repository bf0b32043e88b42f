"""Shared fixtures: small, deterministic lane histories written as real Parquet files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import settings

from mmplan.config import ForecastConfig

START = dt.date(2025, 1, 1)

# In CI the property tests draw the same examples every run, so a landing never depends on
# luck; locally they keep exploring. No deadlines: the machine is shared and timing is noise.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def make_history(
    n_lanes: int = 10,
    days: int = 150,
    seed: int = 0,
    new_lane: bool = True,
    closed_lane: bool = True,
    sparse_every: int = 4,
) -> pl.DataFrame:
    """A small network history: FCs fan out to DSs across two regions.

    Lane 0 (and every `sparse_every`-th) is intermittent; lane 1 opens 20 days before the
    end; lane 2 stops 60 days before the end.
    """
    rng = np.random.default_rng(seed)
    frames = []
    t = np.arange(days)
    for i in range(n_lanes):
        level = 0.4 if sparse_every and i % sparse_every == 0 else rng.uniform(20, 300)
        volume = rng.poisson(level * (1 + 0.3 * np.sin(2 * np.pi * t / 7))).astype(float)
        first, last = 0, days
        if new_lane and i == 1:
            first = days - 20
        if closed_lane and i == 2:
            last = days - 60
        frames.append(
            pl.DataFrame(
                {
                    "date": [START + dt.timedelta(days=int(k)) for k in t[first:last]],
                    "origin": f"FC{i % 3}",
                    "destination": f"DS{i:02d}",
                    "volume": volume[first:last],
                    "origin_region": "EAST" if i % 3 < 2 else "WEST",
                }
            )
        )
    return pl.concat(frames)


def fast_config(**overrides) -> ForecastConfig:
    """Cheap models so the forecast pipeline runs in about a second.

    Lanes get their own models (lanes = "model") so the tests see the per-series rules and
    every reconciler at lane level; tests of the default share mode ask for it. No
    validation windows (each would be another fit): the tests of the lane rule and of the
    in-window interval factors ask for them.
    """
    values = dict(
        model="SeasonalNaive",
        horizon=7,
        min_history_days=28,
        reconciliation="MinTrace(wls_struct)",
        lanes="model",
        validation_windows=0,
    )
    values.update(overrides)
    return ForecastConfig(**values)


@pytest.fixture
def history() -> pl.DataFrame:
    return make_history()


@pytest.fixture
def history_file(tmp_path: Path, history: pl.DataFrame) -> Path:
    path = tmp_path / "history.parquet"
    history.write_parquet(path)
    return path


@pytest.fixture
def fast_toml(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text(
        '[forecast]\nmodel = "SeasonalNaive"\nhorizon = 7\nmin_history_days = 28\n'
        'reconciliation = "MinTrace(wls_struct)"\n'
    )
    return path


class SolverWithoutAPlan:
    """Stands in for OR-Tools' ModelSolverHelper: every solve stops, as at its time limit,
    before it has found any plan, however fast the machine."""

    def __init__(self, solver_name: str) -> None:
        self.solver_name = solver_name

    def set_time_limit_in_seconds(self, seconds: float) -> None:
        pass

    def set_solver_specific_parameters(self, parameters: str) -> None:
        pass

    def solve(self, model: object) -> None:
        pass

    def interrupt_solve(self) -> bool:
        return True

    def status(self) -> object:
        import ortools.linear_solver.python.model_builder_helper as mbh

        return mbh.SolveStatus.NOT_SOLVED  # what SCIP reports when its limit comes first

    def has_solution(self) -> bool:
        return False


@pytest.fixture
def solver_without_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every LP and MIP solve of the test ends without a plan, as a too-short time limit does."""
    import ortools.linear_solver.python.model_builder_helper as mbh

    monkeypatch.setattr(mbh, "ModelSolverHelper", SolverWithoutAPlan)
