"""Interval calibration: the factors a backtest measured, checked and applied.

`mmplan backtest` writes calibration.parquet (see mmplan.evaluate.calibrate): per
level, rule and interval, the factor by which the reconciled half-widths must grow (or
shrink) to cover as often as they claim. The forecast multiplies its half-widths by
them before the lower bound is clipped.

The validation windows' factors (mmplan.forecasting.choice) may differ per side
(`side_factors`): a forecast whose windows erred mostly one way gets that side widened,
so the tables may carry `lower` and `upper` columns next to the symmetric `factor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.special import stdtrit

from mmplan.config import ForecastConfig
from mmplan.errors import DataError
from mmplan.forecasting.hierarchy import Hierarchy
from mmplan.forecasting.reconcile import Bands
from mmplan.tables import check

__all__ = [
    "Sides",
    "SideFactors",
    "check_calibration",
    "calibration_factors",
    "calibrate",
    "conformal_factor",
    "side_factors",
]


def conformal_factor(ratios: npt.NDArray[np.float64] | list[float], p: int) -> float:
    """The split-conformal factor of sorted ratios |actual - forecast| / half-width: the
    ceil((n + 1) p / 100)-th smallest (the largest when n is too small for that; 1 when
    there are none)."""
    n = len(ratios)
    if n == 0:
        return 1.0
    rank = min(math.ceil((n + 1) * p / 100), n)
    return float(ratios[rank - 1])


@dataclass(frozen=True)
class SideFactors:
    """The factors of one level and interval: below the point, above it, and the symmetric
    split-conformal one they start from."""

    lower: float
    upper: float
    symmetric: float


def side_factors(signed: npt.NDArray[np.float64], p: int) -> SideFactors:
    """Per side, the factor of signed ratios (actual - forecast) / half-width (the half on
    the side of the error).

    Both sides start at the symmetric split-conformal factor k of |ratio|. The side the
    ratios lean to (their median b's sign) becomes max(k, |b| + k'), k' the conformal factor
    of |ratio - b|: an interval centred on the windows' typical error would reach that far.
    A growing network's trees forecast under it in every window and, more so, in the peak
    after them (the sample's 80% total covered 70% symmetric); a lean that persists is the
    rule there, so that side takes it on top of the spread. The other side keeps k, so no
    interval narrows and the point stays inside. Unbiased windows give b ~ 0 and k' ~ k.
    """
    r = np.asarray(signed, dtype=np.float64)
    k = conformal_factor(np.sort(np.abs(r)), p)
    if r.size == 0:
        return SideFactors(k, k, k)
    lean = float(np.median(r))
    wide = max(k, abs(lean) + conformal_factor(np.sort(np.abs(r - lean)), p))
    if lean > 0:
        return SideFactors(k, wide, k)
    if lean < 0:
        return SideFactors(wide, k, k)
    return SideFactors(k, k, k)


# Degrees of freedom of the Student t whose quantile ratio floors a wider interval (below).
# Chosen on the 12-cutoff backtests of the real sets and both samples: the normal ratio
# (1.53 from 80% to 95%) left the default-size sample's 95% total at 89.0%; t(6) (1.70) is
# the lightest tail tried (normal, 30, 10, 6, 5, 4) with every level of every set in [90, 100].
TAIL_DF = 6


def _t(p: int) -> float:
    """The Student t(TAIL_DF) quantile of a central p% interval's upper end (scipy.special's
    inverse CDF: scipy.stats would add a second to every forecast's start-up)."""
    return float(stdtrit(TAIL_DF, 0.5 + p / 200))


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


@dataclass(frozen=True)
class Sides:
    """Per series (rows of hier.series), the factor of its half-width below and above."""

    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]


def calibration_factors(
    calibration: pl.DataFrame, hier: Hierarchy, plan: pl.DataFrame, cfg: ForecastConfig
) -> dict[int, Sides]:
    """Per interval level, the factors of every series (rows of hier.series).

    A series takes its level's factor for its rule, or the pooled one when the backtest saw
    no series of that rule. Lanes shared out of their origin follow the regular factor. A
    table with `lower` and `upper` columns (the validation windows') scales each side by
    its own; one with `factor` alone (a backtest's) scales both by it.
    """
    lower = "lower" if "lower" in calibration.columns else "factor"
    upper = "upper" if "upper" in calibration.columns else "factor"
    keyed = calibration.select(
        "level", "rule", "interval", pl.col(lower).alias("_lo"), pl.col(upper).alias("_hi")
    ).iter_rows()
    have = {(lv, rule, int(p)): (float(lo), float(hi)) for lv, rule, p, lo, hi in keyed}
    series = hier.series.select("unique_id", "level").join(
        plan.select("unique_id", "rule"), on="unique_id", how="left", maintain_order="left"
    )
    pairs = list(
        zip(series["level"].to_list(), series["rule"].fill_null("regular").to_list(), strict=True)
    )
    out: dict[int, Sides] = {}
    for p in cfg.levels:
        both = np.array([have.get((lv, rule, p), have[(lv, "all", p)]) for lv, rule in pairs])
        both = both.reshape(len(pairs), 2)
        out[p] = Sides(both[:, 0], both[:, 1])
    return out


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
    previous = None
    for p in cfg.levels:  # ascending
        f = factors[p]
        # A wider interval is at least the narrower calibrated one times the ratio of their
        # t(TAIL_DF) quantiles (1.70 from 80% to 95%): a 95% factor is the 2nd-largest of a
        # few dozen correlated ratios at an aggregate, and on the samples it left those
        # intervals at 88-89%. Aggregate errors have heavier tails than normal ones (a level
        # shift moves a whole window); heavier tails measured above the floor are kept.
        ratio = 1.0 if previous is None else _t(p) / _t(previous)
        for side, half, factor in (
            ("lo", bands.half_lo[p], f.lower),
            ("hi", bands.half_hi[p], f.upper),
        ):
            half *= factor[:, None]
            if side in widest:
                np.maximum(half, widest[side] * ratio, out=half)
            widest[side] = half
        previous = p
