"""Solving threads that Ctrl-C stops: each run's stop event, its solves in flight, and a map
over indices on daemon threads.

Ctrl-C must stop the whole run. SCIP and CP-SAT would catch SIGINT themselves and end only
the solve at hand, and the run would go on to write a plan; so they are told not to
(`NO_SIGINT`), the solves run on daemon threads (the main thread gets the KeyboardInterrupt,
and a SCIP solve, which OR-Tools cannot interrupt, does not hold up the exit), the run's
solves that can be interrupted are, and the run starts no new ones. Each run has its own stop
event (the solving threads carry it in `LOCAL`), so an interrupted run in a notebook leaves
nothing behind that stops the next one.

A solve left running after a Ctrl-C must not be alive while the interpreter finalizes: its
thread is torn down inside native code ("terminate called without an active exception",
SIGABRT). So the interrupted runs' threads are kept (`abandoned`): the CLI exits without
finalizing while any is alive (mmplan.cli.app), and at interpreter exit (a notebook, pytest)
they are joined first; each ends within its date's time share.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mmplan.logs import checkpoint

T = TypeVar("T")

_ACTIVE: dict[threading.Event | None, set[Any]] = {}  # solves in flight, per run
_ACTIVE_LOCK = threading.Lock()
LOCAL = threading.local()
NO_SIGINT = {"SCIP": "misc/catchctrlc = FALSE\n", "CP-SAT": "catch_sigint_signal:false "}


_ABANDONED: list[threading.Thread] = []  # solving threads of interrupted runs


def abandoned() -> bool:
    """Is a solving thread of an interrupted run still running (native code at work)?"""
    return any(thread.is_alive() for thread in _ABANDONED)


@atexit.register
def _join_abandoned() -> None:
    # atexit runs before the interpreter tears daemon threads down: let their solves end.
    for thread in _ABANDONED:
        thread.join()


class Stopped(Exception):
    """Raised in a solving thread once its run is being interrupted."""


def _interrupt_solves(stop: threading.Event) -> None:
    with _ACTIVE_LOCK:
        stop.set()
        for solver in _ACTIVE.get(stop, ()):
            solver.interrupt_solve()


@contextmanager
def in_flight(solver: Any) -> Iterator[None]:
    """Register an OR-Tools solver as running for this thread's run, so that a Ctrl-C can
    interrupt it; raises Stopped when the run is already being interrupted."""
    stop = getattr(LOCAL, "stop", None)  # None outside map_on_threads (a Dask worker)
    with _ACTIVE_LOCK:
        if stop is not None and stop.is_set():
            raise Stopped
        _ACTIVE.setdefault(stop, set()).add(solver)
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.get(stop, set()).discard(solver)


def map_on_threads(fn: Callable[[int], T], n: int, workers: int) -> list[T]:
    """[fn(0), ..., fn(n - 1)] on `workers` daemon threads, even for one worker: the main
    thread only waits, so a Ctrl-C reaches it at once. The first failing index's error is
    raised once the threads are done; no new index starts after a failure or a Ctrl-C."""
    stop = threading.Event()
    results: list[Any] = [None] * n
    errors: dict[int, BaseException] = {}
    todo = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        LOCAL.stop = stop
        while True:
            with lock:
                i = None if errors or stop.is_set() else next(todo, None)
            if i is None:
                return
            try:
                results[i] = fn(i)
            except BaseException as exc:  # handed to the main thread below
                with lock:
                    errors[i] = exc

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(workers, 1))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            # In short waits: a SIGINT delivered to a solving thread wakes no one, and
            # the main thread sees it only when it next runs Python code.
            while thread.is_alive():
                thread.join(0.1)
                if _ACTIVE.get(stop):  # a solve is in flight: where a Ctrl-C test stops us
                    checkpoint("optimize.solving")
    except BaseException:  # Ctrl-C: stop what can be stopped, and keep track of the rest
        _interrupt_solves(stop)
        _ABANDONED[:] = [t for t in _ABANDONED + threads if t.is_alive()]
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.pop(stop, None)
    if errors:
        raise errors[min(errors)]
    return results
