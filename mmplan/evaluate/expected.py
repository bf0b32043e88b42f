"""What the backtest measured, held up as what monitoring should expect.

`expected_scores` reads an earlier backtest's metrics.json (`--baseline`): per level and
horizon step its WAPE and coverage, and for steps 1..n pooled the way the metrics are
pooled (WAPE from the summed errors and volumes; coverage weighted by points), so a
forecast observed for n periods is held against the backtest's first n steps.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from mmplan.evaluate.gates import Baseline

__all__ = ["expected_scores"]


def expected_scores(
    baseline: Baseline | None, levels: list[str], steps: int, intervals: list[int]
) -> tuple[pl.DataFrame | None, str]:
    """level, step (null: steps 1..`steps` pooled), expected_wape, expected_coverage_<p>
    from the backtest's metrics.json; and a note when something is missing."""
    if baseline is None:
        return None, "no --baseline metrics.json given"
    record = baseline.record
    by_level = record["metrics"].get(record["primary"], {})
    rows, short = [], []
    for level in levels:
        by_step = (by_level.get(level) or {}).get("by_step") or {}
        got = [by_step[str(s)] | {"step": s} for s in range(1, steps + 1) if str(s) in by_step]
        if len(got) < steps:
            short.append(level)
        for r in got:
            rows.append({"level": level, "step": r["step"], **_pooled([r], intervals)})
        if got:
            rows.append({"level": level, "step": None, **_pooled(got, intervals)})
    note = ""
    if short:
        note = (
            f"the baseline lacks some of steps 1..{steps} at {', '.join(short)} (its horizon "
            f"is {record.get('horizon')}); expectations use the steps it has"
        )
    schema = {"level": pl.String, "step": pl.Int32, "expected_wape": pl.Float64}
    schema |= {f"expected_coverage_{p}": pl.Float64 for p in intervals}
    return pl.DataFrame(rows, schema=schema), note


def _pooled(got: list[dict[str, Any]], intervals: list[int]) -> dict[str, Any]:
    """Pooled WAPE and point-weighted coverage over the backtest's steps `got`."""
    actual = sum(r.get("sum_actual") or 0.0 for r in got)
    abs_err = sum(r.get("sum_abs_error") or 0.0 for r in got)
    points = sum(r.get("points") or 0 for r in got)
    out: dict[str, Any] = {"expected_wape": abs_err / actual if actual else None}
    for p in intervals:
        cov = [(r.get(f"coverage_{p}"), r.get("points") or 0) for r in got]
        known = [(c, n) for c, n in cov if c is not None]
        out[f"expected_coverage_{p}"] = (
            sum(c * n for c, n in known) / points if points and len(known) == len(cov) else None
        )
    return out
