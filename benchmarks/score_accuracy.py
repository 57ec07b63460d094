"""Accuracy and speed of every installed score estimator against closed-form scores.

For each registered score estimator (``mireg.list_estimators("score")``), setting, distribution,
dimension d and batch size M it measures the relative RMSE of the score,
``sqrt(mean |ŝ - s|²) / sqrt(mean |s|²)``, at the samples (in-sample) and at fresh points
(out-of-sample, where the estimator supports ``at``), and the time per call. Parametric
estimators (``est.parametric``, the ssm score network) are first warmed up as MIGE uses them:
``WARMUP_CALLS`` score() calls on fresh batches of the same size from the same distribution
(300, or 100 with ``--quick``; the table reports the number); nonparametric ones need none.
Distributions (from :mod:`mireg.testing`):

* ``normal``: N(0, I), the main use case (MIGE whitens batches before scoring them);
* ``gaussian``: N(μ, Σ), Σ with eigenvalues log-spaced in [0.25, 4] in a random basis;
* ``mixture``: 0.3 N(u, I) + 0.7 N(-u, I) with |u| = 1.5.

It also prints three speed ratios measured side by side in the same run (float32, one thread):
SSGE fit+evaluate at M = 512, d = 64 over one ``torch.linalg.eigh`` of 512×512 (target ≤ 2),
Stein at M = 2048, d = 64 over one Cholesky factorisation + solve of that size (target ≤ 2), and
SSGE with the full ``eigh`` over SSGE with the top-J subspace solver at M = 2048, d = 10
(target ≥ 10). Beside them, SSGE with MIGE's options (``TUNED_SCORE_OPTIONS``) at M = 128,
d = 64 and 128 with the default solver over the same with ``eigensolver="eigh"`` (target ≤ 1: a
small batch must not pay for a subspace attempt). Results go to ``benchmarks/results/score_accuracy.{json,md}``.

    python benchmarks/score_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import mireg
from mireg.estimators import ScoreEstimator
from mireg.mige import TUNED_SCORE_OPTIONS
from mireg.testing import (
    ClosedFormDistribution,
    Gaussian,
    GaussianMixture,
    StandardNormal,
    relative_rmse,
    sample_with_score,
)

RESULTS = Path(__file__).parent / "results"
RULE = "|---|---|---|---|---|---|---|---|---|"

#: Settings beyond the defaults, per estimator name (estimators not listed run with defaults).
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "ssge": [{}, {"eigensolver": "eigh"}, {"threshold": 0.99, "eta": 0.0, "eigensolver": "eigh"}],
    "stein": [{}],
}


def distributions(d: int, generator: torch.Generator, dtype: torch.dtype) -> dict[str, ClosedFormDistribution]:
    """The three closed-form distributions of :mod:`mireg.testing`, parameters drawn from ``generator``."""
    return {
        "normal": StandardNormal(d, dtype=dtype),
        "gaussian": Gaussian(d, generator=generator, dtype=dtype),
        "mixture": GaussianMixture(d, generator=generator, dtype=dtype),
    }


def warm_up(estimator: ScoreEstimator, dist: ClosedFormDistribution, m: int, calls: int, seed: int) -> int:
    """Train a parametric estimator as MIGE does: ``calls`` score() calls on fresh ``[m, d]`` batches.

    Nonparametric estimators fit from scratch at every call: nothing to do, 0 calls. Returns the
    number of calls made.
    """
    if not estimator.parametric:
        return 0
    generator = torch.Generator().manual_seed(seed)
    for _ in range(calls):
        estimator.score(dist.sample(m, generator))
    return calls


def best_time(call: Callable[[], object], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls in seconds (the machine may be shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


#: Warm-up score() calls of a parametric estimator before it is measured (full run, --quick).
WARMUP_CALLS = (300, 100)


def accuracy_rows(quick: bool) -> list[dict[str, Any]]:
    """One row per estimator, setting, d, M and distribution (see the module docstring)."""
    warmup = WARMUP_CALLS[1] if quick else WARMUP_CALLS[0]
    dims = (2, 10) if quick else (2, 10, 40)
    sizes = (128, 512) if quick else (128, 512, 2048)
    rows = []
    for info in mireg.list_estimators("score"):
        for options in SETTINGS.get(info.name, [{}]):
            for d in dims:
                for m in sizes:
                    generator = torch.Generator().manual_seed(1000 * d + m)
                    for dist, law in distributions(d, generator, torch.float32).items():
                        estimator = mireg.score_estimator(info.name, **options)
                        calls = warm_up(estimator, law, m, warmup, seed=1000 * d + m + 1)
                        x, s = sample_with_score(law, m, generator)
                        queries, truth = sample_with_score(law, 512, generator)
                        estimate = estimator.score(x)
                        try:
                            out = relative_rmse(estimator.score(x, at=queries), truth)
                        except (NotImplementedError, ValueError):
                            out = None
                        seconds = best_time(functools.partial(estimator.score, x), 1 if m == 2048 else 3)
                        rows.append(
                            {
                                "estimator": info.name,
                                "options": options,
                                "distribution": dist,
                                "d": d,
                                "M": m,
                                "warmup_calls": calls,
                                "in_sample": relative_rmse(estimate, s),
                                "out_of_sample": out,
                                "seconds": seconds,
                            }
                        )
                        print(_format(rows[-1]), flush=True)
    return rows


def _format(row: dict[str, Any]) -> str:
    out = "n/a" if row["out_of_sample"] is None else f"{row['out_of_sample']:.3f}"
    return (
        f"| {row['estimator']} | {json.dumps(row['options'])} | {row['distribution']} | {row['d']} | {row['M']} "
        f"| {row['warmup_calls']} | {row['in_sample']:.3f} | {out} | {1000 * row['seconds']:.1f} |"
    )


def speed_ratios() -> dict[str, dict[str, float]]:
    """The side-by-side ratios (float32, best of 5 or 3 runs each; best of 50 at M = 128)."""
    generator = torch.Generator().manual_seed(0)
    ssge = mireg.score_estimator("ssge")
    x = torch.randn(512, 64, generator=generator)
    spd = x @ x.T / 64 + torch.eye(512)
    ssge_512 = best_time(lambda: ssge.score(x), 5)
    eigh_512 = best_time(lambda: torch.linalg.eigh(spd), 5)

    stein = mireg.score_estimator("stein")
    x = torch.randn(2048, 64, generator=generator)
    spd = x @ x.T / 64 + torch.eye(2048)
    rhs = torch.randn(2048, 64, generator=generator)
    stein_2048 = best_time(lambda: stein.score(x), 3)
    chol_2048 = best_time(lambda: torch.cholesky_solve(rhs, torch.linalg.cholesky(spd)), 3)

    full = mireg.score_estimator("ssge", eigensolver="eigh")
    x = torch.randn(2048, 10, generator=generator)
    full_2048 = best_time(lambda: full.score(x), 3)
    top_2048 = best_time(lambda: ssge.score(x), 3)
    small = {}
    for d in (64, 128):
        x = torch.randn(128, d, generator=generator)
        default = mireg.score_estimator("ssge", **TUNED_SCORE_OPTIONS["ssge"])
        direct = mireg.score_estimator("ssge", **TUNED_SCORE_OPTIONS["ssge"], eigensolver="eigh")
        default_s = best_time(functools.partial(default.score, x), 50)
        direct_s = best_time(functools.partial(direct.score, x), 50)
        small[f"ssge_mige_options_128_d{d}_default_over_eigh"] = {
            "default_s": default_s,
            "eigh_s": direct_s,
            "ratio": default_s / direct_s,
        }
    return {
        **small,
        "ssge_512_d64_over_eigh_512": {"ssge_s": ssge_512, "eigh_s": eigh_512, "ratio": ssge_512 / eigh_512},
        "stein_2048_d64_over_cholesky_solve_2048": {
            "stein_s": stein_2048,
            "cholesky_solve_s": chol_2048,
            "ratio": stein_2048 / chol_2048,
        },
        "ssge_2048_d10_full_eigh_over_subspace": {
            "eigh_s": full_2048,
            "subspace_s": top_2048,
            "ratio": full_2048 / top_2048,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d in {2, 10}, M in {128, 512}: under a minute")
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = (
        "| estimator | options | distribution | d | M | warm-up calls | rel. RMSE in-sample | out-of-sample "
        "| ms/call |"
    )
    print(header + "\n" + RULE, flush=True)
    rows = accuracy_rows(args.quick)
    ratios = speed_ratios()
    lines = [
        f"SSGE (defaults) at M=512, d=64 / one eigh 512x512: "
        f"{ratios['ssge_512_d64_over_eigh_512']['ratio']:.2f} (target <= 2)",
        f"Stein (defaults) at M=2048, d=64 / one Cholesky solve 2048: "
        f"{ratios['stein_2048_d64_over_cholesky_solve_2048']['ratio']:.2f} (target <= 2)",
        f"SSGE full eigh / subspace at M=2048, d=10: "
        f"{ratios['ssge_2048_d10_full_eigh_over_subspace']['ratio']:.1f}x (target >= 10)",
        *(
            f"SSGE (MIGE options) at M=128, d={d}, default solver / eigh solver: "
            f"{ratios[f'ssge_mige_options_128_d{d}_default_over_eigh']['ratio']:.2f} (target <= 1)"
            for d in (64, 128)
        ),
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    name = "score_accuracy_quick" if args.quick else "score_accuracy"
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(), "threads": 1}
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "ratios": ratios}, indent=2))
    table = [header, RULE, *(_format(row) for row in rows)]
    (RESULTS / f"{name}.md").write_text(
        "# Score estimator accuracy (float32, one thread)\n\n" + "\n".join(table) + "\n\n" + "\n\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
