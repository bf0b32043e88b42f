"""Interval calibration: the factors a backtest measured, checked and applied.

`mmplan backtest` writes calibration.parquet (see mmplan.evaluate.calibrate): per
level, rule and interval, the factor by which the reconciled half-widths must grow (or
shrink) to cover as often as they claim. The forecast multiplies its half-widths by
them before the lower bound is clipped.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl

from mmplan.config import ForecastConfig
from mmplan.errors import DataError
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.reconcile import Bands
from mmplan.tables import check

__all__ = ["check_calibration", "calibration_factors", "calibrate", "conformal_factor"]


def conformal_factor(ratios: npt.NDArray[np.float64] | list[float], p: int) -> float:
    """The split-conformal factor of sorted ratios |actual - forecast| / half-width: the
    ceil((n + 1) p / 100)-th smallest (the largest when n is too small for that; 1 when
    there are none)."""
    n = len(ratios)
    if n == 0:
        return 1.0
    rank = min(math.ceil((n + 1) * p / 100), n)
    return float(ratios[rank - 1])


def check_calibration(
    calibration: pl.DataFrame,
    levels: list[str],
    cfg: ForecastConfig,
    source: str = "calibration",
) -> None:
    """Refuse a calibration measured for another forecast than this one.

    It must have a pooled (rule ``all``) factor for exactly these levels and intervals, come
    from the same model, lanes mode and reconciliation, and cover at least this horizon:
    factors grow with the horizon, so a shorter backtest's would be too narrow.
    """
    from mmplan.tables import validate_calibration

    check(validate_calibration(calibration), source, "calibration")
    pooled = calibration.filter(pl.col("rule") == "all")
    have = set(zip(pooled["level"].to_list(), pooled["interval"].to_list(), strict=True))
    missing = [f"{lv}@{p}" for lv in levels for p in cfg.levels if (lv, p) not in have]
    extra = sorted(
        {
            f"{lv}@{p}"
            for lv, p in zip(calibration["level"], calibration["interval"], strict=True)
            if lv not in levels or p not in cfg.levels
        }
    )
    said = [f"no factor for {', '.join(missing)}"] if missing else []
    if extra:
        said.append(f"factors for {', '.join(extra)}, which this forecast does not have")
    for key in ("model", "lanes", "reconciliation"):
        measured = sorted(set(calibration[key].to_list()))
        if measured != [getattr(cfg, key)]:
            said.append(f"measured with {key} {', '.join(measured)}, not {getattr(cfg, key)}")
    # validate_calibration made `horizon` an integer column; polars types its min as any literal.
    shortest = cast(int | None, calibration["horizon"].min())
    if shortest is not None and shortest < cfg.horizon:
        said.append(
            f"measured over {shortest} days ahead, shorter than this forecast's {cfg.horizon}"
        )
    if said:
        raise DataError(
            f"{source} was not measured for this forecast: {'; '.join(said)}. Run `mmplan "
            "backtest` with the same [forecast] configuration (and at least this horizon) "
            "and pass its calibration.parquet."
        )


def calibration_factors(
    calibration: pl.DataFrame, hier: Hierarchy, plan: pl.DataFrame, cfg: ForecastConfig
) -> dict[int, npt.NDArray[np.float64]]:
    """Per interval level, the factor of every series (rows of hier.series).

    A series takes its level's factor for its rule, or the pooled one when the backtest saw
    no series of that rule. Lanes shared out of their origin follow the regular factor.
    """
    have = {
        (lv, rule, int(p)): float(f)
        for lv, rule, p, f in calibration.select("level", "rule", "interval", "factor").iter_rows()
    }
    series = hier.series.select("unique_id", "level").join(
        plan.select("unique_id", "rule"), on="unique_id", how="left", maintain_order="left"
    )
    pairs = list(
        zip(series["level"].to_list(), series["rule"].fill_null("regular").to_list(), strict=True)
    )
    return {
        p: np.array([have.get((lv, rule, p), have[(lv, "all", p)]) for lv, rule in pairs])
        for p in cfg.levels
    }


def calibrate(
    bands: Bands,
    calibration: pl.DataFrame,
    hier: Hierarchy,
    plan: pl.DataFrame,
    cfg: ForecastConfig,
) -> None:
    """Multiply the half-widths of `bands` in place by the factors of `calibration`."""
    factors = calibration_factors(calibration, hier, plan, cfg)
    widest: dict[str, npt.NDArray[np.float64]] = {}
    for p in cfg.levels:  # ascending
        for side, half in (("lo", bands.half_lo[p]), ("hi", bands.half_hi[p])):
            half *= factors[p][:, None]
            # Factors are measured per interval: keep a wider interval no narrower.
            if side in widest:
                np.maximum(half, widest[side], out=half)
            widest[side] = half
