"""mmplan: middle-mile planning from lane history to a truck plan.

The stages are plain functions, Polars DataFrames in and out, with no I/O:

    import mmplan
    net = mmplan.sample(mmplan.load_config().sample)
    fc = mmplan.forecast(net["history"], mmplan.load_config())

    cfg = mmplan.load_config("cluster.toml")  # [engine] kind = "dask", scheduler = ...
    with mmplan.open_engine(cfg.engine) as engine:
        fc = mmplan.forecast(net["history"], cfg, engine=engine)

They are imported on first use so that `import mmplan` (and `mmplan --help`) stays fast.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# LightGBM's OpenMP threads spin while they wait for work. On a machine that runs anything
# else at once (a cron neighbour, a second mmplan, a test suite) the spinning threads take
# the cores from the threads with work: two 10k-lane forecasts side by side on 2 cores took
# 86 s each, against 38 s with passive waiting (27.6 s and 29.3 s alone). Set before
# lightgbm loads the OpenMP runtime; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# public name -> module that defines it
_EXPORTS = {
    "sample": "mmplan.synthetic",
    "forecast": "mmplan.forecasting",
    "backtest": "mmplan.evaluate",
    "optimize": "mmplan.plan",
    "monitor": "mmplan.evaluate",
    "MonitorSetup": "mmplan.evaluate",
    "plan_scenarios": "mmplan.plan",
    "simulate_plans": "mmplan.plan.simulation",
    "promise": "mmplan.plan.promise",
    "load_scenarios": "mmplan.scenario_file",
    "open_engine": "mmplan.engine",
    "load_config": "mmplan.config",
    "Config": "mmplan.config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmplan' has no attribute {name!r}")
