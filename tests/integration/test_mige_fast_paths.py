"""MIGE's fast paths against the plain computation they replace, to float tolerance.

* The median-heuristic bandwidth from squared distances equals the median of the distances; the
  lower median (numpy's selection on the CPU, a bracketed selection elsewhere) equals torch.median.
* The sign-flipped projection R D equals projecting the sign-flipped inputs by R.
* Validated once: the score of inputs the caller checked equals ``score`` (which checks them again).
* One fit for MIGE's terms: the z term padded with zero columns and stacked with the joint term
  gives each term's own score, and MIGE's surrogate gradient is that of separate fits.
* The landmark path: fitting SSGE on landmark rows and evaluating it at every row reproduces,
  at the landmark rows, the in-sample estimate of the same fit (the Nyström extension is exact
  there); at or below the landmark count MIGE's surrogate gradient is the exact one, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mireg import mige
from mireg.estimators import ScoreEstimator, score_of_checked
from mireg.kernels import SELECT_DIRECT, _select, lower_median, median_heuristic, pairwise_sq_dists
from mireg.mige import MIGE, STACKED_FIT_ROWS, _landmark_rows, preconditioned_score, preconditioned_scores
from mireg.projection import flip_columns, random_projection
from mireg.testing import correlated_gaussians
from mireg_kscore import KEF, NuMethod
from mireg_ssge import SSGE
from mireg_stein import Stein


@pytest.mark.parametrize("m", [7, 128, 513])
def test_bandwidth_from_squared_distances_is_the_median_distance(m: int) -> None:
    x = torch.randn(m, 5, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
    sq = pairwise_sq_dists(x, x)
    rows, cols = torch.triu_indices(m, m, 1)
    plain = torch.cdist(x, x)[rows, cols].median()  # lower median of the distances themselves
    torch.testing.assert_close(median_heuristic(sq), plain, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("n", [1, 8, 8128, SELECT_DIRECT + 1, 130816])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lower_median_is_torch_median(n: int, dtype: torch.dtype) -> None:
    values = torch.randn(3, n, generator=torch.Generator().manual_seed(n), dtype=dtype).square()
    values[1] = values[1].round(decimals=1)  # ties
    expected = values.median(-1).values
    torch.testing.assert_close(lower_median(values), expected, rtol=0.0, atol=0.0)
    torch.testing.assert_close(lower_median(values[0]), expected[0], rtol=0.0, atol=0.0)
    if n > SELECT_DIRECT:  # the bracketed selection used off the CPU
        selected = torch.stack([_select(row, (n - 1) // 2) for row in values])
        torch.testing.assert_close(selected, expected, rtol=0.0, atol=0.0)


def test_flipped_projection_is_the_projection_of_flipped_inputs() -> None:
    matrix = random_projection(300, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    flipped = flip_columns(matrix, generator=torch.Generator().manual_seed(1))
    signs = flipped[0] / matrix[0]
    assert set(signs.tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(flipped.norm(dim=0), torch.ones(300, dtype=torch.float64))  # unit columns kept
    x = torch.randn(32, 300, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(x @ flipped.T, (x * signs) @ matrix.T, rtol=1e-12, atol=1e-12)


def test_mige_projects_by_its_seeded_matrix_with_fresh_signs() -> None:
    x = torch.randn(64, 300, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mi = MIGE(score=SSGE, projection_dim=16, seed=5).double()
    torch.manual_seed(11)
    projected = mi._project(x)
    base = random_projection(300, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert mi.projection is not None
    torch.testing.assert_close(mi.projection, base, rtol=0.0, atol=0.0)
    torch.manual_seed(11)  # the signs come from the global generator, as the fresh draws did
    torch.testing.assert_close(projected, x @ flip_columns(base).T, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(mi._project(x), projected)  # a new projection at the next call


@pytest.mark.parametrize("d", [3, 20])
def test_landmark_fit_reproduces_the_in_sample_estimate_at_the_landmarks(d: int) -> None:
    generator = torch.Generator().manual_seed(d)
    rows = torch.randn(300, d, generator=generator, dtype=torch.float64)
    index = _landmark_rows(300, 64, rows.device)
    assert index.unique().numel() == 64 and int(index.max()) < 300
    estimator = SSGE(eta=0.0, threshold=0.999, bandwidth_multiplier=2.0, eigensolver="eigh")
    landmarks = rows[index]
    everywhere = estimator.score(landmarks, at=rows)
    torch.testing.assert_close(everywhere[index], estimator.score(landmarks), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("precondition", ["full", "diag", "none"])
def test_landmark_path_is_the_exact_path_up_to_the_landmark_count(precondition: str) -> None:
    x = torch.randn(96, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = preconditioned_score(SSGE(), x, precondition=precondition, calibrate="affine")  # type: ignore[arg-type]
    for landmarks in (96, 1000):
        same = preconditioned_score(
            SSGE(),
            x,
            precondition=precondition,
            calibrate="affine",  # type: ignore[arg-type]
            landmarks=landmarks,
        )
        torch.testing.assert_close(same, exact, rtol=0.0, atol=0.0)


def test_mige_surrogate_gradient_with_landmarks_at_or_above_the_batch_is_exact() -> None:
    def gradient(landmarks: int | None) -> torch.Tensor:
        r = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
        x, y = correlated_gaussians(200, 5, r, torch.Generator().manual_seed(0), dtype=torch.float64)
        MIGE(score=SSGE, landmarks=landmarks)(x, y).backward()
        assert r.grad is not None
        return r.grad

    torch.testing.assert_close(gradient(200), gradient(None), rtol=0.0, atol=0.0)


class _Recording(SSGE):
    """SSGE that records the shapes it is fitted on and evaluated at."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []

    def _score(self, samples: torch.Tensor, at: torch.Tensor | None) -> torch.Tensor:
        self.calls.append((tuple(samples.shape), None if at is None else tuple(at.shape)))
        return super()._score(samples, at)


def test_beyond_the_landmark_count_the_kernel_work_is_batch_times_landmarks() -> None:
    # Fitted on `landmarks` rows and evaluated at all B: the Gram matrix is landmarks², the cross
    # kernel B × landmarks, so the cost grows linearly in B. The z term (padded with zero columns)
    # and the joint term are fitted in one batched call.
    estimator = _Recording()
    mi = MIGE(score=estimator, landmarks=64)
    x, y = correlated_gaussians(1000, 4, 0.5, torch.Generator().manual_seed(0))
    mi(x, y.requires_grad_())
    assert estimator.calls == [((2, 64, 8), (2, 1000, 8))]  # the z term and the joint term, stacked


def test_landmarks_option_is_checked() -> None:
    with pytest.raises(ValueError, match="landmarks must be >= 3 or None"):
        MIGE(score=SSGE, landmarks=2)


def test_ssge_out_of_sample_equals_the_untruncated_stein_extension() -> None:
    # With every eigenpair kept, SSGE's Nyström extension −k(x, X) U (Λ + η)⁻² Uᵀ G is Stein's
    # −k(x, X) (K + ηI)⁻² G, computed by Cholesky solves: an independent check of the landmark path's product order.
    generator = torch.Generator().manual_seed(6)
    samples = torch.randn(80, 4, generator=generator, dtype=torch.float64)
    at = torch.randn(300, 4, generator=generator, dtype=torch.float64)
    ssge = SSGE(n_eigen=80, eta=0.1, bandwidth_multiplier=2.0, eigensolver="eigh")
    torch.testing.assert_close(ssge.score(samples, at=at), Stein(eta=0.1).score(samples, at=at), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_score_of_checked_inputs_is_the_checked_score(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(7)
    samples = torch.randn(50, 3, generator=generator).to(dtype)
    at = torch.randn(20, 3, generator=generator).to(dtype)
    ssge = SSGE(eigensolver="eigh")
    torch.testing.assert_close(score_of_checked(ssge, samples), ssge.score(samples), rtol=0.0, atol=0.0)
    torch.testing.assert_close(score_of_checked(ssge, samples, at), ssge.score(samples, at), rtol=0.0, atol=0.0)


class _OwnScore(ScoreEstimator):
    """A plugin of the first contract: it overrides ``score`` itself (the standard normal's score)."""

    name = "own"

    def score(self, samples: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        return -(samples if at is None else at)


def test_score_of_checked_calls_a_plugin_that_overrides_score_through_it() -> None:
    samples = torch.randn(10, 2, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(score_of_checked(_OwnScore(), samples), -samples, rtol=0.0, atol=0.0)


def _terms(m: int, seed: int) -> list[torch.Tensor]:
    """MIGE's z term [m, 6] and joint term [m, 11] (x projected to 5) of a correlated batch, in float64."""
    x, y = correlated_gaussians(m, 5, 0.9, torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = y @ torch.randn(5, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return [z, torch.cat([x, z], 1)]


def _fitted_ranks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ranks of the rows MIGE's fits are called on from now on (3: a stacked fit of several terms)."""
    ranks: list[int] = []

    def spy(estimator: ScoreEstimator, samples: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
        ranks.append(samples.ndim)
        return score_of_checked(estimator, samples, at)

    monkeypatch.setattr(mige, "score_of_checked", spy)
    return ranks


@pytest.mark.parametrize(
    "estimator",
    [SSGE(), SSGE(eigensolver="eigh"), Stein(), KEF(**KEF.whitened_options), NuMethod(kernel="diagonal-imq")],
    ids=["ssge", "ssge-eigh", "stein", "kef-default", "nu-method-diagonal"],
)
@pytest.mark.parametrize(("m", "landmarks"), [(40, None), (300, None), (300, 100)])
def test_one_fit_of_stacked_terms_is_the_fit_of_each(
    estimator: ScoreEstimator, m: int, landmarks: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The z term padded with zero columns and stacked with the joint term: one batched call gives each
    # term's own score (m = 300 takes SSGE's subspace solver, fitted one set at a time; stacked here though
    # more rows than STACKED_FIT_ROWS, where MIGE would fit the terms separately for speed).
    assert estimator.zero_padding_exact
    monkeypatch.setattr(mige, "STACKED_FIT_ROWS", m)
    terms = _terms(m, m)
    options = {"calibrate": "affine", "landmarks": landmarks}
    ranks = _fitted_ranks(monkeypatch)
    shared = preconditioned_scores(estimator, terms, **options)  # type: ignore[arg-type]
    assert ranks == [3]
    for term, score in zip(terms, shared, strict=True):
        torch.testing.assert_close(score, preconditioned_score(estimator, term, **options), rtol=1e-9, atol=1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("m", "landmarks", "ranks"),
    [(STACKED_FIT_ROWS, None, [3]), (STACKED_FIT_ROWS + 1, None, [2, 2]), (300, STACKED_FIT_ROWS, [3])],
)
def test_terms_are_stacked_up_to_stacked_fit_rows_fitted_rows(
    m: int, landmarks: int | None, ranks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = _fitted_ranks(monkeypatch)
    preconditioned_scores(KEF(**KEF.whitened_options), _terms(m, 2), landmarks=landmarks)
    assert fitted == ranks


def test_a_curl_free_kernel_is_not_zero_padding_exact() -> None:
    # Its divergence counts every dimension, so MIGE fits each term on its own.
    assert not KEF(kernel="curlfree-rbf").zero_padding_exact
    assert KEF(kernel="diagonal-imq").zero_padding_exact
    z, joint = _terms(40, 1)
    padded = torch.nn.functional.pad(z, (0, joint.shape[1] - z.shape[1]))
    estimator = KEF(kernel="curlfree-rbf")
    assert not torch.allclose(estimator.score(padded)[:, : z.shape[1]], estimator.score(z), rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("build", [SSGE, lambda: KEF(**KEF.whitened_options)], ids=["ssge", "kef-default"])
def test_mige_surrogate_gradient_with_one_shared_fit_is_that_of_separate_fits(
    dtype: torch.dtype, build: Callable[[], ScoreEstimator]
) -> None:
    def gradient(shared: bool) -> torch.Tensor:
        estimator = build()
        estimator.zero_padding_exact = shared  # False: MIGE fits each term on its own
        r = torch.tensor(0.9, dtype=dtype, requires_grad=True)
        x, y = correlated_gaussians(128, 20, r, torch.Generator().manual_seed(0), dtype=dtype)
        MIGE(score=estimator, projection_dim=10, seed=3)(x @ torch.eye(20, 30, dtype=dtype), y).backward()
        assert r.grad is not None
        return r.grad

    torch.manual_seed(0)  # the projection's signs
    shared = gradient(True)
    torch.manual_seed(0)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(shared, gradient(False), rtol=tolerance, atol=0.0)
