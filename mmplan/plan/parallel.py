"""The dates of a run solved in parallel: on `workers` threads here, or on a Dask engine.

Dates share no variables, so each is solved on its own; a date's time share is what is left
of the run's budget divided among the dates its worker has not yet started, so dates that
finish early give their time to the rest. A date's share is never more than what is left,
so the last date's deadline is the run's: `time_limit` bounds the whole run (a date that
gets too little to reach `relative_gap` is reported, not given more).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mmplan.config import OptimizeConfig
from mmplan.logs import checkpoint
from mmplan.plan.demand import Day
from mmplan.plan.network import Network
from mmplan.plan.solve import DateOutcome, solve_date
from mmplan.plan.threads import map_on_threads

if TYPE_CHECKING:
    from mmplan.engine import Engine

Progress = Callable[[int, int, str], None]


def solve_dates(
    net: Network,
    days: list[Day],
    penalty: float,
    config: OptimizeConfig,
    started: float,
    progress: Progress | None,
    engine: Engine | None,
) -> list[DateOutcome]:
    """Each date's outcome, in order: on `workers` threads here, or on a Dask engine."""
    # Leave a little of the budget for checking and assembling the plan.
    deadline = started + 0.95 * config.time_limit
    lock = threading.Lock()
    solved = [0]
    report: Progress = progress or (lambda done, total, label: None)
    report(0, len(days), f"solving {len(days)} dates")

    def finished(i: int) -> None:
        with lock:
            solved[0] += 1
            report(solved[0], len(days), f"solved {days[i][0]} ({solved[0]}/{len(days)} dates)")
            checkpoint("optimize.date-solved")

    if engine is not None and engine.distributed:
        # Dates go to the cluster's worker threads, a slot's dates one after another.
        # Worker processes share no clock to hand a finished date's time to the rest,
        # so each date gets its share of the budget up front.
        share = 1.0 / math.ceil(max(len(days), 1) / engine.slots)
        limit = max(deadline - time.perf_counter(), 0.0) * share
        solve = functools.partial(solve_date, net=net, penalty=penalty, config=config, limit=limit)
        outcomes: list[DateOutcome] = engine.map(solve, days, finished)
        return outcomes
    workers = max(1, min(config.workers, len(days)))
    waiting = [len(days)]

    def run(i: int) -> DateOutcome:
        # A date's share of what is left: days that finish early give time to the rest.
        with lock:
            left_days = waiting[0]
            waiting[0] -= 1
        # This worker still has ceil(left / workers) dates to do, this one included.
        # No floor: a date's deadline never falls after the run's.
        now = time.perf_counter()
        share = 1.0 / math.ceil(max(left_days, 1) / workers)
        limit = max(deadline - now, 0.0) * share
        checkpoint("optimize.date-started")
        outcome = solve_date(days[i], net, penalty, config, limit)
        outcome.day.started = now - started
        finished(i)
        return outcome

    return map_on_threads(run, len(days), workers)
