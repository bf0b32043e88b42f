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

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "sample": "mmplan.synthetic",
    "forecast": "mmplan.forecasting",
    "backtest": "mmplan.evaluate",
    "optimize": "mmplan.plan",
    "open_engine": "mmplan.engine",
    "load_config": "mmplan.config",
    "Config": "mmplan.config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmplan' has no attribute {name!r}")
