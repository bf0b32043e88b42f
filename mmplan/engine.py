"""Where mmplan's heavy work runs: this machine, or a Dask cluster.

Two kinds of work fan out, and both are independent item by item, so the same code gives
the same numbers wherever it runs:

- model fitting: statsforecast fits every series on its own, so a model's series can be cut
  into chunks, fitted anywhere and concatenated;
- optimizing: every date is its own MIP (mmplan.plan).

`LocalEngine` is the default and today's behaviour: statsforecast spreads a model's series
over `[forecast].n_jobs` processes, and optimize solves dates on `[optimize].workers`
threads. `DaskEngine` works on a running Dask cluster through `distributed.Client`: chunks
of at most `[engine].series_per_task` series (each fitted by statsforecast with n_jobs=1
on a worker thread) and whole dates are sent to the workers, and the results are gathered
in submission order. Reconciliation, scoring and writing stay on the client: they need all
series at once and cost little next to fitting.

Why Dask directly and not statsforecast's own distributed path (`FugueBackend`, used when
`StatsForecast.forecast` is given a Dask DataFrame): it does support fitted values,
exogenous `X_df` and `level`, but its output schema declares every forecast, interval and
fitted column as float32, so a distributed forecast would differ from the local one in
the eighth digit, and the in-sample residuals that MinTrace's variances are estimated from
would lose precision too. It also partitions by series (one task per series) and pulls in
fugue and dask.dataframe. Sending chunks to `client.map`-style tasks keeps float64 results
that equal the local run's bit for bit, with one task per hundred series.

`open_engine(config.engine)` is a context manager that connects (or not, for local) and
closes. A scheduler that cannot be reached, has no workers or runs other versions is
`EngineUnavailableError` (exit 75: try again later). A task whose worker dies is rerun on
another by Dask; one that has killed four workers (KilledWorker) is exit 75 too.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mmplan.config import EngineConfig
from mmplan.errors import ConfigError, EngineUnavailableError

__all__ = ["Engine", "LocalEngine", "DaskEngine", "open_engine", "connect"]

# done(i): item i of a map has its result (items may finish in any order).
Done = Callable[[int], None]


class Engine:
    """Runs independent tasks and returns their results in the order they were given."""

    kind = "local"
    distributed = False

    @property
    def slots(self) -> int:
        """How many tasks run at once."""
        return 1

    def chunk_size(self, n_items: int) -> int:
        """How many series one task fits."""
        return max(n_items, 1)

    def jobs_per_task(self, n_jobs: int) -> int:
        """statsforecast's n_jobs inside one task, given [forecast].n_jobs."""
        return n_jobs

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], done: Done | None = None
    ) -> list[Any]:
        """[fn(item) for item in items], calling `done(i)` as item i finishes."""
        raise NotImplementedError


class LocalEngine(Engine):
    """This machine: one task per model, parallel inside it (statsforecast's n_jobs)."""

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], done: Done | None = None
    ) -> list[Any]:
        results = []
        for i, item in enumerate(items):
            results.append(fn(item))
            if done is not None:
                done(i)
        return results


class DaskEngine(Engine):
    """A Dask cluster behind a connected `distributed.Client`."""

    kind = "dask"
    distributed = True

    def __init__(self, client: Any, series_per_task: int = 100) -> None:
        self.client = client
        self.series_per_task = series_per_task

    @property
    def slots(self) -> int:
        # Asked each time: workers may join or leave between stages.
        return max(sum(self.client.nthreads().values()), 1)

    def chunk_size(self, n_items: int) -> int:
        # Small enough that every worker thread gets a chunk, never above series_per_task.
        return max(1, min(self.series_per_task, math.ceil(n_items / self.slots)))

    def jobs_per_task(self, n_jobs: int) -> int:
        # A worker thread is the unit of parallelism; processes inside a task would fight it.
        return 1

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], done: Done | None = None
    ) -> list[Any]:
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        results: list[Any] = [None] * len(items)
        pending: dict[Any, int] = {}
        # At most two tasks per worker thread in flight: the client never holds every
        # chunk's data on the cluster at once, and a slow task does not stall the rest.
        window = 2 * self.slots
        upcoming = iter(enumerate(items))

        def submit(i: int, item: Any) -> Any:
            # The item rides in the task rather than being scattered to one worker first:
            # if a worker dies, the scheduler reruns its tasks elsewhere instead of losing
            # their only copy of the data. (A default chunk, 100 series x 2 years, is a few
            # MB, below Dask's large-graph warning.)
            future = self.client.submit(fn, item, pure=False)
            pending[future] = i
            return future

        running = as_completed(
            [submit(i, item) for i, item in _take(upcoming, window)], loop=self.client.loop
        )
        try:
            for future in running:
                i = pending.pop(future)
                results[i] = future.result()  # re-raises the task's own exception
                future.release()
                if done is not None:
                    done(i)
                for j, item in _take(upcoming, 1):
                    running.add(submit(j, item))
        except (KilledWorker, CommClosedError, FutureCancelledError) as exc:
            raise EngineUnavailableError(
                f"the Dask cluster at {self.client.scheduler.address} failed mid-run "
                f"({type(exc).__name__}: {exc}); no output was written. Check the workers "
                "(memory, logs) and try again later."
            ) from None
        finally:
            if pending:
                self.client.cancel(list(pending))
        return results


def _take(iterator: Iterator[Any], n: int) -> list[Any]:
    out = []
    for _ in range(n):
        item = next(iterator, None)
        if item is None:
            break
        out.append(item)
    return out


def _worker_versions() -> dict[str, str]:
    """What a worker runs; results are only equal to a local run's on the same versions."""
    from importlib.metadata import version

    import mmplan

    return {"mmplan": mmplan.__version__} | {
        name: version(name) for name in ("statsforecast", "ortools", "numpy")
    }


def connect(address: str, timeout: float = 10.0) -> Any:
    """A `distributed.Client` on `address` with at least one worker running our versions."""
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EngineUnavailableError(
            f"cannot reach the Dask scheduler at {address} ({exc}). Check that it runs "
            "(`dask scheduler`) and that [engine].scheduler or --scheduler names it, then "
            "try again later."
        ) from None
    except ValueError as exc:
        raise ConfigError(
            f"{address!r} is not a Dask scheduler address ({exc}); use host:port or "
            "tcp://host:port as `dask scheduler` prints it."
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise EngineUnavailableError(
                f"the Dask scheduler at {address} has no workers (waited {timeout:g} s). "
                f"Start some with `dask worker {address}`, then try again later."
            ) from None
        mine = _worker_versions()
        try:
            theirs = client.run(_worker_versions)
        except Exception as exc:
            raise EngineUnavailableError(
                f"the Dask workers at {address} cannot run mmplan ({type(exc).__name__}: "
                f"{exc}). Start them from the environment mmplan is installed in "
                "(`.venv/bin/dask worker ...`), then try again."
            ) from None
        odd = {worker: v for worker, v in theirs.items() if v != mine}
        if odd:
            worker, versions = next(iter(odd.items()))
            raise EngineUnavailableError(
                f"{len(odd)} Dask worker(s) at {address} run other versions than this client "
                f"(e.g. {worker}: {versions}; here: {mine}), so results could differ from a "
                "local run. Start the workers from the same environment, then try again."
            )
    except BaseException:
        client.close()
        raise
    return client


@contextlib.contextmanager
def open_engine(config: EngineConfig | None = None) -> Iterator[Engine]:
    """The engine `[engine]` describes, connected for the duration of the block."""
    config = config or EngineConfig()
    if config.kind == "local":
        yield LocalEngine()
        return
    if config.scheduler is None:  # EngineConfig refuses this; a hand-built one may not
        raise ConfigError("[engine] kind = 'dask' needs [engine].scheduler (host:port).")
    client = connect(config.scheduler, config.connect_timeout)
    try:
        yield DaskEngine(client, config.series_per_task)
    finally:
        client.close()
