"""The paper's Figure 1: MI and its gradient on correlated Gaussians, MIGE against the bounds.

x, ε ~ N(0, I_d), y = ρx + sqrt(1−ρ²)ε with ρ a leaf tensor: I = −(d/2) log(1−ρ²) and
dI/dρ = ρd/(1−ρ²). For every d, ρ on a grid over (−0.99, 0.99), batch size and seed:

* MIGE variants put their estimate of dI/dρ into ``ρ.grad`` directly: the default (whitened
  batches, Stein-calibrated kef with a local diagonal RBF kernel), the same with SSGE, SSGE without
  calibration, the paper's setting (SSGE, threshold 0.99, raw coordinates), and the Stein estimator
  whitened and in the paper's setting;
* on the warped toy (each coordinate mapped by t ↦ t + 0.4t³: the same I, a non-Gaussian joint),
  default MIGE and MIGE with SSGE against MIGE on the Gaussian-fit score, the baseline they must beat;
* MIGE with each kscore estimator (``KSCORE_VARIANTS``, when the mireg-kscore plugin is installed)
  on the Gaussian, the warped and the heavy-tailed toy, the last also with the default, SSGE and the
  Gaussian fit;
* the heavy-tailed toy: x and ε with i.i.d. Student-t coordinates (3 degrees of freedom) through
  the same mixing y = ρx + sqrt(1−ρ²)ε. Coordinates are independent, so I = d·I₁(ρ) with
  I₁ = h(y₁) − h(ε₁) − log sqrt(1−ρ²); its reference (:func:`heavy_tailed_truth`) is a float64
  quadrature of the density of y₁ (a convolution of two scaled t densities) on a sinh-spaced grid,
  differentiated in ρ by autograd (3001 and 6001 grid points agree to 5e-5 relative in dI/dρ at
  ρ ∈ {0.5, 0.9, 0.99}; the under-resolved far tail of the convolution limits it). The same
  quadrature with Gaussian densities reproduces −(1/2) log(1−ρ²) and ρ/(1−ρ²); that check is
  printed and stored with the results;
* the bound estimators (MINE, MINE-f, InfoNCE) first train their critic at that ρ, then report
  their MI estimate and the gradient of the bound w.r.t. ρ through the reparameterised samples.

Writes ``benchmarks/results/toy_gradient.json``, a markdown table of estimate/true ratios, one
PNG per batch size (top row: MI estimates against the truth; bottom row: gradient estimates on
the Gaussian toy, mean ± std over seeds, against the analytic gradient) and one per batch size of
the ratio estimate/truth on the warped and heavy-tailed toys (``toy_gradient_ratio_b{M}.png``).
``--tag`` writes ``toy_gradient_<tag>.*`` instead; ``--dims``, ``--rhos``, ``--batches``,
``--seeds`` override the grid, ``--mige-only`` skips the bound estimators, ``--only`` keeps the
MIGE runs whose label contains its text (repeatable), and ``--step-cost 20x128,20x512``
adds the CPU time (``time.process_time``, one thread) of one MIGE step with SSGE and each kscore variant
over default MIGE at each d × batch (interleaved round by round, median and quartiles of the ratios).

    python benchmarks/toy_gradient.py [--quick] [--mige-only] [--tag NAME] [--dims 5,10] ...
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Callable
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
    warp,
)

RESULTS = Path(__file__).parent / "results"

MIGE_VARIANTS: dict[str, dict[str, Any]] = {
    "MIGE (default: kef)": {},
    "MIGE (SSGE)": {"score": "ssge"},
    "MIGE (SSGE, uncalibrated)": {"score": "ssge", "calibrate": "none"},
    "MIGE (SSGE, paper)": {
        "score": "ssge",
        "precondition": "none",
        "calibrate": "none",
        "score_options": {"threshold": 0.99, "eta": 0.0, "bandwidth_multiplier": 1.0, "eigensolver": "eigh"},
    },
    "MIGE (Stein)": {"score": "stein"},
    "MIGE (Stein, paper)": {"score": "stein", "precondition": "none", "calibrate": "none"},
}
#: The bound estimators and their options. MINE and MINE-f use 32 shifted negatives per row: their
#: concat critic on all B(B-1) pairs costs ~30x more per step (benchmarks/mi_bounds.py) and would
#: not fit the 15-minute budget of the full run.
#: MIGE on the warped toy: every coordinate of x and y mapped by t ↦ t + 0.4 t³, which leaves I and
#: dI/dρ unchanged but makes the joint non-Gaussian; the Gaussian-fit score is the baseline that a
#: score estimator must beat there (on the plain toy, calibrated, it would be exact).
WARPED_VARIANTS: dict[str, dict[str, Any]] = {
    "MIGE (default: kef), warped toy": {},
    "MIGE (SSGE), warped toy": {"score": "ssge"},
    "MIGE (Gaussian fit), warped toy": {"score": FittedGaussianScore()},
}
#: MIGE with each kscore estimator: with the plugin's whitened options (lam 1e-3,
#: the "whitened" bandwidth rule that follows d and the batch size) and with the fixed options measured
#: best at batch 512, d <= 32 (whitened batches, so a fixed bandwidth is in units of the batch's standard
#: deviation; too local at batch 128: see plugins/kscore/README.md and benchmarks/results/toy_gradient_kscore*.md).
KSCORE_VARIANTS: dict[str, dict[str, Any]] = {
    "kef (curl-free RBF, whitened rule)": {"kernel": "curlfree-rbf", "cg_tol": 1e-3},
    "nu-method (whitened rule)": {},
    "nu-method": {"lam": 1e-3, "kernel": "curlfree-rbf", "bandwidth": 2.0},
    "landweber": {"lam": 0.03, "kernel": "curlfree-rbf", "bandwidth": 2.0},
    "kef": {"lam": 1e-3, "kernel": "curlfree-rbf", "bandwidth": 2.0},
    "kef (diagonal RBF, Cholesky)": {"lam": 1e-5, "kernel": "diagonal-rbf", "bandwidth": 2.5},
    "spectral-cutoff": {"lam": 1e-5, "kernel": "diagonal-rbf", "bandwidth": 2.5},
}
#: Baselines also run on the heavy-tailed toy.
HEAVY_BASELINES: dict[str, dict[str, Any]] = {
    "MIGE (default: kef), heavy-tailed toy": {},
    "MIGE (SSGE), heavy-tailed toy": {"score": "ssge"},
    "MIGE (Gaussian fit), heavy-tailed toy": {"score": FittedGaussianScore()},
}
TOYS = ("gaussian", "warped", "heavy-tailed")
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


def student_t(n: int, d: int, generator: torch.Generator, dof: int = 3) -> Tensor:
    """``[n, d]`` i.i.d. Student-t draws (float64): a normal over sqrt(χ²_dof / dof)."""
    normal = torch.randn(n, d, generator=generator, dtype=torch.float64)
    chi2 = torch.randn(n, d, dof, generator=generator, dtype=torch.float64).pow(2).sum(-1)
    return normal / (chi2 / dof).sqrt()


def heavy_tailed_sample(rho: Tensor, d: int, m: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """x, ε with Student-t(3) coordinates and y = ρx + sqrt(1−ρ²)ε, ``[m, d]`` float32, differentiable in ρ."""
    x = student_t(m, d, generator).float()
    noise = student_t(m, d, generator).float()
    return x, rho * x + (1 - rho.pow(2)).sqrt() * noise


def _log_t3(v: Tensor) -> Tensor:
    """log density of Student-t with 3 degrees of freedom."""
    return math.log(2 / (math.pi * math.sqrt(3))) - 2 * torch.log1p(v.pow(2) / 3)


def _log_normal(v: Tensor) -> Tensor:
    return -0.5 * v.pow(2) - 0.5 * math.log(2 * math.pi)


@functools.lru_cache(maxsize=64)
def quadrature_mi(rho: float, log_density: Callable[[Tensor], Tensor], points: int = 3001) -> tuple[float, float]:
    """I₁(ρ) and dI₁/dρ of one coordinate pair, y = ρx + sqrt(1−ρ²)ε with x, ε i.i.d. of ``log_density``.

    I₁ = h(y) − h(ε) − log s with s = sqrt(1−ρ²). The density of y is the convolution
    p_y(u) = ∫ p(w) p((u − a w)/b)/b dw with (a, b) = (min(|ρ|, s), max(|ρ|, s)) (x and ε are
    exchangeable and p is symmetric), so the integrand is never narrower than b ≥ 1/√2. All
    integrals use the grid w = sinh(τ), τ uniform on [−9, 9] (|w| up to ~4000 for the t tails,
    spacing ~0.006 near 0) with trapezoidal weights, in float64; autograd gives the derivative.
    """
    tau = torch.linspace(-9.0, 9.0, points, dtype=torch.float64)
    grid, weights = torch.sinh(tau), torch.cosh(tau) * (tau[1] - tau[0])
    weights[0] /= 2
    weights[-1] /= 2
    r = torch.tensor(rho, dtype=torch.float64, requires_grad=True)
    s = (1 - r.pow(2)).sqrt()
    a, b = torch.minimum(r.abs(), s), torch.maximum(r.abs(), s)
    log_p = log_density(grid)
    log_joint = log_p[None, :] + log_density((grid[:, None] - a * grid[None, :]) / b) - b.log()  # [u, w]
    density_y = (log_joint.exp() * weights).sum(-1)
    entropy_y = -(weights * density_y * density_y.clamp_min(1e-300).log()).sum()
    entropy_noise = -(weights * log_p.exp() * log_p).sum()
    mi = entropy_y - entropy_noise - s.log()
    (grad,) = torch.autograd.grad(mi, r)
    return float(mi.detach()), float(grad)


def heavy_tailed_truth(rho: float, d: int) -> tuple[float, float]:
    """I and dI/dρ of the heavy-tailed toy: d times the one-coordinate quadrature (see :func:`quadrature_mi`)."""
    mi, grad = quadrature_mi(rho, _log_t3)
    return d * mi, d * grad


def quadrature_check(rhos: list[float]) -> float:
    """Largest relative error of the quadrature on Gaussians (where I₁ and dI₁/dρ are closed forms)."""
    worst = 0.0
    for rho in rhos:
        if rho == 0:
            continue
        mi, grad = quadrature_mi(rho, _log_normal)
        errors = (mi / correlated_gaussian_mi(1, rho) - 1, grad / correlated_gaussian_mi_grad(1, rho) - 1)
        worst = max(worst, *(abs(e) for e in errors))
    return worst


def mige_gradients(
    options: dict[str, Any], d: int, rho: float, m: int, seeds: int, *, toy: str = "gaussian"
) -> list[float]:
    mi = mireg.mi_gradient_estimator("mige", **options)
    grads = []
    for seed in range(seeds):
        r = torch.tensor(rho, requires_grad=True)
        if toy == "heavy-tailed":
            x, y = heavy_tailed_sample(r, d, m, torch.Generator().manual_seed(seed))
        else:
            x, y = sample(r, d, m, torch.Generator().manual_seed(seed))
        if toy == "warped":
            x, y = warp(x), warp(y)
        mi(x, y).backward()
        assert r.grad is not None
        grads.append(float(r.grad))
    return grads


def step_cost_ratios(d: int, m: int, rounds: int, only: list[str] | None = None) -> dict[str, dict[str, float]]:
    """CPU time (``time.process_time``) of one MIGE step (forward + backward on the warped toy, d,
    batch m) with SSGE and each kscore variant (those whose label contains a word of ``only``, when
    given) over the same step with default MIGE, interleaved round by round: median and quartiles
    of the per-round ratios, and the median seconds."""
    installed = {info.name for info in mireg.list_estimators("score")}
    estimators = {
        "MIGE (default: kef)": mireg.mi_gradient_estimator("mige"),
        "MIGE (SSGE)": mireg.mi_gradient_estimator("mige", score="ssge"),
    }
    for label, score_options in KSCORE_VARIANTS.items():
        name = label.split(" ")[0]
        if name in installed and selected(f"MIGE ({label})", only):
            estimators[f"MIGE ({label})"] = mireg.mi_gradient_estimator("mige", score=name, score_options=score_options)
    times: dict[str, list[float]] = {label: [] for label in estimators}
    for round_ in range(rounds):
        for label, mi in estimators.items():
            r = torch.tensor(0.5, requires_grad=True)
            x, y = sample(r, d, m, torch.Generator().manual_seed(round_))
            x, y = warp(x), warp(y)
            start = time.process_time()
            mi(x, y).backward()
            times[label].append(time.process_time() - start)
    base = times["MIGE (default: kef)"]
    out = {}
    for label, values in times.items():
        ratios = torch.tensor([a / b for a, b in zip(values, base, strict=True)])
        low, mid, high = (float(v) for v in ratios.quantile(torch.tensor([0.25, 0.5, 0.75])))
        seconds = float(torch.tensor(values).median())
        out[label] = {"median_ratio": mid, "q25": low, "q75": high, "median_seconds": seconds}
    return out


def selected(label: str, only: list[str] | None) -> bool:
    """Whether ``label`` contains one of the words of ``only`` (every label when ``only`` is None)."""
    return only is None or any(word in label for word in only)


def mige_runs(only: list[str] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, toy, MIGE options) of every MIGE run whose label contains a word of ``only`` (all when
    None); the kscore ones when the plugin is installed."""
    runs = [(label, "gaussian", options) for label, options in MIGE_VARIANTS.items()]
    runs += [(label, "warped", options) for label, options in WARPED_VARIANTS.items()]
    runs += [(label, "heavy-tailed", options) for label, options in HEAVY_BASELINES.items()]
    installed = {info.name for info in mireg.list_estimators("score")}
    for label, score_options in KSCORE_VARIANTS.items():
        name = label.split(" ")[0]
        if name in installed:
            for toy in TOYS:
                suffix = "" if toy == "gaussian" else f", {toy} toy"
                runs.append((f"MIGE ({label}){suffix}", toy, {"score": name, "score_options": score_options}))
    return [run for run in runs if selected(run[0], only)]


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
    parser.add_argument("--tag", help="write toy_gradient_<tag>.* (default: toy_gradient.*)")
    parser.add_argument("--mige-only", action="store_true", help="skip the bound estimators")
    parser.add_argument("--dims", help="comma-separated d, overriding the grid")
    parser.add_argument("--rhos", help="comma-separated ρ, overriding the grid")
    parser.add_argument("--batches", help="comma-separated batch sizes, overriding the grid")
    parser.add_argument("--seeds", type=int, help="seeds per cell, overriding the grid")
    parser.add_argument("--only", action="append", help="keep the MIGE runs whose label contains this (repeatable)")
    parser.add_argument(
        "--step-cost",
        nargs="?",
        const="32x512",
        help="also take the CPU time of MIGE steps at these comma-separated d x batch cells (default 32x512)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        dims, rhos, batches, seeds, steps = [5, 20], [-0.9, 0.5, 0.99], [128], 3, 150
    else:
        dims = [5, 10, 20, 32]
        rhos = [-0.99, -0.9, -0.7, -0.5, -0.2, 0.0, 0.2, 0.5, 0.7, 0.9, 0.99]
        batches, seeds, steps = [128, 512], 10, 500
    dims = [int(v) for v in args.dims.split(",")] if args.dims else dims
    rhos = [float(v) for v in args.rhos.split(",")] if args.rhos else rhos
    batches = [int(v) for v in args.batches.split(",")] if args.batches else batches
    seeds = args.seeds or seeds
    check = quadrature_check(rhos)
    print(f"quadrature reference on Gaussians: largest relative error of I and dI/dρ {check:.1e}", flush=True)
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    only = args.only
    runs = mige_runs(only)
    for d in dims:
        for rho in rhos:
            true_mi, true_grad = truth(rho, d)
            base = {"d": d, "rho": rho, "true_mi": true_mi, "true_grad": true_grad}
            heavy_mi, heavy_grad = heavy_tailed_truth(rho, d)
            for label, toy, options in runs:
                cell = {**base, "true_mi": heavy_mi, "true_grad": heavy_grad} if toy == "heavy-tailed" else base
                for m in batches:
                    mean, std = stats(mige_gradients(options, d, rho, m, seeds, toy=toy))
                    records.append(
                        {**cell, "method": label, "toy": toy, "batch": m, "grad_mean": mean, "grad_std": std}
                    )
            for label, (name, options) in ({} if args.mige_only else BOUNDS).items():
                for m, result in bound_run(name, options, d, rho, batches, seeds, steps).items():
                    g_mean, g_std = stats(result["grad"])
                    v_mean, v_std = stats(result["mi"])
                    records.append(
                        {
                            **base,
                            "method": label,
                            "batch": m,
                            "grad_mean": g_mean,
                            "grad_std": g_std,
                            "mi_mean": v_mean,
                            "mi_std": v_std,
                        }
                    )
            print(f"d={d} rho={rho:+.2f} done at {time.perf_counter() - started:.0f} s", flush=True)
    elapsed = time.perf_counter() - started
    cells = [tuple(int(v) for v in cell.split("x")) for cell in args.step_cost.split(",")] if args.step_cost else []
    costs = {f"{d}x{m}": step_cost_ratios(d, m, 7, only) for d, m in cells}
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "dims": dims,
        "rhos": rhos,
        "batches": batches,
        "seeds": seeds,
        "critic_steps": steps,
        "seconds": elapsed,
        "torch": torch.__version__,
        "threads": 1,
        "heavy_tailed_reference": "float64 quadrature (quadrature_mi), autograd in rho",
        "quadrature_gaussian_check_max_rel_error": check,
    }
    name = "toy_gradient" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "records": records, "step_cost": costs}, indent=1))
    table = ratio_table(records, dims, rhos, batches)
    for cost_cell, cost in costs.items():
        cost_dim, cost_batch = cost_cell.split("x")
        table += (
            f"\nMIGE step (forward + backward, warped toy, d = {cost_dim}, batch {cost_batch}), CPU time "
            "(one thread) over default MIGE (kef), interleaved, 7 rounds:\n\n"
            "| method | median ratio | IQR | median CPU ms |\n|---|---|---|---|\n"
            + "".join(
                f"| {label} | {c['median_ratio']:.2f} | {c['q25']:.2f}-{c['q75']:.2f} "
                f"| {1000 * c['median_seconds']:.0f} |\n"
                for label, c in cost.items()
            )
        )
    (args.out / f"{name}.md").write_text(table)
    print(table)
    for m in batches:
        plot([r for r in records if r.get("toy", "gaussian") == "gaussian"], dims, m, args.out / f"{name}_b{m}.png")
        plot_ratios(records, dims, m, args.out / f"{name}_ratio_b{m}.png")
    print(f"total {elapsed:.0f} s; wrote {args.out}/{name}.{{json,md}} and PNGs")


def ratio_table(records: list[dict[str, Any]], dims: list[int], rhos: list[float], batches: list[int]) -> str:
    """Markdown: mean estimated / true gradient per method, batch, d and ρ (ρ = 0: estimate itself)."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    lines = [
        "| method | batch | d | " + " | ".join(f"ρ={rho:+.2f}" for rho in rhos) + " |",
        "|---|---|---|" + "---|" * len(rhos),
    ]
    index = {(r["method"], r["batch"], r["d"], r["rho"]): r for r in records}
    for method in methods:
        for m in batches:
            for d in dims:
                cells = []
                for rho in rhos:
                    r = index[(method, m, d, rho)]
                    cells.append(f"{r['grad_mean']:.2f}" if rho == 0 else f"{r['grad_mean'] / r['true_grad']:.3f}")
                lines.append(f"| {method} | {m} | {d} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines) + "\n\nCells: estimated dI/dρ divided by the true ρd/(1−ρ²) (heavy-tailed toy: by the "
        "quadrature reference), mean over seeds (at ρ = 0, where the truth is 0, the mean estimate itself).\n"
    )


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
            for row, key in ((0, "mi"), (1, "grad")):  # MIGE runs have no MI estimate
                if f"{key}_mean" in mine[0]:
                    axes[row][col].errorbar(
                        xs,
                        [r[f"{key}_mean"] for r in mine],
                        yerr=[r[f"{key}_std"] for r in mine],
                        label=method,
                        capsize=2,
                        marker=".",
                    )
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


def plot_ratios(records: list[dict[str, Any]], dims: list[int], m: int, path: Path) -> None:
    """Estimated / true dI/dρ against ρ (ρ ≠ 0) on the warped and heavy-tailed toys, one panel per toy and d."""
    toys = ("warped", "heavy-tailed")
    fig, axes = plt.subplots(len(toys), len(dims), figsize=(4.2 * len(dims), 7), squeeze=False)
    for row, toy in enumerate(toys):
        for col, d in enumerate(dims):
            mine = [r for r in records if r.get("toy") == toy and r["d"] == d and r["batch"] == m and r["rho"] != 0]
            ax = axes[row][col]
            for method in dict.fromkeys(r["method"] for r in mine):
                cells = sorted((r for r in mine if r["method"] == method), key=lambda r: r["rho"])
                ax.plot(
                    [r["rho"] for r in cells],
                    [r["grad_mean"] / r["true_grad"] for r in cells],
                    marker=".",
                    label=method.removesuffix(f", {toy} toy"),
                )
            ax.axhspan(0.95, 1.05, color="0.9")
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_title(f"{toy} toy, d = {d}, batch {m}")
            ax.set_xlabel("ρ")
            ax.set_ylabel("estimate / truth")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
