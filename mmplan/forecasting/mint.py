"""Sparse forecast reconciliation: BottomUp and the MinTrace family at 100k lanes.

hierarchicalforecast's MinTrace works on a dense summing matrix and a dense n x n weight
matrix, so memory grows as n^2 and 100k lanes cannot run. This module reconciles on the
scipy CSR summing matrix that `mmplan.forecasting.hierarchy.Hierarchy` holds and never
forms an n x n dense matrix (except for `mint_shrink`, which is dense by definition and
refused above `MINT_SHRINK_MAX_SERIES`).

Math (projection form of MinTrace, Wickramasuriya, Athanasopoulos & Hyndman 2019). Split
the n series into a aggregates u and m bottom series b (lanes), S_u the aggregate rows of S.
Coherence is C y = 0 with the a x n constraint matrix C = [I_u, -S_u] (columns placed at the
series' rows). With W the base forecast errors' covariance (or a stand-in for it),

    A = C W C'                      (a x a: one row per aggregate, small and sparse)
    y~ = y^ - W C' A^{-1} C y^      (equals S (S' W^-1 S)^-1 S' W^-1 y^ exactly)

so W is never inverted. A is factorised once with a Cholesky (dense when a is small) or a
sparse LU with a symmetric fill-reducing ordering and no pivoting (SuperLU in scipy, an
LDL'-like factorisation of the SPD matrix); A is first scaled to unit diagonal. BLAS runs
on one thread: the products are small or thin, and threads that spin on a busy machine
made them up to 100x slower.

W per method (`RIDGE` = 2e-8 as in hierarchicalforecast):
- ols: I;  wls_struct: diag(S 1), the number of lanes under each series;
- wls_var: diag of the in-sample mean squared residual (NaN residuals count as missing but
  the mean divides by all observation days, as hierarchicalforecast does) + RIDGE;
- mint_shrink: Schafer-Strimmer shrinkage of the residual covariance towards its diagonal,
  the same estimator as hierarchicalforecast 1.5 (pairwise-complete moments when residuals
  have NaN, e.g. the first season of a seasonal naive model), dense n x n;
- block_shrink: the same estimator applied separately inside each block of siblings
  (series of one level sharing a unique parent in the level directly above; a series with no
  unique parent, as in a grouped hierarchy, and the total are blocks of their own), so W is
  sparse block-diagonal. Blocks above `MAX_BLOCK` series are cut into consecutive pieces to
  bound memory (W has sum(block^2) entries).

Intervals ("normality"). The reconciled covariance is M W M' with M = I - W C' A^{-1} C,
and M W M' = W - W C' A^{-1} C W. For sparse W its diagonal needs only one solve per
distinct column of S_u (lanes under the same aggregates share one: about as many as there
are aggregates) and a sparse product; otherwise it is computed in column chunks of C W, so
memory stays bounded either way. W describes one-step errors; for step h we assume W_h = k_h W
(Wickramasuriya et al.'s proportionality assumption) and estimate k_h per series from its
base model's own interval: sigma_h = half-width / z (averaged over the interval levels, as
hierarchicalforecast does). Reconciled variance of series i at step h is

    var_ih = (M W M')_ii / W_ii * sigma_ih^2,

the ratio clipped to [0, 1] (reconciliation never widens an interval under this model).
BottomUp sums independent lane variances: var = S sigma_b^2. A zero-variance series
(constant or perfectly fitted) keeps W_ii = RIDGE, so nothing divides by zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mmplan.errors import ConfigError, DataError

__all__ = [
    "METHODS",
    "RIDGE",
    "MINT_SHRINK_MAX_SERIES",
    "Reconciled",
    "reconcile",
    "weights",
    "sibling_blocks",
    "shrunk_covariance",
]

METHODS = (
    "BottomUp",
    "MinTrace(ols)",
    "MinTrace(wls_struct)",
    "MinTrace(wls_var)",
    "MinTrace(mint_shrink)",
    "MinTrace(block_shrink)",
)
# Arrays of the summing matrix's rows and columns, and of series x steps.
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
# Solves A x = r for one right-hand side (1-D) or several (columns of a 2-D array).
Solve = Callable[[Floats], Floats]

# hierarchicalforecast's floor for wls_var variances and mint_shrink's diagonal.
RIDGE = 2e-8
# Its epsilon in the shrinkage intensity and the standard deviations.
_EPS = 2e-8
# A dense n x n covariance at this size is 800 MB; the estimator needs a few row chunks more.
MINT_SHRINK_MAX_SERIES = 10_000
# Sibling blocks above this size are cut, so W holds at most m x MAX_BLOCK entries.
MAX_BLOCK = 500
# A (aggregates x aggregates) is factorised densely up to this size, sparsely above.
DENSE_FACTOR_MAX = 2_000
# The compressed variance diagonal keeps a (a + p)^2 dense matrix up to this size.
COMPRESS_MAX = 6_000
# Working memory for one chunk of dense columns (variance diagonal, shrinkage rows).
CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Reconciled:
    """Reconciled means (n x H) and, when base sigmas were given, variances (n x H)."""

    mean: Floats
    var: Floats | None


def reconcile(
    S: Any,
    bottom_rows: Ints,
    y_hat: Floats,
    method: str,
    *,
    residuals: Floats | None = None,
    sigma: Floats | None = None,
    level_of_row: Ints | None = None,
) -> Reconciled:
    """Coherent forecasts from base forecasts `y_hat` (n x H), rows in S's row order.

    S: scipy sparse summing matrix (n series x m lanes); bottom_rows[c] is the row of lane c.
    residuals: in-sample residuals (n x T, NaN where missing) for wls_var and the shrink
    methods. sigma: base forecast standard deviations (n x H) for intervals, or None.
    level_of_row: level index of each row (0 = top) for block_shrink's sibling blocks.
    """
    import scipy.linalg  # noqa: F401  (loaded before the limit, which sees only loaded BLAS)
    from scipy import sparse
    from threadpoolctl import threadpool_limits

    S = sparse.csr_matrix(S, dtype=np.float64)
    bottom_rows = np.asarray(bottom_rows, dtype=np.int64)
    y_hat = np.asarray(y_hat, dtype=np.float64)
    # One BLAS thread: the products here are small or thin, and on a busy 2-core machine
    # OpenBLAS threads spin on each other (a 650 x 650 Cholesky took 2.8 s instead of 0.01).
    with threadpool_limits(limits=1, user_api="blas"):
        return _reconcile(S, bottom_rows, y_hat, method, residuals, sigma, level_of_row)


def _reconcile(
    S: Any,
    bottom_rows: Ints,
    y_hat: Floats,
    method: str,
    residuals: Floats | None,
    sigma: Floats | None,
    level_of_row: Ints | None,
) -> Reconciled:
    from scipy import sparse

    if method == "BottomUp":
        mean = np.asarray(S @ y_hat[bottom_rows])
        var = None if sigma is None else np.asarray(S @ (np.asarray(sigma)[bottom_rows] ** 2))
        return Reconciled(mean, var)
    W = weights(S, bottom_rows, method, residuals=residuals, level_of_row=level_of_row)
    C = _constraints(S, bottom_rows)
    if sparse.issparse(W):
        CW = (C @ W).tocsr()
        A = (CW @ C.T).tocsc()
        w_diag = W.diagonal()
    else:
        CW = np.asarray(C @ W)
        A = np.asarray((C @ CW.T).T)
        w_diag = np.diag(W).copy()
    solver = _SPDSolver(A, method)
    mean = y_hat - np.asarray(CW.T @ solver.solve(np.asarray(C @ y_hat)))
    if sigma is None:
        return Reconciled(mean, None)
    if sparse.issparse(W):
        reduction = _compressed_quadratic_diagonal(S, bottom_rows, W, solver)
    else:
        reduction = None
    if reduction is None:
        reduction = _quadratic_diagonal(CW, solver)
    ratio = np.clip((w_diag - reduction) / w_diag, 0.0, 1.0)
    return Reconciled(mean, ratio[:, None] * np.asarray(sigma, dtype=np.float64) ** 2)


def weights(
    S: Any,
    bottom_rows: Ints,
    method: str,
    *,
    residuals: Floats | None = None,
    level_of_row: Ints | None = None,
) -> Any:
    """W for a MinTrace method: scipy sparse (diagonal or block-diagonal) or dense."""
    from scipy import sparse

    n = S.shape[0]
    kind = method.removeprefix("MinTrace(").removesuffix(")")
    if kind == "ols":
        return sparse.identity(n, format="csr")
    if kind == "wls_struct":
        return sparse.diags(np.asarray(S.sum(axis=1)).ravel()).tocsr()
    if kind not in ("wls_var", "mint_shrink", "block_shrink"):
        raise ConfigError(f"unknown reconciliation method {method!r}; choose one of {METHODS}.")
    if residuals is None or residuals.shape[0] != n:
        raise ValueError(f"{method} needs in-sample residuals, one row per series ({n})")
    residuals = np.asarray(residuals, dtype=np.float64)
    if kind == "wls_var":
        # As hierarchicalforecast: NaN residuals add nothing, the mean is over all days.
        step = max(1, CHUNK_BYTES // (8 * max(residuals.shape[1], 1)))
        msr = np.concatenate(
            [np.nansum(residuals[i : i + step] ** 2, axis=1) for i in range(0, n, step)]
            or [np.empty(0)]
        ) / max(residuals.shape[1], 1)
        return sparse.diags(msr + RIDGE).tocsr()
    if kind == "mint_shrink":
        if n > MINT_SHRINK_MAX_SERIES:
            gb = n * n * 8 / 1e9
            raise ConfigError(
                f"[forecast].reconciliation = 'MinTrace(mint_shrink)' keeps a dense covariance "
                f"of all {n:,} open series ({gb:,.1f} GB); it is refused above "
                f"{MINT_SHRINK_MAX_SERIES:,} series. Use 'MinTrace(block_shrink)' (the same "
                "shrinkage among siblings only, sparse) or 'MinTrace(wls_var)'."
            )
        return shrunk_covariance(residuals)
    if level_of_row is None:
        raise ValueError("block_shrink needs level_of_row to find sibling blocks")
    rows, cols, vals = [], [], []
    blocks = sibling_blocks(S, bottom_rows, level_of_row)
    singles = np.concatenate([b for b in blocks if len(b) == 1] or [np.empty(0, np.int64)])
    if singles.size:
        # A block of one is just its variance; done for all of them at once.
        rows.append(singles)
        cols.append(singles)
        vals.append(_variances(residuals[singles]))
    for block in blocks:
        if len(block) == 1:
            continue
        cov = shrunk_covariance(residuals[block])
        rows.append(np.repeat(block, len(block)))
        cols.append(np.tile(block, len(block)))
        vals.append(cov.ravel())
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    return sparse.csr_matrix((v, (r, c)), shape=(n, n))


def sibling_blocks(S: Any, bottom_rows: Ints, level_of_row: Ints) -> list[Ints]:
    """Rows grouped into blocks of siblings: same level, same unique parent one level up.

    A parent is unique when every lane under the series lies under one series of the level
    directly above. Series without one (the top level, crossed levels of a grouped
    hierarchy) are blocks of their own. Blocks longer than MAX_BLOCK are cut in pieces.
    """
    from scipy import sparse

    S = sparse.csr_matrix(S)
    n, m = S.shape
    level_of_row = np.asarray(level_of_row)
    parent = np.full(n, -1, dtype=np.int64)
    levels = np.unique(level_of_row)
    for upper, lower in zip(levels[:-1], levels[1:], strict=True):
        up_rows = np.flatnonzero(level_of_row == upper)
        # lane -> the one row of the upper level that holds it (-1 if none or several)
        up = S[up_rows].tocsc()
        counts = np.diff(up.indptr)
        owner = np.full(m, -1, dtype=np.int64)
        single = counts == 1
        owner[single] = up_rows[up.indices[up.indptr[:-1][single]]]
        low_rows = np.flatnonzero(level_of_row == lower)
        low = S[low_rows]
        sizes = np.diff(low.indptr)
        has = sizes > 0
        owners = owner[low.indices]
        starts = low.indptr[:-1][has]
        lo = np.minimum.reduceat(owners, starts) if owners.size else np.empty(0, np.int64)
        hi = np.maximum.reduceat(owners, starts) if owners.size else np.empty(0, np.int64)
        unique = (lo == hi) & (lo >= 0)
        parent[low_rows[has][unique]] = lo[unique]
    # Series without a parent get a key of their own, after every real parent's.
    key = np.where(parent >= 0, parent, n + np.arange(n))
    order = np.lexsort((np.arange(n), key, level_of_row))
    sorted_key = np.stack([level_of_row[order], key[order]])
    breaks = np.flatnonzero(np.any(sorted_key[:, 1:] != sorted_key[:, :-1], axis=0)) + 1
    blocks = []
    for block in np.split(order, breaks):
        for start in range(0, len(block), MAX_BLOCK):
            blocks.append(np.sort(block[start : start + MAX_BLOCK]))
    return blocks


def _variances(residuals: Floats) -> Floats:
    """Each row's sample variance over its non-NaN values (0 below two), floored at RIDGE."""
    valid = ~np.isnan(residuals)
    count = valid.sum(axis=1)
    x = np.where(valid, residuals, 0.0)
    mean = x.sum(axis=1) / np.maximum(count, 1)
    ss = (np.where(valid, residuals - mean[:, None], 0.0) ** 2).sum(axis=1)
    var = np.where(count > 1, ss / np.maximum(count - 1, 1), 0.0)
    return np.maximum(var, RIDGE)


def shrunk_covariance(residuals: Floats, ridge: float = RIDGE) -> Floats:
    """Schafer-Strimmer shrinkage covariance of the rows of `residuals` (b x T, NaN = missing).

    The estimator of hierarchicalforecast 1.5's mint_shrink, vectorised: off-diagonal
    covariances are multiplied by one intensity estimated from all pairs, the diagonal is
    floored at `ridge`. Without NaN it uses the full-sample formulas; with NaN every pair uses
    the days both series have (pairwise-complete), like hierarchicalforecast's two paths.
    Rows are processed in chunks, so the only b x b array is the result.
    """
    x = np.asarray(residuals, dtype=np.float64)
    valid = ~np.isnan(x)
    if valid.sum(axis=1).max(initial=0) < 2:
        return np.diag(np.full(x.shape[0], ridge))  # no series has a variance to estimate
    if valid.all():
        return _shrunk_no_nans(x, ridge)
    # Days no series has add nothing to any pairwise moment; when dropping them leaves no
    # NaN (the common case: a model's first season), every pair shares the same days.
    days = valid.any(axis=0)
    if valid[:, days].all():
        return _shrunk_full_overlap(x[:, days], ridge)
    return _shrunk_with_nans(x, valid, ridge)


def _shrunk_no_nans(x: Floats, ridge: float) -> Floats:
    b, T = x.shape
    xc = x - x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / (np.sqrt((xc**2).sum(axis=1) / T) + _EPS)
    z = xc * inv_std[:, None]
    z2 = z * z
    # Sums over pairs i != j, from T x T Grams instead of b x b ones:
    # sum_ij (z_i . z_j)^2 = ||Z'Z||_F^2 and sum_ij (z_i^2 . z_j^2) = ||Z2' 1||^2.
    gram_sq = float(np.sum((z.T @ z) ** 2) - np.sum(np.einsum("ik,ik->i", z, z) ** 2))
    cross_sq = float(np.sum(z2.sum(axis=0) ** 2) - np.sum(z2 * z2))
    # var_w = sum_k w_k^2 - T mean(w)^2 with w_k = z_ik z_jk; mean(w)^2 = (z_i . z_j / T)^2
    sum_var = (cross_sq - gram_sq / T) / 2
    sum_sq = gram_sq / T**2 / 2
    keep = 1.0 - np.clip(sum_var / (T * (T - 1)) / (sum_sq + _EPS), 0.0, 1.0)
    W = (xc @ xc.T) / (T - 1)
    diag = np.maximum(np.diag(W).copy(), ridge)
    W *= keep
    np.fill_diagonal(W, diag)
    return W


def _shrunk_full_overlap(x: Floats, ridge: float) -> Floats:
    """`_shrunk_with_nans` when every pair has all T days: its sums from T x T Grams."""
    b, T = x.shape
    if T < 2:
        return np.diag(np.full(b, ridge))
    xc = x - x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / (np.sqrt((xc**2).sum(axis=1) / T) + 2 * _EPS)
    z = xc * inv_std[:, None]
    z2 = z * z
    gram_sq = float(np.sum((z.T @ z) ** 2) - np.sum(np.einsum("ik,ik->i", z, z) ** 2))
    cross_sq = float(np.sum(z2.sum(axis=0) ** 2) - np.sum(z2 * z2))
    # Per pair: var_w = sum_k w_k^2 - (sum_k w_k)^2 / T weighted by T / (T-1)^3, and
    # (sum_k w_k / (T-1))^2; halved because hierarchicalforecast sums over i > j only.
    sum_var = T / (T - 1) ** 3 * (cross_sq - gram_sq / T) / 2
    sum_sq = gram_sq / (T - 1) ** 2 / 2
    keep = 1.0 - np.clip(sum_var / (sum_sq + _EPS), 0.0, 1.0)
    W = (xc @ xc.T) / (T - 1)
    diag = np.maximum(np.diag(W).copy(), ridge)
    W *= keep
    np.fill_diagonal(W, diag)
    return W


def _shrunk_with_nans(x: Floats, valid: npt.NDArray[np.bool_], ridge: float) -> Floats:
    b, T = x.shape
    mask = valid.astype(np.float64)
    # Centring each row first changes no pairwise-centred moment and avoids cancellation.
    count_row = mask.sum(axis=1)
    row_mean = np.where(valid, x, 0.0).sum(axis=1) / np.maximum(count_row, 1)
    x0 = np.where(valid, x - row_mean[:, None], 0.0)
    x2 = x0 * x0
    W = np.empty((b, b))
    sum_var = sum_sq = 0.0
    chunk = max(1, CHUNK_BYTES // (12 * 8 * b))
    for start in range(0, b, chunk):
        rows = slice(start, min(start + chunk, b))
        # Moments over the days both i (chunk row) and j (column) have, for all j.
        c = mask[rows] @ mask.T
        sa = x0[rows] @ mask.T  # sum of a = x_i
        sb = mask[rows] @ x0.T  # sum of b = x_j
        saa = x2[rows] @ mask.T
        sbb = mask[rows] @ x2.T
        sab = x0[rows] @ x0.T
        sa2b2 = x2[rows] @ x2.T
        sa2b = x2[rows] @ x0.T
        sab2 = x0[rows] @ x2.T
        ok = c > 1
        cs = np.where(ok, c, 2.0)
        ma, mb = sa / cs, sb / cs
        cov = sab - sa * sb / cs
        var_a = np.maximum(saa - sa * sa / cs, 0.0)
        var_b = np.maximum(sbb - sb * sb / cs, 0.0)
        inv_a = 1.0 / (np.sqrt(var_a / cs) + 2 * _EPS)
        inv_b = 1.0 / (np.sqrt(var_b / cs) + 2 * _EPS)
        # sum over joint days of (a - ma)^2 (b - mb)^2, expanded in raw moments
        quad = (
            sa2b2
            - 2 * mb * sa2b
            - 2 * ma * sab2
            + mb * mb * saa
            + ma * ma * sbb
            + 4 * ma * mb * sab
            - 3 * cs * ma * ma * mb * mb
        )
        s = inv_a * inv_b
        w_sum = s * cov
        var_w = s * s * quad - w_sum * w_sum / cs
        off = ok.copy()
        off[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = False
        sum_var += float(np.sum(np.where(off, cs / (cs - 1) ** 3 * var_w, 0.0)))
        sum_sq += float(np.sum(np.where(off, (w_sum / (cs - 1)) ** 2, 0.0)))
        W[rows] = np.where(ok, cov / (cs - 1), 0.0)
    # Each pair was counted from both ends.
    keep = 1.0 - np.clip((sum_var / 2) / (sum_sq / 2 + _EPS), 0.0, 1.0)
    diag = np.maximum(np.diag(W).copy(), ridge)
    W *= keep
    np.fill_diagonal(W, diag)
    return W


def _aggregate_rows(n: int, bottom_rows: Ints) -> Ints:
    """The rows of S that are not lanes, in order."""
    is_bottom = np.zeros(n, dtype=bool)
    is_bottom[bottom_rows] = True
    return np.flatnonzero(~is_bottom)


def _constraints(S: Any, bottom_rows: Ints) -> Any:
    """C (a x n, CSR): row k is aggregate k minus the lanes under it, so C y = 0 is coherence."""
    from scipy import sparse

    n, m = S.shape
    agg_rows = _aggregate_rows(n, bottom_rows)
    a = agg_rows.size
    su = S[agg_rows].tocoo()
    rows = np.concatenate([np.arange(a), su.row])
    cols = np.concatenate([agg_rows, bottom_rows[su.col]])
    vals = np.concatenate([np.ones(a), -su.data])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(a, n))


class _SPDSolver:
    """Solves A x = r for the SPD matrix A = C W C', scaled to unit diagonal first."""

    def __init__(self, A: Any, method: str) -> None:
        from scipy import sparse

        dense = not sparse.issparse(A) or A.shape[0] <= DENSE_FACTOR_MAX
        d = np.asarray(A.diagonal(), dtype=np.float64)
        if A.shape[0] == 0:
            self.scale = d
            self._solve = lambda r: r
            return
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise DataError(
                f"{method}: the reconciliation weights are not finite and positive; check the "
                "in-sample fitted values for inf or NaN."
            )
        self.scale = 1.0 / np.sqrt(d)
        if dense:
            A = A.toarray() if sparse.issparse(A) else np.array(A)
            self._solve = self._dense(A * self.scale[:, None] * self.scale[None, :], method)
        else:
            D = sparse.diags(self.scale)
            self._solve = self._sparse((D @ A @ D).tocsc(), method)

    @staticmethod
    def _dense(A: Floats, method: str) -> Solve:
        from scipy.linalg import LinAlgError, cho_factor, cho_solve

        # A tiny ridge (relative to the unit diagonal) rescues a W that is only semidefinite.
        for ridge in (0.0, 1e-12, 1e-9, 1e-6):
            try:
                factor = cho_factor(A + ridge * np.eye(len(A)), lower=True, check_finite=False)
                return lambda r: cho_solve(factor, r, check_finite=False)
            except LinAlgError:
                continue
        raise DataError(
            f"{method}: the aggregate system C W C' is not positive definite; use "
            "MinTrace(wls_var) or MinTrace(block_shrink)."
        )

    @staticmethod
    def _sparse(A: Any, method: str) -> Solve:
        from scipy import sparse
        from scipy.sparse.linalg import splu

        for ridge in (0.0, 1e-12, 1e-9, 1e-6):
            try:
                lu = splu(
                    (A + ridge * sparse.identity(A.shape[0])).tocsc(),
                    permc_spec="MMD_AT_PLUS_A",
                    diag_pivot_thresh=0.0,
                    options={"SymmetricMode": True},
                )
            except RuntimeError:  # exactly singular pivot
                continue
            if np.all(np.isfinite(lu.U.diagonal())) and np.all(lu.U.diagonal() > 0):
                return lu.solve
        raise DataError(
            f"{method}: the aggregate system C W C' is not positive definite; use "
            "MinTrace(wls_var) or MinTrace(block_shrink)."
        )

    def solve(self, r: Floats) -> Floats:
        r = np.asarray(r, dtype=np.float64)
        s = self.scale if r.ndim == 1 else self.scale[:, None]
        return s * self._solve(np.ascontiguousarray(s * r))


def _compressed_quadratic_diagonal(
    S: Any, bottom_rows: Ints, W: Any, solver: _SPDSolver
) -> Floats | None:
    """diag(W C' A^{-1} C W) through the lanes' distinct ancestor patterns, for sparse W.

    The lanes under the same set of aggregates have the same column in S_u, so with
    S_u = P E (P: the p distinct columns, E: lane -> pattern) C = [I, -P] J and
    C W = [I, -P] R with R = [W_agg rows; E W_lane rows]. Then the diagonal is
    colsum(R * Q R) with Q = [I, -P]' A^{-1} [I, -P]: a + p solves instead of one per
    series (a + p is about twice the aggregates in a nested hierarchy). None when a + p
    is too large for Q, and the caller falls back to column chunks.
    """
    from scipy import sparse

    n, m = S.shape
    agg_rows = _aggregate_rows(n, bottom_rows)
    a = agg_rows.size
    su = S[agg_rows].tocsc()
    su.sort_indices()
    depth = np.diff(su.indptr)
    width = int(depth.max(initial=0))
    # Each lane's column as a padded row of (aggregate index, value): equal rows = equal columns.
    keys = np.full((m, 2 * width), -1.0)
    slot = np.arange(su.nnz) - np.repeat(su.indptr[:-1], depth)
    lane = np.repeat(np.arange(m), depth)
    keys[lane, slot] = su.indices
    keys[lane, width + slot] = su.data
    patterns, first, pattern_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    p = len(patterns)
    if a + p > COMPRESS_MAX:
        return None
    P = su[:, first]  # a x p, the distinct columns
    E = sparse.csr_matrix((np.ones(m), (pattern_of.ravel(), np.arange(m))), shape=(p, m))
    W = sparse.csr_matrix(W)
    R = sparse.vstack([W[agg_rows], E @ W[bottom_rows]]).tocsr()
    big = sparse.hstack([sparse.identity(a), -P]).toarray()  # a x (a + p)
    Q = big.T @ solver.solve(big)
    RT = R.T.tocsr()
    out = np.empty(n)
    step = max(1, CHUNK_BYTES // (8 * (a + p)))
    for start in range(0, n, step):
        part = RT[start : start + step]
        out[start : start + step] = np.asarray(part.multiply(part @ Q).sum(axis=1)).ravel()
    return out


def _quadratic_diagonal(CW: Any, solver: _SPDSolver) -> Floats:
    """diag(W C' A^{-1} C W) = column sums of CW * A^{-1} CW, a chunk of columns at a time."""
    from scipy import sparse

    a, n = CW.shape
    out = np.zeros(n)
    if a == 0:
        return out
    if sparse.issparse(CW):
        CW = CW.tocsc()
    chunk = max(1, CHUNK_BYTES // (8 * a))
    for start in range(0, n, chunk):
        block = CW[:, start : start + chunk]
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        out[start : start + chunk] = np.einsum("ij,ij->j", block, solver.solve(block))
    return out
