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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from mmplan.config import OptimizeConfig
from mmplan.errors import MmplanError
from mmplan.logs import checkpoint
from mmplan.plan.demand import Day
from mmplan.plan.network import Network
from mmplan.plan.solve import DateOutcome, solve_date
from mmplan.plan.threads import map_on_threads

if TYPE_CHECKING:
    from mmplan.engine import Engine

Progress = Callable[[int, int, str], None]


class Failed(NamedTuple):
    """A date whose solve raised a user-facing error (kept, with `catch`, so that one
    scenario that cannot be planned does not stop the others)."""

    date: Any
    message: str


def _solve_task(
    task: tuple[Day, Network], penalty: float, config: OptimizeConfig, limit: float, catch: bool
) -> DateOutcome | Failed:
    day, net = task
    try:
        return solve_date(day, net, penalty, config, limit)
    except MmplanError as exc:
        if not catch:
            raise
        return Failed(day.date, exc.message)


def solve_dates(
    net: Network | Sequence[Network],
    days: list[Day],
    penalty: float,
    config: OptimizeConfig,
    started: float,
    progress: Progress | None,
    engine: Engine | None,
    *,
    catch: bool = False,
) -> list[Any]:
    """Each date's outcome, in order: on `workers` threads here, or on a Dask engine.

    `net` is the network of every date, or one network per date (a scenario's changes).
    With `catch`, a date whose solve fails gives a `Failed` in its place instead of
    stopping the run."""
    nets = [net] * len(days) if isinstance(net, Network) else list(net)
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
        solve = functools.partial(
            _solve_task, penalty=penalty, config=config, limit=limit, catch=catch
        )
        return engine.map(solve, list(zip(days, nets, strict=True)), finished)
    workers = max(1, min(config.workers, len(days)))
    waiting = [len(days)]

    def run(i: int) -> DateOutcome | Failed:
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
        outcome = _solve_task((days[i], nets[i]), penalty, config, limit, catch)
        if not isinstance(outcome, Failed):
            outcome.day.started = now - started
        finished(i)
        return outcome

    return map_on_threads(run, len(days), workers)
