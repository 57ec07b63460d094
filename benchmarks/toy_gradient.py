"""The paper's Figure 1: MI and its gradient on correlated Gaussians, MIGE against the bounds.

x, ε ~ N(0, I_d), y = ρx + sqrt(1−ρ²)ε with ρ a leaf tensor: I = −(d/2) log(1−ρ²) and
dI/dρ = ρd/(1−ρ²). For every d, ρ on a grid over (−0.99, 0.99), batch size and seed:

* MIGE variants put their estimate of dI/dρ into ``ρ.grad`` directly: the default (whitened
  batches, Stein-calibrated SSGE), the same without calibration, the paper's setting (SSGE,
  threshold 0.99, raw coordinates), and the default and paper settings with the Stein estimator;
* on the warped toy (each coordinate mapped by t ↦ t + 0.4t³: the same I, a non-Gaussian joint),
  default MIGE against MIGE on the Gaussian-fit score, the baseline it must beat;
* the bound estimators (MINE, MINE-f, InfoNCE) first train their critic at that ρ, then report
  their MI estimate and the gradient of the bound w.r.t. ρ through the reparameterised samples.

Writes ``benchmarks/results/toy_gradient.json``, a markdown table of estimate/true ratios, and one
PNG per batch size (top row: MI estimates against the truth; bottom row: gradient estimates,
mean ± std over seeds, against the analytic gradient).

    python benchmarks/toy_gradient.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor

import mireg
from mireg.testing import (
    FittedGaussianScore,
    correlated_gaussian_mi,
    correlated_gaussian_mi_grad,
    correlated_gaussians,
)

RESULTS = Path(__file__).parent / "results"

MIGE_VARIANTS: dict[str, dict[str, Any]] = {
    "MIGE (SSGE, default)": {"score": "ssge"},
    "MIGE (SSGE, uncalibrated)": {"score": "ssge", "calibrate": "none"},
    "MIGE (SSGE, paper)": {
        "score": "ssge",
        "precondition": "none",
        "calibrate": "none",
        "score_options": {"threshold": 0.99, "eta": 0.0, "bandwidth_multiplier": 1.0, "eigensolver": "eigh"},
    },
    "MIGE (Stein, default)": {"score": "stein"},
    "MIGE (Stein, paper)": {"score": "stein", "precondition": "none", "calibrate": "none"},
}
#: The bound estimators and their options. MINE and MINE-f use 32 shifted negatives per row: their
#: concat critic on all B(B-1) pairs costs ~30x more per step (benchmarks/mi_bounds.py) and would
#: not fit the 15-minute budget of the full run.
#: MIGE on the warped toy: every coordinate of x and y mapped by t ↦ t + 0.4 t³, which leaves I and
#: dI/dρ unchanged but makes the joint non-Gaussian; the Gaussian-fit score is the baseline that a
#: score estimator must beat there (on the plain toy, calibrated, it would be exact).
WARPED_VARIANTS: dict[str, dict[str, Any]] = {
    "MIGE (SSGE, default), warped toy": {"score": "ssge"},
    "MIGE (Gaussian fit), warped toy": {"score": FittedGaussianScore()},
}
BOUNDS: dict[str, tuple[str, dict[str, Any]]] = {
    "MINE": ("mine", {"negatives": 32}),
    "MINE-f": ("mine-f", {"negatives": 32}),
    "InfoNCE": ("infonce", {}),
}


def sample(rho: Tensor, d: int, m: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``x [m, d]`` and ``y = ρx + sqrt(1−ρ²)ε [m, d]``, differentiable in ``rho``."""
    return correlated_gaussians(m, d, rho, generator)


def truth(rho: float, d: int) -> tuple[float, float]:
    """True I and dI/dρ."""
    return correlated_gaussian_mi(d, rho), correlated_gaussian_mi_grad(d, rho)


def warp(t: Tensor) -> Tensor:
    """An invertible per-coordinate map: I(warp(x); warp(y)) = I(x; y)."""
    return t + 0.4 * t**3


def mige_gradients(
    options: dict[str, Any], d: int, rho: float, m: int, seeds: int, *, warped: bool = False
) -> list[float]:
    mi = mireg.mi_gradient_estimator("mige", **options)
    grads = []
    for seed in range(seeds):
        r = torch.tensor(rho, requires_grad=True)
        x, y = sample(r, d, m, torch.Generator().manual_seed(seed))
        if warped:
            x, y = warp(x), warp(y)
        mi(x, y).backward()
        grads.append(float(r.grad))
    return grads


def bound_run(
    name: str, options: dict[str, Any], d: int, rho: float, batches: list[int], seeds: int, steps: int
) -> dict[int, dict[str, list[float]]]:
    """Train the critic of ``name`` at ``rho`` (batch 128, Adam 1e-3), then per batch size and seed
    record the bound's value and its gradient w.r.t. ρ through the reparameterised samples."""
    torch.manual_seed(1000 + d)
    mi = mireg.mi_gradient_estimator(name, **options)
    generator = torch.Generator().manual_seed(10_000)
    r = torch.tensor(rho)
    mi(*sample(r, d, 2, generator))  # materialise a lazily sized critic before the optimizer sees it
    optimizer = torch.optim.Adam(mi.parameters(), lr=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        (-mi(*sample(r, d, 128, generator))).backward()
        optimizer.step()
    out: dict[int, dict[str, list[float]]] = {}
    for m in batches:
        values, grads = [], []
        for seed in range(seeds):
            leaf = torch.tensor(rho, requires_grad=True)
            x, y = sample(leaf, d, m, torch.Generator().manual_seed(seed))
            estimate = mi.estimate(x, y)
            values.append(float(estimate.detach()))
            (grad,) = torch.autograd.grad(estimate, leaf)
            grads.append(float(grad))
        out[m] = {"mi": values, "grad": grads}
    return out


def stats(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, few seeds: under a minute")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        dims, rhos, batches, seeds, steps = [5, 20], [-0.9, 0.5, 0.99], [128], 3, 150
    else:
        dims = [5, 10, 20, 32]
        rhos = [-0.99, -0.9, -0.7, -0.5, -0.2, 0.0, 0.2, 0.5, 0.7, 0.9, 0.99]
        batches, seeds, steps = [128, 512], 10, 500
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    for d in dims:
        for rho in rhos:
            true_mi, true_grad = truth(rho, d)
            base = {"d": d, "rho": rho, "true_mi": true_mi, "true_grad": true_grad}
            for warped, variants in ((False, MIGE_VARIANTS), (True, WARPED_VARIANTS)):
                for label, options in variants.items():
                    for m in batches:
                        mean, std = stats(mige_gradients(options, d, rho, m, seeds, warped=warped))
                        records.append({**base, "method": label, "batch": m, "grad_mean": mean, "grad_std": std})
            for label, (name, options) in BOUNDS.items():
                for m, result in bound_run(name, options, d, rho, batches, seeds, steps).items():
                    g_mean, g_std = stats(result["grad"])
                    v_mean, v_std = stats(result["mi"])
                    records.append({**base, "method": label, "batch": m, "grad_mean": g_mean, "grad_std": g_std,
                                    "mi_mean": v_mean, "mi_std": v_std})
            print(f"d={d} rho={rho:+.2f} done at {time.perf_counter() - started:.0f} s", flush=True)
    elapsed = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"dims": dims, "rhos": rhos, "batches": batches, "seeds": seeds, "critic_steps": steps,
            "seconds": elapsed, "torch": torch.__version__, "threads": 1}
    (args.out / "toy_gradient.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    table = ratio_table(records, dims, rhos, batches)
    (args.out / "toy_gradient.md").write_text(table)
    print(table)
    for m in batches:
        plot(records, dims, m, args.out / f"toy_gradient_b{m}.png")
    print(f"total {elapsed:.0f} s; wrote {args.out}/toy_gradient.{{json,md}} and PNGs")


def ratio_table(records: list[dict[str, Any]], dims: list[int], rhos: list[float], batches: list[int]) -> str:
    """Markdown: mean estimated / true gradient per method, batch, d and ρ (ρ = 0: estimate itself)."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    lines = ["| method | batch | d | " + " | ".join(f"ρ={rho:+.2f}" for rho in rhos) + " |",
             "|---|---|---|" + "---|" * len(rhos)]
    index = {(r["method"], r["batch"], r["d"], r["rho"]): r for r in records}
    for method in methods:
        for m in batches:
            for d in dims:
                cells = []
                for rho in rhos:
                    r = index[(method, m, d, rho)]
                    cells.append(f"{r['grad_mean']:.2f}" if rho == 0 else f"{r['grad_mean'] / r['true_grad']:.3f}")
                lines.append(f"| {method} | {m} | {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nCells: estimated dI/dρ divided by the true ρd/(1−ρ²), mean over seeds " \
        "(at ρ = 0, where the truth is 0, the mean estimate itself).\n"


def plot(records: list[dict[str, Any]], dims: list[int], m: int, path: Path) -> None:
    fig, axes = plt.subplots(2, len(dims), figsize=(4.2 * len(dims), 7), squeeze=False)
    for col, d in enumerate(dims):
        rows = [r for r in records if r["d"] == d and r["batch"] == m]
        rhos = sorted({r["rho"] for r in rows})
        fine = torch.linspace(min(rhos), max(rhos), 200).tolist()
        axes[0][col].plot(fine, [truth(x, d)[0] for x in fine], "k-", label="true MI")
        axes[1][col].plot(fine, [truth(x, d)[1] for x in fine], "k-", label="true gradient")
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["rho"])
            xs = [r["rho"] for r in mine]
            if "mi_mean" in mine[0]:
                axes[0][col].errorbar(xs, [r["mi_mean"] for r in mine], yerr=[r["mi_std"] for r in mine],
                                      label=method, capsize=2, marker=".")
            axes[1][col].errorbar(xs, [r["grad_mean"] for r in mine], yerr=[r["grad_std"] for r in mine],
                                  label=method, capsize=2, marker=".")
        axes[0][col].set_title(f"d = {d}, batch {m}")
        axes[0][col].set_ylabel("MI (nats)")
        axes[1][col].set_ylabel("dI/dρ (symlog)")
        axes[1][col].set_xlabel("ρ")
        axes[1][col].set_yscale("symlog", linthresh=d)  # the gradient spans 0 to ~ρd/(1−ρ²) ≈ 50d
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
