"""MI values against the closed form: heat-flow MI (mireg.heat_flow) beside the Gaussian plug-in.

Problems, each at M = 512 rows and ``--seeds`` seeds (the same samples for every estimator):

* correlated Gaussians x, ε ~ N(0, I_d), y = ρ x + sqrt(1 − ρ²) ε, I = −(d/2) log(1 − ρ²), for
  d ∈ {1, 5, 20} and ρ ∈ {0, 0.5, 0.9, 0.99} (up to 39.2 nats; ρ = 0 is independence, I = 0,
  reported as absolute error and left out of the plot's log axes);
* the warped toy: every coordinate of x and y of the same problems mapped by t ↦ t + 0.4 t³
  (invertible per coordinate, so I is unchanged and the joint is not Gaussian).

Estimators (``ESTIMATORS``; a new column is one more entry, a function of (x, y, seed) -> nats):

* ``heat-flow stein 1x`` / ``stein 2x``: :func:`mireg.heat_flow.heat_flow_mi` with the Stein
  estimator (eta 0.1) at 1× / 2× the median bandwidth;
* ``heat-flow stein 2x ranks``: stein 2x on per-coordinate normal scores (``ranks=True``);
* ``heat-flow mige``: the value ``MIGE.estimate`` returns with MIGE's default score (SSGE with
  TUNED_SCORE_OPTIONS);
* ``gaussian plug-in``: ½ log det ratio of the sample covariances minus its exact Wishart bias
  (:func:`mireg.heat_flow.gaussian_plugin_mi`), exact in the mean on the Gaussians.

Seconds per estimate are the mean wall time of each call (one torch thread). ``--timing`` adds
the d = 5 + 5, M = 512 Gaussian (ρ = 0.9) timed alone: ``--timing`` rounds, estimators
interleaved within each round, median and spread of the rounds, as wall time and as the process's
CPU time (on a shared machine the wall time includes waiting for a core). Samples are float32.

    nice -n 10 python benchmarks/mi_values.py           # writes benchmarks/results/mi_values.{json,md,png}
    nice -n 10 python benchmarks/mi_values.py --quick   # d = 5 only, 1 seed, heat-flow stein 1x and plug-in
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import mireg
from mireg.heat_flow import gaussian_plugin_mi, heat_flow_mi
from mireg.testing import correlated_gaussian_mi, correlated_gaussians

RESULTS = Path(__file__).parent / "results"
Estimator = Callable[[Tensor, Tensor, int], float]


def warp(t: Tensor) -> Tensor:
    """An invertible per-coordinate map: I(warp(x); warp(y)) = I(x; y)."""
    return t + 0.4 * t**3


def heat_flow(score: str, grid: dict[str, Any], *, ranks: bool = False, **options: float) -> Estimator:
    estimator = mireg.score_estimator(score, **options)

    def run(x: Tensor, y: Tensor, seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        return float(heat_flow_mi(x, y, estimator, generator=generator, ranks=ranks, **grid))

    return run


def mige_value(x: Tensor, y: Tensor, seed: int) -> float:
    value = mireg.mi_gradient_estimator("mige", seed=seed).estimate(x, y)
    assert value is not None  # MIGE returns a value
    return float(value)


def plugin(x: Tensor, y: Tensor, seed: int) -> float:
    return float(gaussian_plugin_mi(x, y))


def estimators(grid: dict[str, Any]) -> dict[str, Estimator]:
    return {
        "heat-flow stein 1x": heat_flow("stein", grid, bandwidth_multiplier=1.0),
        "heat-flow stein 2x": heat_flow("stein", grid, bandwidth_multiplier=2.0),
        "heat-flow stein 2x ranks": heat_flow("stein", grid, ranks=True, bandwidth_multiplier=2.0),
        "heat-flow mige": mige_value,
        "gaussian plug-in": plugin,
    }


def sample(kind: str, m: int, d: int, rho: float, seed: int) -> tuple[Tensor, Tensor]:
    """Float64 draws (warped in float64), cast to float32, the dtype estimators are trained in."""
    x, y = correlated_gaussians(m, d, rho, torch.Generator().manual_seed(seed), dtype=torch.float64)
    x, y = (warp(x), warp(y)) if kind == "warped" else (x, y)
    return x.float(), y.float()


def run_problem(kind: str, d: int, rho: float, m: int, seeds: int, chosen: dict[str, Estimator]) -> list[dict]:
    """One row per estimator: the mean (and spread) over seeds and seconds per estimate."""
    truth = correlated_gaussian_mi(d, rho)
    values: dict[str, list[float]] = {name: [] for name in chosen}
    seconds: dict[str, list[float]] = {name: [] for name in chosen}
    for seed in range(seeds):
        x, y = sample(kind, m, d, rho, seed)
        for name, estimate in chosen.items():
            start = time.perf_counter()
            values[name].append(estimate(x, y, seed))
            seconds[name].append(time.perf_counter() - start)
    rows = []
    for name in chosen:
        mean = statistics.fmean(values[name])
        rows.append(
            {
                "problem": kind,
                "d": d,
                "rho": rho,
                "m": m,
                "estimator": name,
                "truth": truth,
                "values": values[name],
                "mean": mean,
                "std": statistics.stdev(values[name]) if seeds > 1 else 0.0,
                "error": mean - truth,
                "relative_error": (mean - truth) / truth if truth > 0 else None,
                "seconds": statistics.fmean(seconds[name]),
            }
        )
    return rows


def timing(chosen: dict[str, Estimator], rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per estimate at M = 512, d = 5 + 5 (ρ = 0.9), interleaved: median, min, max of wall and CPU time."""
    x, y = sample("gaussian", 512, 5, 0.9, 0)
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in chosen}
    for r in range(rounds):
        for name, estimate in chosen.items():
            wall, cpu = time.perf_counter(), time.process_time()
            estimate(x, y, r)
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    return {
        f"{name} ({clock})": {"median": statistics.median(t), "min": min(t), "max": max(t)}
        for name, clocks in times.items()
        for clock, t in clocks.items()
    }


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per estimator and problem: mean and max |relative error| where I >= 0.7, max |error| where I = 0."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["estimator"] for r in rows):
        for kind in ("gaussian", "warped"):
            mine = [r for r in rows if r["estimator"] == name and r["problem"] == kind]
            errors = [abs(r["relative_error"]) for r in mine if r["truth"] >= 0.7]
            if errors:
                out.setdefault(name, {})[f"{kind}_mean_abs_rel_error"] = statistics.fmean(errors)
                out[name][f"{kind}_max_abs_rel_error"] = max(errors)
            independent = [abs(r["error"]) for r in mine if r["truth"] == 0]
            if independent:
                out.setdefault(name, {})[f"{kind}_independent_max_abs_error"] = max(independent)
    return out


def relative(row: dict) -> str:
    """The relative error in percent, or the absolute error in nats where the truth is 0."""
    if row["relative_error"] is None:
        return f"{row['error']:+.3f} nats"
    return f"{100 * row['relative_error']:+.1f}%"


def markdown(rows: list[dict], summaries: dict, timings: dict | None) -> str:
    lines = [
        "| problem | d | ρ | truth | estimator | mean | std | rel. error | s / estimate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} | {r['d']} | {r['rho']} | {r['truth']:.3f} | {r['estimator']} | {r['mean']:.3f} | "
            f"{r['std']:.3f} | {relative(r)} | {r['seconds']:.2f} |"
        )
    lines += ["", "Mean (max) |relative error| over problems with I ≥ 0.7 nats; max |error| at I = 0 (ρ = 0):", ""]
    lines += ["| estimator | gaussian | warped | gaussian, I = 0 | warped, I = 0 |", "|---|---|---|---|---|"]
    for name, s in summaries.items():
        cells = [
            f"{100 * s[f'{k}_mean_abs_rel_error']:.1f}% ({100 * s[f'{k}_max_abs_rel_error']:.1f}%)"
            if f"{k}_mean_abs_rel_error" in s
            else ""
            for k in ("gaussian", "warped")
        ]
        cells += [
            f"{s[f'{k}_independent_max_abs_error']:.3f} nats" if f"{k}_independent_max_abs_error" in s else ""
            for k in ("gaussian", "warped")
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    if timings:
        lines += ["", "Seconds per estimate, M = 512, d = 5 + 5, interleaved rounds: median [min, max]", ""]
        lines += ["| estimator | median | min | max |", "|---|---|---|---|"]
        lines += [f"| {n} | {t['median']:.3f} | {t['min']:.3f} | {t['max']:.3f} |" for n, t in timings.items()]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], m: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=True)
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    markers = dict(zip(names, "osD^vx+*", strict=False))
    for ax, kind in zip(axes, ("gaussian", "warped"), strict=True):
        mine = [r for r in rows if r["problem"] == kind and r["truth"] > 0]
        if not mine:
            continue
        for name in names:
            chosen = [r for r in mine if r["estimator"] == name]
            ax.errorbar(
                [r["truth"] for r in chosen],
                [max(r["mean"], 1e-3) for r in chosen],
                yerr=[r["std"] for r in chosen],
                fmt=markers[name],
                label=name,
                alpha=0.8,
                capsize=2,
            )
        low, high = 0.05, 60.0
        ax.plot([low, high], [low, high], "k-", lw=0.8, label="truth")
        ax.fill_between([low, high], [0.95 * low, 0.95 * high], [1.05 * low, 1.05 * high], color="k", alpha=0.08)
        ax.axhline(math.log(m), color="r", ls="--", lw=1, label=f"InfoNCE cap log B (B = {m})")
        ax.axhline(math.log(128), color="r", ls=":", lw=1, label="InfoNCE cap log B (B = 128)")
        ax.set(xscale="log", yscale="log", xlabel="true I (nats)", title=f"{kind}, M = {m}")
    axes[0].set_ylabel("estimate (nats), mean ± std over seeds")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="d = 5, one seed, heat-flow stein 1x and plug-in")
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.5, 0.9, 0.99])
    parser.add_argument("--problems", nargs="+", default=["gaussian", "warped"], choices=["gaussian", "warped"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--m", type=int, default=512)
    parser.add_argument("--estimators", nargs="+", help="names of ESTIMATORS (default: all)")
    parser.add_argument("--t-min", type=float, default=1e-4)
    parser.add_argument("--t-max", type=float, default=10.0)
    parser.add_argument("--points-per-decade", type=float, default=2.0)
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--timing", type=int, default=5, help="rounds of the d = 5 + 5 timing (0: none)")
    parser.add_argument("--out", type=Path, default=RESULTS / "mi_values")
    args = parser.parse_args()
    torch.set_num_threads(1)
    grid = {"t_min": args.t_min, "t_max": args.t_max, "points_per_decade": args.points_per_decade, "draws": args.draws}
    available = estimators(grid)
    names = args.estimators or list(available)
    if args.quick:
        args.dims, args.seeds, args.timing = [5], 1, 0
        names = args.estimators or ["heat-flow stein 1x", "gaussian plug-in"]
        args.out = args.out.with_name(args.out.name + "_quick")
    chosen = {n: available[n] for n in names}
    rows = []
    for kind in args.problems:
        for d in args.dims:
            for rho in args.rhos:
                for row in run_problem(kind, d, rho, args.m, args.seeds, chosen):
                    rows.append(row)
                    print(
                        f"{kind:8s} d={d:2d} rho={rho:<4} {row['estimator']:20s} {row['mean']:8.3f} vs "
                        f"{row['truth']:8.3f} ({relative(row)}, {row['seconds']:.2f} s)",
                        flush=True,
                    )
    timings = timing(chosen, args.timing) if args.timing else None
    summaries = summary(rows)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "m": args.m,
        "seeds": args.seeds,
        "grid": grid,
        "load_average": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "rows": rows, "summary": summaries, "timing": timings}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, summaries, timings))
    plot(rows, args.m, args.out.with_suffix(".png"))
    print(markdown(rows, summaries, timings))


if __name__ == "__main__":
    main()
