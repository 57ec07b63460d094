"""MI values against the closed form, side by side on the same finite data sets.

Problems: a data set of ``--n`` rows (default 5,000) per problem and seed (``--seeds``, default 3),
the same rows for every estimator:

* correlated Gaussians x, ε ~ N(0, I_d), y = ρ x + sqrt(1 − ρ²) ε, I = −(d/2) log(1 − ρ²), for
  d ∈ {1, 5, 20} and ρ ∈ {0, 0.5, 0.9, 0.99} (up to 39.2 nats; ρ = 0 is independence, I = 0,
  reported as absolute error and left out of the plot's log axes);
* the warped toy: every coordinate of x and y of the same problems mapped by t ↦ t + 0.4 t³
  (invertible per coordinate, so I is unchanged and the joint is not Gaussian).

Estimators (``estimators()``; a new column is one more entry, a function of (x, y, seed) -> nats):

* ``mige``: ``mireg.estimate_mi(x, y, "mige")``, the heat-flow value of ``MIGE.estimate`` with its
  default value score (Stein), averaged over batches of ``--m`` rows (default 512) of all rows;
* ``mige, ssge values``: the same with ``value_score=None`` (MIGE's own SSGE score estimator);
* ``infonce``, ``mine``: ``mireg.estimate_mi`` with its measured defaults (trained on 60% of the
  rows with early stopping on 20%, valued on the held-out 20%);
* ``gaussian plug-in``: ½ log det ratio of the sample covariances of all rows minus its exact
  Wishart bias (:func:`mireg.heat_flow.gaussian_plugin_mi`), exact in the mean on the Gaussians;
* ``bmi ksg``, ``bmi cca``: benchmark-mi's KSG and CCA on the same rows, read from
  ``results/bmi_baselines.json`` when the tables are written. They run in benchmark-mi's
  environment (``bmi_tasks.py``): this script writes every data set to ``benchmarks/.bmi-samples/``
  as task ``mireg-<problem>-<d>-<ρ>`` (``--export`` writes them and stops), then::

      benchmarks/.bmi-venv/bin/python benchmarks/bmi_tasks.py --stage baselines --estimators ksg,cca \
          --tasks $(python benchmarks/mi_values.py --list-tasks)

benchmark-mi's own tasks (student, spiral, swiss roll, …) with MIGE beside benchmark-mi's MINE,
InfoNCE, NWJ, KSG and CCA are ``bmi_suite.py --estimators mige`` (results/bmi_suite.md).

Seconds per estimate are the mean wall time of each call (one torch thread). ``--timing`` adds
one ``MIGE.estimate`` of a d = 5 + 5, M = 512 Gaussian batch (ρ = 0.9) beside the plug-in: ``--timing``
rounds, interleaved, median and spread of the rounds, as wall time and as the process's CPU time
(on a shared machine the wall time includes waiting for a core). Samples are float32.

    nice -n 10 python benchmarks/mi_values.py           # writes benchmarks/results/mi_values.{json,md,png}
    nice -n 10 python benchmarks/mi_values.py --quick   # d = 5 only, 1 seed, mige and plug-in
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

import numpy as np
import torch
from bmi_tasks import RESULTS as BMI_BASELINES
from bmi_tasks import sample_path
from torch import Tensor

import mireg
from mireg.estimate import TRAINING_DEFAULTS
from mireg.heat_flow import gaussian_plugin_mi
from mireg.testing import correlated_gaussian_mi, correlated_gaussians, warp

RESULTS = Path(__file__).parent / "results"
#: benchmark-mi's estimators shown beside mireg's (run by bmi_tasks.py on the exported data sets).
BMI_COLUMNS = ("ksg", "cca")
#: (x, y, seed) -> nats
Estimator = Callable[[Tensor, Tensor, int], float]


def estimate_mi_value(name: str, m: int, **options: Any) -> Estimator:
    """``mireg.estimate_mi`` with ``name`` (batches of ``m`` rows for MIGE, measured defaults otherwise)."""

    def run(x: Tensor, y: Tensor, seed: int) -> float:
        batch = {"batch_size": m} if name == "mige" else {}
        return mireg.estimate_mi(x, y, name, options=options or None, seed=seed, **batch).value

    return run


def plugin(x: Tensor, y: Tensor, seed: int) -> float:
    return float(gaussian_plugin_mi(x.double(), y.double()))


def bmi_rows(kind: str, d: int, rho: float, n: int, seeds: int) -> list[dict]:
    """benchmark-mi's KSG and CCA on this problem's exported data sets, from ``bmi_baselines.json``
    (rows like :func:`run_problem`'s; none until ``bmi_tasks.py`` has run on every seed)."""
    found = json.loads(BMI_BASELINES.read_text())["rows"] if BMI_BASELINES.exists() else []
    out = []
    for name in BMI_COLUMNS:
        picked = {r["seed"]: r for r in found if (r["task"], r["estimator"]) == (task_id(kind, d, rho), name)}
        if all(seed in picked for seed in range(seeds)):
            values = [picked[seed]["estimate"] for seed in range(seeds)]
            seconds = [picked[seed]["seconds"] for seed in range(seeds)]
            out.append(row(kind, d, rho, n, f"bmi {name}", values, seconds))
    return out


def estimators(m: int) -> dict[str, Estimator]:
    return {
        "mige": estimate_mi_value("mige", m),
        "mige, ssge values": estimate_mi_value("mige", m, value_score=None),
        "infonce": estimate_mi_value("infonce", m),
        "mine": estimate_mi_value("mine", m),
        "gaussian plug-in": plugin,
    }


def task_id(kind: str, d: int, rho: float) -> str:
    return f"mireg-{kind}-{d}-{rho}"


def sample(kind: str, n: int, d: int, rho: float, seed: int) -> tuple[Tensor, Tensor]:
    """Float64 draws (warped in float64), cast to float32, the dtype estimators are trained in."""
    x, y = correlated_gaussians(n, d, rho, torch.Generator().manual_seed(seed), dtype=torch.float64)
    x, y = (warp(x), warp(y)) if kind == "warped" else (x, y)
    return x.float(), y.float()


def export(kind: str, d: int, rho: float, n: int, seed: int) -> None:
    """The data set as benchmark-mi's ``bmi_tasks.py`` reads it (float64 of the float32 rows)."""
    x, y = sample(kind, n, d, rho, seed)
    task = task_id(kind, d, rho)
    path = sample_path(task, seed)
    path.parent.mkdir(exist_ok=True)
    np.savez(
        path, x=x.double().numpy(), y=y.double().numpy(), mi_true=correlated_gaussian_mi(d, rho), task=task, seed=seed
    )


def run_problem(kind: str, d: int, rho: float, n: int, seeds: int, chosen: dict[str, Estimator]) -> list[dict]:
    """One row per estimator: the mean (and spread) over seeds and seconds per estimate."""
    values: dict[str, list[float]] = {name: [] for name in chosen}
    seconds: dict[str, list[float]] = {name: [] for name in chosen}
    for seed in range(seeds):
        x, y = sample(kind, n, d, rho, seed)
        for name, estimate in chosen.items():
            start = time.perf_counter()
            values[name].append(estimate(x, y, seed))
            seconds[name].append(time.perf_counter() - start)
    return [row(kind, d, rho, n, name, values[name], seconds[name]) for name in chosen]


def row(kind: str, d: int, rho: float, n: int, name: str, values: list[float], seconds: list[float]) -> dict:
    """The JSON row of one estimator on one problem: mean (and spread) over seeds, seconds per estimate."""
    truth = correlated_gaussian_mi(d, rho)
    mean = statistics.fmean(values)
    return {
        "problem": kind,
        "d": d,
        "rho": rho,
        "n": n,
        "estimator": name,
        "truth": truth,
        "values": values,
        "mean": mean,
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "error": mean - truth,
        "relative_error": (mean - truth) / truth if truth > 0 else None,
        "seconds": statistics.fmean(seconds),
    }


def timing(rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per value of one M = 512, d = 5 + 5 batch (ρ = 0.9), interleaved: median, min, max (wall, CPU)."""
    x, y = sample("gaussian", 512, 5, 0.9, 0)
    calls: dict[str, Callable[[], object]] = {
        "MIGE.estimate": lambda: mireg.mi_gradient_estimator("mige").estimate(x, y),
        "MIGE.estimate, ssge values": lambda: mireg.mi_gradient_estimator("mige", value_score=None).estimate(x, y),
        "gaussian plug-in": lambda: gaussian_plugin_mi(x, y),
    }
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
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


def markdown(rows: list[dict], summaries: dict, timings: dict | None, meta: dict) -> str:
    lines = [
        f"`python benchmarks/mi_values.py`: data sets of {meta['n']} rows, {meta['seeds']} seed(s); MIGE's heat-flow "
        f"batches of {meta['m']} rows; one torch thread. Mean and std over seeds.",
        "",
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
        lines += ["", "Seconds per value of one batch, M = 512, d = 5 + 5, interleaved rounds: median [min, max]", ""]
        lines += ["| estimator | median | min | max |", "|---|---|---|---|"]
        lines += [f"| {n} | {t['median']:.3f} | {t['min']:.3f} | {t['max']:.3f} |" for n, t in timings.items()]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
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
        batch = TRAINING_DEFAULTS["infonce"].batch_size
        ax.axhline(math.log(batch), color="r", ls="--", lw=1, label=f"InfoNCE cap log B (B = {batch})")
        ax.set(xscale="log", yscale="log", xlabel="true I (nats)", title=kind)
    axes[0].set_ylabel("estimate (nats), mean ± std over seeds")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def problems(args: argparse.Namespace) -> list[tuple[str, int, float]]:
    return [(kind, d, rho) for kind in args.problems for d in args.dims for rho in args.rhos]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="d = 5, one seed, mige and plug-in")
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.5, 0.9, 0.99])
    parser.add_argument("--problems", nargs="+", default=["gaussian", "warped"], choices=["gaussian", "warped"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000, help="rows of each data set")
    parser.add_argument("--m", type=int, default=512, help="rows of MIGE's heat-flow batches")
    parser.add_argument("--estimators", nargs="+", help="columns of estimators() (default: all)")
    parser.add_argument("--timing", type=int, default=5, help="rounds of the d = 5 + 5 timing (0: none)")
    parser.add_argument("--export", action="store_true", help="write the data sets for bmi_tasks.py and stop")
    parser.add_argument("--list-tasks", action="store_true", help="print the exported task ids, comma-separated")
    parser.add_argument("--report", action="store_true", help="rewrite the tables from the JSON (with bmi's rows)")
    parser.add_argument("--out", type=Path, default=RESULTS / "mi_values")
    args = parser.parse_args()
    torch.set_num_threads(1)
    available = estimators(args.m)
    names = args.estimators or list(available)
    if args.quick:
        args.dims, args.seeds, args.timing = [5], 1, 0
        names = args.estimators or ["mige", "gaussian plug-in"]
        args.out = args.out.with_name(args.out.name + "_quick")
    if args.list_tasks:
        print(",".join(task_id(*p) for p in problems(args)))
        return
    if args.report:  # the data sets were exported by the run that wrote the JSON
        payload = json.loads(args.out.with_suffix(".json").read_text())
        rows = [r for r in payload["rows"] if not r["estimator"].startswith("bmi ")]
        write(rows, payload["timing"], payload["meta"], args)
        return
    for p in problems(args):
        for seed in range(args.seeds):
            export(*p, args.n, seed)
    if args.export:
        return
    unknown = sorted(set(names) - set(available))
    if unknown:
        parser.error(f"unknown estimator(s) {unknown}; choose from {', '.join(available)}")
    chosen = {n: available[n] for n in names}
    rows = []
    for kind, d, rho in problems(args):
        for result in run_problem(kind, d, rho, args.n, args.seeds, chosen):
            rows.append(result)
            print(
                f"{kind:8s} d={d:2d} rho={rho:<4} {result['estimator']:20s} {result['mean']:8.3f} vs "
                f"{result['truth']:8.3f} ({relative(result)}, {result['seconds']:.2f} s)",
                flush=True,
            )
    timings = timing(args.timing) if args.timing else None
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "n": args.n,
        "m": args.m,
        "seeds": args.seeds,
        "load_average": list(os.getloadavg()),
    }
    write(rows, timings, meta, args)


def write(rows: list[dict], timings: dict | None, meta: dict, args: argparse.Namespace) -> None:
    """``rows`` with benchmark-mi's rows for the same data sets, as JSON, Markdown and PNG."""
    rows = rows + [r for p in problems(args) for r in bmi_rows(*p, meta["n"], meta["seeds"])]
    summaries = summary(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "rows": rows, "summary": summaries, "timing": timings}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, summaries, timings, meta))
    plot(rows, args.out.with_suffix(".png"))
    print(markdown(rows, summaries, timings, meta))


if __name__ == "__main__":
    main()
