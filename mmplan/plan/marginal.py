"""The marginal value of a fleet budget: the cost one more truck a day would save.

Measured, not read from duals: every date on which a budget binds (the plan uses all of it)
is re-solved with that budget one truck higher (mmplan.plan.fleet.plus_one), and the saving
is the date's plan cost less the re-solved one, clipped at zero (the plan is feasible with
one more truck, so a negative difference is only the MIP's gap). The LP with trucks fixed is
not used: its duals price the capacity of trucks already there, not a whole truck more.

The re-solves are part of the run, so `time_limit` bounds them too: when a budget is set,
the plan's dates are solved within `1 - RESERVE` of the limit (`plan_config`), and the
re-solves of every plan of the run (base, scenarios, demand columns) then share one batch
with what is left of it. With less than MIN_SECONDS left they are not run, and the summary
says so rather than report a saving no solve measured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from mmplan.config import OptimizeConfig
from mmplan.plan.assemble import Plan
from mmplan.plan.demand import Day
from mmplan.plan.fleet import binding_budgets, has_budget, plus_one
from mmplan.plan.network import Network
from mmplan.plan.parallel import Failed, solve_dates

if TYPE_CHECKING:
    from mmplan.engine import Engine

__all__ = ["METHOD_NOTE", "RESERVE", "Budgeted", "add_marginal_values", "plan_config"]

METHOD_NOTE = "re-solved the dates it binds on with one more truck a day"
SKIPPED_NOTE = "not measured: time_limit was spent on the plan; raise it to measure"
# A fifth of the limit: re-solves are at most one per binding date, and a date usually
# reaches its gap or work limits well before its share, so they mostly run on what the plan
# left over; the reserve is what they are sure of.
RESERVE = 0.2
MIN_SECONDS = 1.0


class Budgeted(NamedTuple):
    """One plan of the run whose fleet budgets may bind: its dates and each date's network
    (a scenario's differ by date: a facility down on some)."""

    plan: Plan
    nets: list[Network]
    days: list[Day]


def _wanted(config: OptimizeConfig, nets: Sequence[Network]) -> bool:
    return config.fleet.marginal_value and not config.relax and any(map(has_budget, nets))


def plan_config(config: OptimizeConfig, nets: Sequence[Network]) -> OptimizeConfig:
    """The config to solve the plan's dates with: `time_limit` less the re-solves'
    reserve when any of `nets` has a fleet budget whose marginal value is wanted."""
    if not _wanted(config, nets):
        return config
    return config.model_copy(update={"time_limit": config.time_limit * (1 - RESERVE)})


def add_marginal_values(
    plans: Sequence[Budgeted],
    penalty: float,
    config: OptimizeConfig,
    engine: Engine | None,
    started: float,
) -> None:
    """Set each plan's summary["fleet"]["marginal_value"]: per binding budget, the saving
    per date and in all of one more truck a day (nothing when no budget binds or with
    --relax). The re-solves end by `started + time_limit`, as the run does."""
    for b in plans:
        b.plan.summary.setdefault("fleet", {})
    if not _wanted(config, [n for b in plans for n in b.nets[:1]]):
        return
    tasks = []
    for b in plans:
        by_date = {str(d.date): (d, n) for d, n in zip(b.days, b.nets, strict=True)}
        binding = binding_budgets(b.nets[0], b.plan.trucks) if b.nets else {}
        tasks += [(b, name, *by_date[str(d)]) for name, dates in binding.items() for d in dates]
        b.plan.summary["fleet"]["marginal_value"] = {}
    if not tasks:
        return
    # solve_dates ends its batch by 95% of the limit from `started`: what is left of it.
    left = started + 0.95 * config.time_limit - time.perf_counter()
    if left < MIN_SECONDS:
        for b, name, _, _ in tasks:
            entry = _entry(b.plan, name, SKIPPED_NOTE)
            entry["saved"] = None
        return
    outs = solve_dates(
        [plus_one(net, name) for _, name, _, net in tasks],
        [day for _, _, day, _ in tasks],
        penalty,
        config,
        started,
        None,
        engine,
        catch=True,
    )
    for (b, name, day, _), out in zip(tasks, outs, strict=True):
        entry = _entry(b.plan, name, METHOD_NOTE)
        date = str(day.date)
        if isinstance(out, Failed):
            entry["failed_dates"].append(date)
            continue
        before = float(b.plan.summary["per_date"][date]["objective"])
        saved = max(before - out.day.objective, 0.0)
        entry["per_date"][date] = saved
        entry["saved"] += saved


def _entry(plan: Plan, budget: str, method: str) -> dict[str, Any]:
    values: dict[str, Any] = plan.summary["fleet"]["marginal_value"]
    return values.setdefault(
        budget, {"saved": 0.0, "per_date": {}, "method": method, "failed_dates": []}
    )
