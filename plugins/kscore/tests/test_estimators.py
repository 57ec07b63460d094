"""The kscore estimators against closed-form scores, Nyström, batching, bad input and registration."""

from __future__ import annotations

import pytest
import torch
from conftest import relative_rmse, sample_with_score

import mireg
from mireg.estimators import ScoreEstimator
from mireg.testing import bad_kernel_score_inputs, correlated_gaussian_mi_grad, correlated_gaussians
from mireg_kscore import KEF, Landweber, NuMethod, SpectralCutoff, expansion
from mireg_kscore.expansion import EVALUATION_BLOCK, WHITENED_OPTIONS
from mireg_kscore.spectral_cutoff import DENSE_LIMIT

NAMES = ("nu-method", "landweber", "kef", "spectral-cutoff")

# Relative RMSE at the samples with default options, measured with the seeds below (float32 and
# float64 agree to 1e-4), M = 256; the tolerance is 1.2 × the measured value.
MEASURED = {
    ("nu-method", "gaussian", 2): 0.178,
    ("nu-method", "gaussian", 10): 0.291,
    ("nu-method", "mixture", 2): 0.199,
    ("nu-method", "mixture", 10): 0.294,
    ("landweber", "gaussian", 2): 0.426,
    ("landweber", "gaussian", 10): 0.556,
    ("landweber", "mixture", 2): 0.328,
    ("landweber", "mixture", 10): 0.266,
    ("kef", "gaussian", 2): 0.155,
    ("kef", "gaussian", 10): 0.277,
    ("kef", "mixture", 2): 0.196,
    ("kef", "mixture", 10): 0.286,
    ("spectral-cutoff", "gaussian", 2): 0.130,
    ("spectral-cutoff", "gaussian", 10): 0.243,
    ("spectral-cutoff", "mixture", 2): 0.354,
    ("spectral-cutoff", "mixture", 10): 0.293,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "kind", "d"), list(MEASURED))
def test_accuracy_at_the_samples(name: str, kind: str, d: int, dtype: torch.dtype) -> None:
    x, score = sample_with_score(kind, 256, d, dtype, seed=256 + d)
    estimate = mireg.score_estimator(name).score(x)
    assert estimate.dtype == dtype and estimate.shape == x.shape
    assert relative_rmse(estimate, score) < 1.2 * MEASURED[(name, kind, d)]


# Out of sample (fit on 512, evaluate at 256 fresh points, d = 10, float32), measured; tolerance 1.2 ×.
OUT_OF_SAMPLE = {
    ("nu-method", "gaussian"): 0.260,
    ("nu-method", "mixture"): 0.241,
    ("landweber", "gaussian"): 0.536,
    ("landweber", "mixture"): 0.225,
    ("kef", "gaussian"): 0.226,
    ("kef", "mixture"): 0.218,
    ("spectral-cutoff", "gaussian"): 0.245,
    ("spectral-cutoff", "mixture"): 0.225,
}


@pytest.mark.parametrize(("name", "kind"), list(OUT_OF_SAMPLE))
def test_accuracy_out_of_sample(name: str, kind: str) -> None:
    rows, score = sample_with_score(kind, 768, 10, torch.float32, seed=9)
    x, points, score = rows[:512], rows[512:], score[512:]
    assert relative_rmse(mireg.score_estimator(name).score(x, at=points), score) < 1.2 * OUT_OF_SAMPLE[(name, kind)]


def test_nystrom_keeps_most_of_the_accuracy() -> None:
    # Measured on the mixture, d = 10, M = 512 (float32): exact KEF 0.229, 128 centres 0.229.
    x, score = sample_with_score("mixture", 512, 10, torch.float32, seed=5)
    exact = relative_rmse(KEF().score(x), score)
    nystrom = relative_rmse(KEF(subsample=128).score(x), score)
    assert exact < 1.2 * 0.229 and nystrom < 1.2 * 0.229


def test_conjugate_gradients_match_the_cholesky_solve() -> None:
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    options = {"lam": 1e-3, "kernel": "diagonal-imq"}
    direct = KEF(**options).score(x)  # type: ignore[arg-type]
    iterative = KEF(solver="cg", cg_tol=1e-12, cg_iterations=1000, **options).score(x)  # type: ignore[arg-type]
    assert relative_rmse(iterative, direct) < 1e-9


def test_iterations_and_lam_are_the_same_regularisation() -> None:
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.equal(NuMethod(lam=1 / 15**2).score(x), NuMethod(iterations=15).score(x))
    assert torch.equal(Landweber(lam=1 / 40).score(x), Landweber(iterations=40).score(x))


@pytest.mark.parametrize(
    "estimator",
    [NuMethod(iterations=6, bandwidth=1.5), Landweber(iterations=6, bandwidth=1.5)],
    ids=["nu-method", "landweber"],
)
def test_iterations_are_differentiable_in_the_samples(estimator: ScoreEstimator) -> None:
    # Autograd through the iterations (no iterate the operator saves is overwritten) against finite
    # differences, float64, default gradcheck tolerances (atol 1e-5, rtol 1e-3).
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64, requires_grad=True)
    points = torch.randn(3, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: estimator.score(s), (x,))
    assert torch.autograd.gradcheck(lambda s: estimator.score(s, at=points), (x,))


@pytest.mark.parametrize(
    "estimator",
    [
        NuMethod(),
        Landweber(iterations=20),
        KEF(cg_tol=1e-12, cg_iterations=500),
        KEF(subsample=20, kernel="diagonal-rbf"),
        SpectralCutoff(),
    ],
    ids=["nu-method", "landweber", "kef-cg", "kef-nystrom", "spectral-cutoff"],
)
def test_batched_equals_one_by_one(estimator: ScoreEstimator) -> None:
    x = torch.randn(3, 2, 50, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    points = torch.randn(3, 2, 7, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for at in (None, points):
        batched = estimator.score(x, at=at)
        single = torch.stack(
            [
                torch.stack([estimator.score(a, at=None if at is None else p) for a, p in zip(xs, ps, strict=True)])
                for xs, ps in zip(x, points, strict=True)
            ]
        )
        assert torch.allclose(batched, single, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize(
    "estimator",
    [KEF(**WHITENED_OPTIONS), KEF(subsample=30, kernel="diagonal-rbf"), NuMethod()],
    ids=["kef-whitened", "kef-nystrom", "nu-method"],
)
def test_evaluation_in_row_blocks_is_the_evaluation_at_once(
    estimator: ScoreEstimator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2.5 blocks of rows, the last one short, against one block holding every row; float64.
    x = torch.randn(2, 60, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    rows = 5 * EVALUATION_BLOCK // 2
    points = torch.randn(2, rows, 4, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    blocked = estimator.score(x, at=points)
    monkeypatch.setattr(expansion, "EVALUATION_BLOCK", rows)
    torch.testing.assert_close(blocked, estimator.score(x, at=points), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("samples", "at", "message"), bad_kernel_score_inputs())
def test_bad_input_raises_a_clear_value_error(
    name: str, samples: torch.Tensor, at: torch.Tensor | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mireg.score_estimator(name).score(samples, at=at)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: NuMethod(lam=0.01, iterations=5), "either lam or iterations"),
        (lambda: NuMethod(lam=0.0), "lam must be in"),
        (lambda: Landweber(iterations=0), "iterations must be a positive"),
        (lambda: NuMethod(nu=0.0), "nu must be > 0"),
        (lambda: KEF(kernel="rbf"), "kernel must be one of"),  # type: ignore[arg-type]
        (lambda: KEF(solver="cholesky", kernel="curlfree-rbf"), "needs a diagonal kernel"),
        (lambda: KEF(solver="lu"), "solver must be"),  # type: ignore[arg-type]
        (lambda: KEF(subsample=0), "subsample must be"),
        (lambda: KEF(cg_tol=0.0), "cg_tol must be"),
        (lambda: SpectralCutoff(lam=2.0), "lam must be in"),
        (lambda: SpectralCutoff(bandwidth=-1.0), "bandwidth must be > 0"),
        (lambda: Landweber(bandwidth_multiplier=0.0), "bandwidth_multiplier must be > 0"),
    ],
)
def test_bad_options_raise(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_problems_too_large_for_the_method_raise() -> None:
    with pytest.raises(ValueError, match="exceeds the number of samples"):
        KEF(subsample=11).score(torch.randn(10, 2))
    with pytest.raises(ValueError, match="use a diagonal kernel or the nu-method"):
        SpectralCutoff(kernel="curlfree-imq").score(torch.randn(DENSE_LIMIT // 4 + 1, 4))


def test_fixed_bandwidth_is_used() -> None:
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    median = NuMethod().score(x)
    assert relative_rmse(NuMethod(bandwidth=50.0).score(x), median) > 0.1


@pytest.mark.parametrize("name", NAMES)
def test_registry(name: str) -> None:
    assert name in [info.name for info in mireg.list_estimators("score")]
    estimator = mireg.score_estimator(name, bandwidth_multiplier=1.5)
    assert estimator.bandwidth_multiplier == 1.5  # type: ignore[attr-defined]
    assert estimator.score(torch.randn(20, 3)).shape == (20, 3)
    with pytest.raises(mireg.OptionError, match="kernell"):
        mireg.score_estimator(name, kernell="diagonal-rbf")


def test_mige_takes_the_estimators_by_name_and_as_instances() -> None:
    # Gaussian toy, d = 5, ρ = 0.5, batch 256, seed 0: the truth is ρd/(1 − ρ²) = 3.33. By name MIGE
    # builds the nu-method with its whitened options; the instance built with them gives the same
    # gradient, and one built with others (median rule) a different one; measured ratios 0.919 and
    # 1.013 (tolerance 0.1).
    truth = correlated_gaussian_mi_grad(5, 0.5)
    grads = []
    for options in (
        {"score": "nu-method"},
        {"score": NuMethod(**WHITENED_OPTIONS)},  # type: ignore[arg-type]
        {"score": NuMethod(lam=1e-3, bandwidth_multiplier=0.5)},
    ):
        mi = mireg.mi_gradient_estimator("mige", **options)
        rho = torch.tensor(0.5, requires_grad=True)
        x, y = correlated_gaussians(256, 5, rho, torch.Generator().manual_seed(0))
        mi(x, y).backward()
        assert rho.grad is not None and abs(float(rho.grad) / truth - 1) < 0.1
        grads.append(float(rho.grad))
    assert grads[0] == grads[1] != grads[2]
