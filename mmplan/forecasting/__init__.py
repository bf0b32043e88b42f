"""The forecast stage: hierarchical lane forecasts, reconciled so that levels add up.

`forecast(history, config)` is the stage (mmplan.forecasting.pipeline describes its steps);
the names below are the parts other stages, the CLI, tests and benchmarks use. Modules:

- hierarchy: the levels and the summing matrix S (`Hierarchy`, `history_hierarchy`);
- series: daily series per lane and per level, event regressors;
- rules: which model each series gets (closed, short, sparse, regular);
- models: statsforecast models and the chunked fitting of base forecasts;
- mint: sparse BottomUp / MinTrace math on the summing matrix;
- reconcile: reconciliation of base forecasts (mint or hierarchicalforecast);
- shares: lanes shared out of their parent's forecast;
- calibration: backtest factors for the intervals, checked and applied;
- pipeline: `forecast` itself.

This package is named `forecasting` and not `forecast` so that `mmplan.forecast` stays the
function: importing a subpackage `mmplan.forecast` would bind that name on `mmplan` to the
package and shadow the public `mmplan.forecast(...)`.
"""

from mmplan.forecasting.calibration import check_calibration
from mmplan.forecasting.hierarchy import (
    Hierarchy,
    build_hierarchy,
    hierarchy_levels,
    hierarchy_notes,
    history_hierarchy,
    upper_hierarchy,
)
from mmplan.forecasting.models import BaseForecasts, Progress, base_forecasts, no_progress
from mmplan.forecasting.pipeline import check_forecastable, compact_keys, forecast
from mmplan.forecasting.rules import assign_models
from mmplan.forecasting.series import (
    LaneSeries,
    aggregate,
    event_features,
    lane_series,
    level_series,
)

__all__ = [
    "forecast",
    "check_forecastable",
    "compact_keys",
    "check_calibration",
    "Hierarchy",
    "build_hierarchy",
    "hierarchy_levels",
    "hierarchy_notes",
    "history_hierarchy",
    "upper_hierarchy",
    "LaneSeries",
    "lane_series",
    "level_series",
    "aggregate",
    "event_features",
    "assign_models",
    "Progress",
    "BaseForecasts",
    "base_forecasts",
    "no_progress",
]
