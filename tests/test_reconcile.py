"""Sparse reconciliation (mmplan.forecasting.mint) against hierarchicalforecast and dense numpy."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from hierarchicalforecast.methods import MinTrace
from hierarchicalforecast.utils import (
    _shrunk_covariance_schaferstrimmer_no_nans,
    _shrunk_covariance_schaferstrimmer_with_nans,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mmplan.errors import EXIT_CONFIG, ConfigError
from mmplan.forecasting import build_hierarchy
from mmplan.forecasting import mint as rc

HF_METHODS = ("ols", "wls_struct", "wls_var", "mint_shrink")


def make_case(seed: int, n_lanes: int, grouped: bool, nan_days: int, T: int = 40, H: int = 3):
    """A random hierarchy built by mmplan, with residuals that share hierarchical structure."""
    rng = np.random.default_rng(seed)
    n_origins = int(rng.integers(1, max(2, n_lanes // 2) + 1))
    origin = rng.integers(0, n_origins, n_lanes)
    lanes = pl.DataFrame(
        {
            "origin": [f"O{o}" for o in origin],
            "destination": [f"D{i:02d}" for i in range(n_lanes)],
            "origin_region": [f"R{o % 2}" for o in origin],
            "destination_region": [f"Q{int(q)}" for q in rng.integers(0, 2, n_lanes)],
        }
    )
    levels = [("total", []), ("origin_region", ["origin_region"]), ("origin", ["origin"])]
    if grouped:
        levels.append(("destination_region", ["destination_region"]))
    levels.append(("lane", ["origin", "destination"]))
    hier = build_hierarchy(lanes, levels)
    S = hier.S
    n = S.shape[0]
    lane_errors = rng.normal(size=(n_lanes, T)) * rng.uniform(0.5, 20, n_lanes)[:, None]
    residuals = (
        np.asarray(S @ lane_errors) + rng.normal(size=(n, T)) * rng.uniform(0.1, 5, n)[:, None]
    )
    if nan_days:
        # The first season of a seasonal naive, and a lane that started later.
        residuals[hier.bottom_rows, :nan_days] = np.nan
        residuals[hier.bottom_rows[0], : nan_days * 2] = np.nan
    y_hat = rng.uniform(10, 500, size=(n, H))
    sigma = rng.uniform(0.5, 30, size=(n, H))
    level_index = {name: k for k, (name, _) in enumerate(hier.levels)}
    level_of_row = np.array([level_index[v] for v in hier.series["level"]])
    return hier, residuals, y_hat, sigma, level_of_row


def hf_mean(S: np.ndarray, y_hat: np.ndarray, residuals: np.ndarray, method: str) -> np.ndarray:
    # hierarchicalforecast takes values and fitted values; their difference is the residual.
    fitted = np.zeros_like(residuals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = MinTrace(method=method).fit_predict(
            S=S, y_hat=y_hat, y_insample=residuals, y_hat_insample=fitted
        )
    return out["mean"]


def dense_reference(S, bottom_rows, W, y_hat, sigma):
    """Brute force: M = I - W C' (C W C')^-1 C, mean M y^, var diag(M W M') / W_ii * sigma^2."""
    S = S.toarray()
    n = S.shape[0]
    agg = np.setdiff1d(np.arange(n), bottom_rows)
    C = np.zeros((agg.size, n))
    C[np.arange(agg.size), agg] = 1.0
    C[:, bottom_rows] = -S[agg]
    W = W.toarray() if hasattr(W, "toarray") else W
    M = np.eye(n) - W @ C.T @ np.linalg.inv(C @ W @ C.T) @ C
    ratio = np.diag(M @ W @ M.T) / np.diag(W)
    # The same mean in GLS form: S (S' W^-1 S)^-1 S' W^-1 y^.
    Wi = np.linalg.inv(W)
    gls = S @ np.linalg.solve(S.T @ Wi @ S, S.T @ Wi @ y_hat)
    return M @ y_hat, gls, ratio[:, None] * sigma**2


cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 10_000),
        "n_lanes": st.integers(2, 12),
        "grouped": st.booleans(),
        "nan_days": st.sampled_from([0, 0, 7]),
    }
)


@settings(max_examples=25, deadline=None)
@given(case=cases, method=st.sampled_from(HF_METHODS))
def test_means_equal_hierarchicalforecast(case, method):
    hier, residuals, y_hat, _, _ = make_case(**case)
    a = hier.S.shape[0] - hier.S.shape[1]
    assert (hier.bottom_rows == np.arange(a, hier.S.shape[0])).all()  # hf's layout
    expected = hf_mean(hier.S.toarray(), y_hat, residuals, method)
    got = rc.reconcile(
        hier.S, hier.bottom_rows, y_hat, f"MinTrace({method})", residuals=residuals
    ).mean
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(case=cases, method=st.sampled_from([*HF_METHODS, "block_shrink"]))
def test_intervals_equal_dense_brute_force(case, method):
    hier, residuals, y_hat, sigma, level_of_row = make_case(**case)
    name = f"MinTrace({method})"
    got = rc.reconcile(
        hier.S,
        hier.bottom_rows,
        y_hat,
        name,
        residuals=residuals,
        sigma=sigma,
        level_of_row=level_of_row,
    )
    W = rc.weights(hier.S, hier.bottom_rows, name, residuals=residuals, level_of_row=level_of_row)
    mean, gls, var = dense_reference(hier.S, hier.bottom_rows, W, y_hat, sigma)
    np.testing.assert_allclose(got.mean, mean, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(got.mean, gls, rtol=1e-6, atol=1e-6)
    assert (got.var >= 0).all() and np.isfinite(got.var).all()
    np.testing.assert_allclose(got.var, var, rtol=1e-7, atol=1e-9)
    # Coherent: every series is the sum of its lanes.
    np.testing.assert_allclose(got.mean, hier.S @ got.mean[hier.bottom_rows], rtol=1e-9, atol=1e-7)


@settings(max_examples=15, deadline=None)
@given(case=cases)
def test_bottom_up_sums_lanes_and_their_variances(case):
    hier, _, y_hat, sigma, _ = make_case(**case)
    got = rc.reconcile(hier.S, hier.bottom_rows, y_hat, "BottomUp", sigma=sigma)
    np.testing.assert_allclose(got.mean, hier.S @ y_hat[hier.bottom_rows])
    np.testing.assert_allclose(got.var, hier.S @ sigma[hier.bottom_rows] ** 2)
    np.testing.assert_array_equal(got.mean[hier.bottom_rows], y_hat[hier.bottom_rows])


@settings(max_examples=20, deadline=None)
@given(case=cases)
def test_block_shrink_is_coherent_and_shrinks_within_sibling_blocks(case):
    hier, residuals, y_hat, sigma, level_of_row = make_case(**case)
    name = "MinTrace(block_shrink)"
    got = rc.reconcile(
        hier.S,
        hier.bottom_rows,
        y_hat,
        name,
        residuals=residuals,
        sigma=sigma,
        level_of_row=level_of_row,
    )
    np.testing.assert_allclose(got.mean, hier.S @ got.mean[hier.bottom_rows], rtol=1e-9)
    W = rc.weights(hier.S, hier.bottom_rows, name, residuals=residuals, level_of_row=level_of_row)
    blocks = rc.sibling_blocks(hier.S, hier.bottom_rows, level_of_row)
    assert np.array_equal(np.sort(np.concatenate(blocks)), np.arange(hier.S.shape[0]))
    inside = np.zeros(W.shape, dtype=bool)
    for block in blocks:
        inside[np.ix_(block, block)] = True
        # Inside a block, W is hierarchicalforecast's mint_shrink estimator on its rows.
        r = residuals[block]
        nan = np.isnan(r)
        expected = (
            _shrunk_covariance_schaferstrimmer_with_nans(r, ~nan, rc.RIDGE)
            if nan.any()
            else _shrunk_covariance_schaferstrimmer_no_nans(r, rc.RIDGE)
        )
        np.testing.assert_allclose(W[np.ix_(block, block)].toarray(), expected, rtol=1e-9)
    assert not W.toarray()[~inside].any()


def test_sibling_blocks_follow_the_parent_one_level_up():
    hier, residuals, _, _, level_of_row = make_case(seed=1, n_lanes=12, grouped=True, nan_days=0)
    ids = hier.series["unique_id"].to_list()
    blocks = [
        sorted(ids[i] for i in b) for b in rc.sibling_blocks(hier.S, hier.bottom_rows, level_of_row)
    ]
    lanes = hier.lanes
    # Lanes are siblings when they share the level above them (destination_region here).
    for q in lanes["destination_region"].unique():
        group = lanes.filter(pl.col("destination_region") == q)
        expected = sorted(f"lane:{o}/{d}" for o, d in group.select("origin", "destination").rows())
        assert expected in blocks
    # destination_region crosses origin: no unique parent, so each is its own block.
    for q in lanes["destination_region"].unique():
        assert [f"destination_region:{q}"] in blocks
    assert ["total"] in blocks
    # Origins sharing a region are siblings.
    for r in lanes["origin_region"].unique():
        expected = sorted(
            f"origin:{o}" for o in lanes.filter(pl.col("origin_region") == r)["origin"].unique()
        )
        assert expected in blocks


def test_sparse_factorisation_chunks_and_cut_blocks_agree_with_dense(monkeypatch):
    hier, residuals, y_hat, sigma, level_of_row = make_case(
        seed=5, n_lanes=30, grouped=True, nan_days=7
    )
    kwargs = dict(residuals=residuals, sigma=sigma, level_of_row=level_of_row)
    for method in ("MinTrace(wls_var)", "MinTrace(mint_shrink)", "MinTrace(block_shrink)"):
        dense = rc.reconcile(hier.S, hier.bottom_rows, y_hat, method, **kwargs)
        with monkeypatch.context() as patch:
            patch.setattr(rc, "DENSE_FACTOR_MAX", 0)  # sparse LU path
            patch.setattr(rc, "CHUNK_BYTES", 8 * 10)  # a few columns per chunk
            patch.setattr(rc, "COMPRESS_MAX", 0)  # variances column by column, uncompressed
            sparse_ = rc.reconcile(hier.S, hier.bottom_rows, y_hat, method, **kwargs)
        np.testing.assert_allclose(sparse_.mean, dense.mean, rtol=1e-9)
        np.testing.assert_allclose(sparse_.var, dense.var, rtol=1e-7, atol=1e-9)
    with monkeypatch.context() as patch:
        patch.setattr(rc, "MAX_BLOCK", 3)
        blocks = rc.sibling_blocks(hier.S, hier.bottom_rows, level_of_row)
        assert max(len(b) for b in blocks) == 3
        cut = rc.reconcile(hier.S, hier.bottom_rows, y_hat, "MinTrace(block_shrink)", **kwargs)
    np.testing.assert_allclose(cut.mean, hier.S @ cut.mean[hier.bottom_rows], rtol=1e-9)


@pytest.mark.parametrize("method", [f"MinTrace({m})" for m in (*HF_METHODS, "block_shrink")])
def test_constant_and_residual_free_series_give_finite_results(method):
    hier, residuals, y_hat, sigma, level_of_row = make_case(
        seed=2, n_lanes=8, grouped=False, nan_days=7
    )
    residuals[hier.bottom_rows[1]] = 0.0  # a constant lane fitted perfectly
    residuals[hier.bottom_rows[2]] = np.nan  # a lane with no residual at all
    residuals[hier.bottom_rows[3], -1] = 5.0  # and one with a single one
    residuals[hier.bottom_rows[3], :-1] = np.nan
    sigma[hier.bottom_rows[1]] = 0.0
    got = rc.reconcile(
        hier.S,
        hier.bottom_rows,
        y_hat,
        method,
        residuals=residuals,
        sigma=sigma,
        level_of_row=level_of_row,
    )
    assert np.isfinite(got.mean).all() and np.isfinite(got.var).all()
    assert (got.var >= 0).all()
    np.testing.assert_allclose(got.mean, hier.S @ got.mean[hier.bottom_rows], rtol=1e-9)


def test_mint_shrink_refuses_a_dense_covariance_too_big_for_memory(monkeypatch):
    hier, residuals, y_hat, _, _ = make_case(seed=0, n_lanes=10, grouped=False, nan_days=0)
    monkeypatch.setattr(rc, "MINT_SHRINK_MAX_SERIES", 5)
    with pytest.raises(ConfigError) as err:
        rc.reconcile(hier.S, hier.bottom_rows, y_hat, "MinTrace(mint_shrink)", residuals=residuals)
    assert err.value.exit_code == EXIT_CONFIG
    message = str(err.value)
    assert f"{hier.S.shape[0]:,} open series" in message
    assert "MinTrace(block_shrink)" in message and "[forecast].reconciliation" in message


@pytest.mark.parametrize("pattern", ["none", "common prefix", "ragged", "one day"])
def test_shrunk_covariance_equals_hierarchicalforecast_for_each_nan_pattern(pattern):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(25, 60)) * rng.uniform(0.5, 50, 25)[:, None] + rng.normal(size=60) * 9
    if pattern == "common prefix":  # a model's first season: the fast full-overlap path
        x[:, :7] = np.nan
    elif pattern == "ragged":  # series that start on different days
        for i in range(25):
            x[i, : rng.integers(0, 30)] = np.nan
    elif pattern == "one day":  # a series with a single residual shares at most one day
        x[3, :-1] = np.nan
    nan = np.isnan(x)
    expected = (
        _shrunk_covariance_schaferstrimmer_with_nans(x, ~nan, rc.RIDGE)
        if nan.any()
        else _shrunk_covariance_schaferstrimmer_no_nans(x, rc.RIDGE)
    )
    np.testing.assert_allclose(rc.shrunk_covariance(x), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "method", ["MinTrace(wls_var)", "MinTrace(mint_shrink)", "MinTrace(block_shrink)"]
)
def test_no_residuals_at_all_still_reconciles(method):
    # Every series too young for its model's first season: no in-sample residual anywhere.
    hier, _, y_hat, sigma, level_of_row = make_case(seed=3, n_lanes=6, grouped=False, nan_days=0)
    n = hier.S.shape[0]
    for residuals in (np.empty((n, 0)), np.full((n, 5), np.nan)):
        got = rc.reconcile(
            hier.S,
            hier.bottom_rows,
            y_hat,
            method,
            residuals=residuals,
            sigma=sigma,
            level_of_row=level_of_row,
        )
        assert np.isfinite(got.mean).all() and np.isfinite(got.var).all()
        np.testing.assert_allclose(got.mean, hier.S @ got.mean[hier.bottom_rows], rtol=1e-9)
