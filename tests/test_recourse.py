"""The recourse LP of mmplan simulate: warm re-solves give the LP's optimum, wherever run."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_optimize import lanes, nodes

from mmplan.config import OptimizeConfig, SimulateConfig
from mmplan.plan import recourse
from mmplan.plan.network import index_network
from mmplan.plan.recourse import RecourseTask, build_recourse, solve_dates, solve_recourse

NODES = nodes(
    ("F1", "FC", None, 0.0, None, None),
    ("F2", "FC", None, 0.0, None, None),
    ("S1", "SC", None, 0.1, None, None),
    ("S2", "SC", 150.0, 0.2, None, None),
    ("D1", "DS", None, 0.0, None, None),
    ("D2", "DS", None, 0.0, None, None),
)
LANES = lanes(
    ("F1", "S1", 100, 50, 0.01, None),
    ("F2", "S2", 100, 50, 0.01, None),
    ("S1", "S2", 100, 30, 0.5, None),
    ("S2", "S1", 100, 30, 0.5, None),
    ("S1", "D1", 100, 40, 0.01, None),
    ("S2", "D2", 100, 40, 0.01, None),
    ("F1", "D1", 100, 80, 0.0, None),
)
TRUCKS = np.array([2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 0.0])  # the plan's, per lane
OPT = OptimizeConfig()
# Pairs F1->D1, F1->D2, F2->D2, F2->D1 (by facility index).
PO, PT = np.array([0, 0, 1, 1]), np.array([4, 5, 5, 4])


def _task(q: np.ndarray, spot: float | None = None) -> RecourseTask:
    net = index_network(NODES, LANES, OPT)
    cfg = SimulateConfig(spot_premium=spot)
    return RecourseTask(net, PO, PT, q.max(axis=0), TRUCKS, np.zeros(net.n), cfg, q)


def _lp(q: np.ndarray, spot: float | None = None) -> recourse.RecourseLP:
    t = _task(q, spot)
    return build_recourse(t.net, t.po, t.pt, t.q_env, t.trucks, t.added, t.config)


volumes = st.lists(
    st.lists(st.floats(0, 300, allow_nan=False), min_size=4, max_size=4), min_size=2, max_size=6
)


@settings(max_examples=25)
@given(volumes, st.sampled_from([None, 3.0]))
def test_warm_resolves_equal_a_cold_solve_of_each_sample(rows, spot):
    q = np.array(rows)
    lp = _lp(q, spot)
    warm = solve_recourse(lp, q)
    # A solver's first solve starts from scratch: each sample alone on a fresh one.
    cold = [solve_recourse(lp, q[i : i + 1]) for i in range(len(q))]
    np.testing.assert_allclose(warm.cost, [c.cost[0] for c in cold], rtol=1e-9, atol=1e-6)
    assert np.all(warm.unserved >= 0) and np.all(warm.unserved <= q + 1e-9)
    served = q - warm.unserved
    # Capacity holds: what reaches D2 fits on S2 -> D2's two trucks, what leaves F2 on its
    # two, what passes S2 within its 150 (plus spot trucks when they can be hired).
    if spot is None:
        assert np.all(served[:, [1, 2]].sum(axis=1) <= 200 + 1e-6)
        assert np.all(served[:, [2, 3]].sum(axis=1) <= 200 + 1e-6)
        assert np.all(warm.spot_trucks == 0)
    # S2 handles what F2 sends and what reaches D2: its capacity binds with or without spot.
    assert np.all(served[:, [1, 2]].sum(axis=1) <= 150 + 1e-6)


def test_worker_processes_give_the_same_answers(monkeypatch):
    rng = np.random.default_rng(4)
    tasks = []
    for _ in range(3):
        q = rng.uniform(0, 250, size=(5, 4))
        tasks.append(_task(q))
    here = solve_dates(tasks, workers=1)
    monkeypatch.setattr(recourse, "PROCESS_MIN_LPS", 0)  # so that 15 LPs go to processes
    ended: list[int] = []
    there = solve_dates(tasks, workers=2, done=lambda k, i: ended.append(i))
    assert sorted(ended) == [0, 1, 2]
    for a, b in zip(here, there, strict=True):
        assert np.array_equal(a.cost, b.cost) and np.array_equal(a.unserved, b.unserved)
