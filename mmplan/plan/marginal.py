"""The marginal value of a fleet budget: the cost one more truck a day would save.

Measured, not read from duals: every date on which a budget binds (the plan uses all of it)
is re-solved with that budget one truck higher (mmplan.plan.fleet.plus_one), and the saving
is the date's plan cost less the re-solved one, clipped at zero (the plan is feasible with
one more truck, so a negative difference is only the MIP's gap). The re-solves are a second
batch after the plan, with `time_limit` scaled by their share of the plan's dates, so a run
with a binding budget takes up to that much longer. The LP with trucks fixed is not used:
its duals price the capacity of trucks already there, not a whole truck more.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mmplan.config import OptimizeConfig
from mmplan.plan.assemble import Plan
from mmplan.plan.demand import Day
from mmplan.plan.fleet import binding_budgets, plus_one
from mmplan.plan.network import Network
from mmplan.plan.parallel import Failed, solve_dates

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = ["add_marginal_values", "METHOD_NOTE"]

METHOD_NOTE = "re-solved the dates it binds on with one more truck a day"


def add_marginal_values(
    plan: Plan,
    net: Network,
    days: list[Day],
    penalty: float,
    config: OptimizeConfig,
    engine: Engine | None,
) -> None:
    """Set plan.summary["fleet"]["marginal_value"]: per binding budget, the saving per date
    and in all of one more truck a day (nothing when no budget binds or with --relax)."""
    fleet = plan.summary.setdefault("fleet", {})
    if not config.fleet.marginal_value or config.relax:
        return
    binding = binding_budgets(net, plan.trucks)
    by_date = {str(d.date): d for d in days}
    tasks = [(b, by_date[str(d)]) for b, dates in binding.items() for d in dates]
    if not tasks:
        fleet["marginal_value"] = {}
        return
    share = max(config.time_limit * len(tasks) / max(len(days), 1), 1.0)
    cfg = config.model_copy(update={"time_limit": share})
    outs = solve_dates(
        [plus_one(net, b) for b, _ in tasks],
        [d for _, d in tasks],
        penalty,
        cfg,
        time.perf_counter(),
        None,
        engine,
        catch=True,
    )
    values: dict[str, Any] = {}
    for (budget, day), out in zip(tasks, outs, strict=True):
        entry = values.setdefault(
            budget, {"saved": 0.0, "per_date": {}, "method": METHOD_NOTE, "failed_dates": []}
        )
        date = str(day.date)
        if isinstance(out, Failed):
            entry["failed_dates"].append(date)
            continue
        before = float(plan.summary["per_date"][date]["objective"])
        saved = max(before - out.day.objective, 0.0)
        entry["per_date"][date] = saved
        entry["saved"] += saved
    fleet["marginal_value"] = values
