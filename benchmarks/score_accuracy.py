"""Accuracy and speed of every installed score estimator against closed-form scores.

For each registered score estimator (``mireg.list_estimators("score")``), setting, distribution,
dimension d and batch size M it measures the relative RMSE of the score,
``sqrt(mean |ŝ - s|²) / sqrt(mean |s|²)``, at the samples (in-sample) and at fresh points
(out-of-sample, where the estimator supports ``at``), and the time per call. Distributions:

* ``normal``: N(0, I), the main use case (MIGE whitens batches before scoring them);
* ``gaussian``: N(μ, Σ), Σ with eigenvalues log-spaced in [0.25, 4] in a random basis;
* ``mixture``: 0.3 N(u, I) + 0.7 N(-u, I) with |u| = 1.5.

It also prints three speed ratios measured side by side in the same run (float32, one thread):
SSGE fit+evaluate at M = 512, d = 64 over one ``torch.linalg.eigh`` of 512×512 (target ≤ 2),
Stein at M = 2048, d = 64 over one Cholesky factorisation + solve of that size (target ≤ 2), and
SSGE with the full ``eigh`` over SSGE with the top-J subspace solver at M = 2048, d = 10
(target ≥ 10). Results go to ``benchmarks/results/score_accuracy.{json,md}``.

    python benchmarks/score_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import mireg

RESULTS = Path(__file__).parent / "results"
Sampler = Callable[[int], tuple[Tensor, Tensor]]

#: Settings beyond the defaults, per estimator name (estimators not listed run with defaults).
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "ssge": [{}, {"eigensolver": "eigh"}, {"threshold": 0.99, "eta": 0.0, "eigensolver": "eigh"}],
    "stein": [{}],
}


def distributions(d: int, generator: torch.Generator, dtype: torch.dtype) -> dict[str, Sampler]:
    """Samplers returning ``(x [M, d], score(x) [M, d])`` for the three closed-form distributions."""
    f64 = torch.float64
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=f64))
    variances = torch.logspace(math.log10(0.25), math.log10(4.0), d, dtype=f64)
    mean = torch.randn(d, generator=generator, dtype=f64)
    root = basis * variances.sqrt()  # Σ = root rootᵀ
    precision = basis @ torch.diag(1 / variances) @ basis.T
    u = torch.randn(d, generator=generator, dtype=f64)
    u = 1.5 * u / u.norm()

    def normal(m: int) -> tuple[Tensor, Tensor]:
        x = torch.randn(m, d, generator=generator, dtype=f64)
        return x.to(dtype), (-x).to(dtype)

    def gaussian(m: int) -> tuple[Tensor, Tensor]:
        x = mean + torch.randn(m, d, generator=generator, dtype=f64) @ root.T
        return x.to(dtype), (-(x - mean) @ precision).to(dtype)

    def mixture(m: int) -> tuple[Tensor, Tensor]:
        first = torch.rand(m, generator=generator, dtype=f64) < 0.3
        x = torch.randn(m, d, generator=generator, dtype=f64) + torch.where(first[:, None], u, -u)
        logit = math.log(0.3 / 0.7) - 0.5 * ((x - u) ** 2).sum(1) + 0.5 * ((x + u) ** 2).sum(1)
        r = torch.sigmoid(logit)[:, None]
        return x.to(dtype), (-(x - u) * r - (x + u) * (1 - r)).to(dtype)

    return {"normal": normal, "gaussian": gaussian, "mixture": mixture}


def relative_rmse(estimate: Tensor, truth: Tensor) -> float:
    """``sqrt(mean |ŝ - s|²) / sqrt(mean |s|²)`` over rows of ``[N, d]`` tensors."""
    error = (estimate.double() - truth.double()).pow(2).sum(-1).mean()
    return float((error / truth.double().pow(2).sum(-1).mean()).sqrt())


def best_time(call: Callable[[], object], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls in seconds (the machine may be shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def accuracy_rows(quick: bool) -> list[dict[str, Any]]:
    dims = (2, 10) if quick else (2, 10, 40)
    sizes = (128, 512) if quick else (128, 512, 2048)
    rows = []
    for info in mireg.list_estimators("score"):
        for options in SETTINGS.get(info.name, [{}]):
            for d in dims:
                for m in sizes:
                    generator = torch.Generator().manual_seed(1000 * d + m)
                    for dist, sample in distributions(d, generator, torch.float32).items():
                        estimator = mireg.score_estimator(info.name, **options)
                        x, s = sample(m)
                        queries, truth = sample(512)
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
        f"| {row['in_sample']:.3f} | {out} | {1000 * row['seconds']:.1f} |"
    )


def speed_ratios() -> dict[str, dict[str, float]]:
    """The three side-by-side ratios (float32, best of 5 or 3 runs each)."""
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
    return {
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
    header = "| estimator | options | distribution | d | M | rel. RMSE in-sample | out-of-sample | ms/call |"
    print(header + "\n|---|---|---|---|---|---|---|---|", flush=True)
    rows = accuracy_rows(args.quick)
    ratios = speed_ratios()
    lines = [
        f"SSGE (defaults) at M=512, d=64 / one eigh 512x512: "
        f"{ratios['ssge_512_d64_over_eigh_512']['ratio']:.2f} (target <= 2)",
        f"Stein (defaults) at M=2048, d=64 / one Cholesky solve 2048: "
        f"{ratios['stein_2048_d64_over_cholesky_solve_2048']['ratio']:.2f} (target <= 2)",
        f"SSGE full eigh / subspace at M=2048, d=10: "
        f"{ratios['ssge_2048_d10_full_eigh_over_subspace']['ratio']:.1f}x (target >= 10)",
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    name = "score_accuracy_quick" if args.quick else "score_accuracy"
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(), "threads": 1}
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "ratios": ratios}, indent=2))
    table = [header, "|---|---|---|---|---|---|---|---|", *(_format(row) for row in rows)]
    (RESULTS / f"{name}.md").write_text(
        "# Score estimator accuracy (float32, one thread)\n\n" + "\n".join(table) + "\n\n" + "\n\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
