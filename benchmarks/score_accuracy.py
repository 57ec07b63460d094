"""Accuracy and speed of every installed score estimator against closed-form scores.

For each registered score estimator (``mireg.list_estimators("score")``), setting, distribution,
dimension d and batch size M it measures the relative RMSE of the score,
``sqrt(mean |ŝ - s|²) / sqrt(mean |s|²)``, at the samples (in-sample) and at fresh points
(out-of-sample, where the estimator supports ``at``), and the time per call. Parametric
estimators (``est.parametric``, the ssm score network) are first warmed up as MIGE uses them:
``WARMUP_CALLS`` score() calls on fresh batches of the same size from the same distribution
(300, or 100 with ``--quick``; the table reports the number); nonparametric ones need none.
Warmed up so, a network has seen 300 × M samples where a kernel estimator sees the call's M, so each
parametric estimator also has a row trained with as many calls on the call's own samples only, and
every run ends with a reference row: the score of the Gaussian fitted to the call's samples (the exact
model of the ``normal`` and ``gaussian`` problems, so about as well as M samples of them allow).
Distributions (from :mod:`mireg.testing`):

* ``normal``: N(0, I), the main use case (MIGE whitens batches before scoring them);
* ``gaussian``: N(μ, Σ), Σ with eigenvalues log-spaced in [0.25, 4] in a random basis;
* ``mixture``: 0.3 N(u, I) + 0.7 N(-u, I) with |u| = 1.5.

It also prints three speed ratios measured side by side in the same run (float32, one thread):
SSGE fit+evaluate at M = 512, d = 64 over one ``torch.linalg.eigh`` of 512×512 (target ≤ 2),
Stein at M = 2048, d = 64 over one Cholesky factorisation + solve of that size (target ≤ 2), and
SSGE with the full ``eigh`` over SSGE with the top-J subspace solver at M = 2048, d = 10
(target ≥ 10). Beside them, SSGE with the options MIGE uses on whitened batches (``SSGE.whitened_options``) at M = 128,
d = 64 and 128 with the default solver over the same with ``eigensolver="eigh"`` (target ≤ 1: a
small batch must not pay for a subspace attempt). The kscore estimators (``nu-method``,
``landweber``, ``kef``, ``spectral-cutoff``, when the plugin is installed) are timed at M = 512,
d = 64 against one ``eigh`` of 512×512 together with SSGE and Stein, in CPU time
(``time.process_time``, one thread: the machine may be shared): the calls are interleaved round by
round and each ratio is the median over rounds of (estimator time / eigh time of the same round),
with its interquartile range. The markdown ends with the mean in-sample relative RMSE per
estimator and setting at each M (over the distributions and dimensions run). Results go to
``benchmarks/results/score_accuracy.{json,md}`` (``score_accuracy_quick`` with ``--quick``);
``--speed-only`` runs only the interleaved timings (15 rounds) into ``score_speed_kscore.{json,md}``;
``--estimators`` limits the accuracy rows to the named estimators (the result name then lists them).

    python benchmarks/score_accuracy.py [--quick] [--dims 2,10,40] [--sizes 512] [--estimators a,b] [--speed-only]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import mireg
from mireg.estimators import ScoreEstimator
from mireg.testing import (
    ClosedFormDistribution,
    FittedGaussianScore,
    Gaussian,
    GaussianMixture,
    StandardNormal,
    relative_rmse,
    sample_with_score,
)
from mireg_ssge import SSGE

RESULTS = Path(__file__).parent / "results"
RULE = "|---|---|---|---|---|---|---|---|---|"

#: Settings beyond the defaults, per estimator name (estimators not listed run with defaults). nu-method lam 3e-3
#: and landweber lam 0.03 (here and in KSCORE) were their defaults until the iteration counts were bounded by the
#: cost of two eigh at M = 512, d = 64: they show what that bound costs in accuracy and saves in time.
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "ssge": [{}, {"eigensolver": "eigh"}, {"threshold": 0.99, "eta": 0.0, "eigensolver": "eigh"}],
    "stein": [{}],
    "nu-method": [{}, {"lam": 3e-3}, {"kernel": "curlfree-rbf", "lam": 1e-3, "bandwidth_multiplier": 2.0}],
    "kef": [
        {},
        {"kernel": "curlfree-rbf", "lam": 1e-3, "bandwidth_multiplier": 2.0},
        {"kernel": "diagonal-rbf", "lam": 1e-4},
    ],
    "landweber": [{}, {"lam": 0.03}],
    "spectral-cutoff": [{}],
}
#: The options MIGE builds nu-method with (its whitened_options; the samples here are N(0, I)); kef's are
#: the same with the diagonal kernel (MIGE's default score estimator).
WHITENED = {"kernel": "curlfree-rbf", "lam": 1e-3, "bandwidth_rule": "whitened", "bandwidth_multiplier": 1.0}
#: The kscore estimators timed against one eigh (those installed), with the options timed: the
#: defaults, the former defaults, fewer iterations, and the options for MIGE (benchmarks/toy_gradient.py).
KSCORE: dict[str, list[dict[str, Any]]] = {
    "nu-method": [
        {},
        {"lam": 3e-3},
        {"lam": 1e-2},
        {"lam": 1e-3, "kernel": "curlfree-rbf", "bandwidth": 2.0},
        WHITENED,
    ],
    "landweber": [{}, {"lam": 0.03}],
    "kef": [
        {},
        {"lam": 1e-3, "kernel": "curlfree-rbf", "bandwidth": 2.0},
        WHITENED,
        {**WHITENED, "kernel": "diagonal-rbf"},
        {"lam": 1e-5, "kernel": "diagonal-rbf"},
    ],
    "spectral-cutoff": [{}],
}


def distributions(d: int, generator: torch.Generator, dtype: torch.dtype) -> dict[str, ClosedFormDistribution]:
    """The three closed-form distributions of :mod:`mireg.testing`, parameters drawn from ``generator``."""
    return {
        "normal": StandardNormal(d, dtype=dtype),
        "gaussian": Gaussian(d, generator=generator, dtype=dtype),
        "mixture": GaussianMixture(d, generator=generator, dtype=dtype),
    }


def warm_up(
    estimator: ScoreEstimator, dist: ClosedFormDistribution, m: int, calls: int, seed: int, own: Tensor | None = None
) -> int:
    """Train a parametric estimator as MIGE does: ``calls`` score() calls on fresh ``[m, d]`` batches, or,
    given ``own`` ``[m, d]``, on that one batch every time (the data a nonparametric estimator sees).

    Nonparametric estimators fit from scratch at every call: nothing to do, 0 calls. Returns the
    number of calls made.
    """
    if not estimator.parametric:
        return 0
    generator = torch.Generator().manual_seed(seed)
    for _ in range(calls):
        estimator.score(dist.sample(m, generator) if own is None else own)
    return calls


def best_time(call: Callable[[], object], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls in seconds (the machine may be shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


#: The reference row: the score of the Gaussian fitted to the call's samples (the exact model of the
#: normal and gaussian problems, so a bound on what M samples of them tell an estimator).
REFERENCE = "gaussian fit (reference)"
#: Warm-up score() calls of a parametric estimator before it is measured (full run, --quick).
WARMUP_CALLS = (300, 100)


def accuracy_rows(
    quick: bool, dims: tuple[int, ...], sizes: tuple[int, ...], names: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """One row per estimator (those in ``names``, default all), setting, d, M and distribution (see the module
    docstring)."""
    warmup = WARMUP_CALLS[1] if quick else WARMUP_CALLS[0]
    rows = []
    runs: list[tuple[str, dict[str, Any], Callable[..., ScoreEstimator], str]] = []
    for info in mireg.list_estimators("score"):
        if names is None or info.name in names:
            for options in SETTINGS.get(info.name, [{}]):
                make = functools.partial(mireg.score_estimator, info.name, **options)
                runs.append((info.name, options, make, "fresh"))
                if info.cls.parametric:  # the same network trained only on the call's own samples
                    runs.append((info.name, options, make, "own"))
    runs.append((REFERENCE, {}, FittedGaussianScore, "fresh"))
    for name, options, build, data in runs:
        for d in dims:
            for m in sizes:
                generator = torch.Generator().manual_seed(1000 * d + m)
                for dist, law in distributions(d, generator, torch.float32).items():
                    estimator = build()
                    x, s = sample_with_score(law, m, generator)  # warm_up draws from its own generator
                    own = x if data == "own" else None
                    calls = warm_up(estimator, law, m, warmup, seed=1000 * d + m + 1, own=own)
                    queries, truth = sample_with_score(law, 512, generator)
                    estimate = estimator.score(x)
                    try:
                        out = relative_rmse(estimator.score(x, at=queries), truth)
                    except (NotImplementedError, ValueError):
                        out = None
                    seconds = best_time(functools.partial(estimator.score, x), 1 if m == 2048 else 3)
                    rows.append(
                        {
                            "estimator": name,
                            "options": options,
                            "distribution": dist,
                            "d": d,
                            "M": m,
                            "warmup_calls": calls,
                            "warmup_data": data if calls else None,
                            "in_sample": relative_rmse(estimate, s),
                            "out_of_sample": out,
                            "seconds": seconds,
                        }
                    )
                    print(_format(rows[-1]), flush=True)
    return rows


def _warmup_data(row: dict[str, Any]) -> str:
    """What a row's estimator was trained on before it was measured."""
    return {None: "none", "fresh": "fresh batches", "own": "its own samples"}[row["warmup_data"]]


def _warmup(row: dict[str, Any]) -> str:
    """The warm-up calls of a row and, for a parametric estimator, on what data."""
    return f"{row['warmup_calls']} ({_warmup_data(row)})" if row["warmup_calls"] else "0"


def _format(row: dict[str, Any]) -> str:
    out = "n/a" if row["out_of_sample"] is None else f"{row['out_of_sample']:.3f}"
    return (
        f"| {row['estimator']} | {json.dumps(row['options'])} | {row['distribution']} | {row['d']} | {row['M']} "
        f"| {_warmup(row)} | {row['in_sample']:.3f} | {out} | {1000 * row['seconds']:.1f} |"
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
        default = mireg.score_estimator("ssge", **SSGE.whitened_options)
        direct = mireg.score_estimator("ssge", **SSGE.whitened_options, eigensolver="eigh")
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


def cpu_time(call: Callable[[], object]) -> float:
    """CPU seconds (``time.process_time``) of one call: other processes on a shared machine do not count."""
    start = time.process_time()
    call()
    return time.process_time() - start


def interleaved_ratios(rounds: int) -> dict[str, dict[str, float]]:
    """Each installed kscore estimator (the options of :data:`KSCORE`), SSGE and Stein at M = 512, d = 64
    over one eigh of 512×512 (float32), in CPU time: per round every call once, in turn; median and
    quartiles of the per-round ratios, and the median CPU seconds."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=generator)
    spd = x @ x.T / 64 + torch.eye(512)
    installed = {info.name for info in mireg.list_estimators("score")}
    settings: dict[str, list[dict[str, Any]]] = {"ssge": [{}], "stein": [{}], **KSCORE}
    calls: dict[str, Callable[[], object]] = {
        f"{name} {json.dumps(options)}": functools.partial(mireg.score_estimator(name, **options).score, x)
        for name, variants in settings.items()
        if name in installed
        for options in variants
    }
    calls["eigh"] = functools.partial(torch.linalg.eigh, spd)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            times[name].append(cpu_time(call))
    out = {}
    for name in calls:
        if name == "eigh":
            continue
        ratios = torch.tensor([a / b for a, b in zip(times[name], times["eigh"], strict=True)])
        low, mid, high = (float(v) for v in ratios.quantile(torch.tensor([0.25, 0.5, 0.75])))
        seconds = float(torch.tensor(times[name]).median())
        out[name] = {"median": mid, "q25": low, "q75": high, "seconds": seconds}
    return out


def mean_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean in-sample relative RMSE per estimator and setting at each M."""
    groups: dict[tuple[str, str, str, int], list[float]] = {}
    for row in rows:
        key = (row["estimator"], json.dumps(row["options"]), _warmup_data(row), row["M"])
        groups.setdefault(key, []).append(row["in_sample"])
    lines = [
        "| estimator | options | warm-up data | M | problems | mean rel. RMSE in-sample | worst |",
        "|---|---|---|---|---|---|---|",
    ]

    def order(item: tuple[tuple[str, str, str, int], list[float]]) -> tuple[int, float]:
        return item[0][3], sum(item[1]) / len(item[1])

    for (name, options, data, m), values in sorted(groups.items(), key=order):
        mean = sum(values) / len(values)
        lines.append(f"| {name} | {options} | {data} | {m} | {len(values)} | {mean:.3f} | {max(values):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d in {2, 10}, M in {128, 512}: a few minutes")
    parser.add_argument("--dims", help="comma-separated dimensions, overriding the default set")
    parser.add_argument("--sizes", help="comma-separated batch sizes M, overriding the default set")
    parser.add_argument("--speed-only", action="store_true", help="only the interleaved kscore timings")
    parser.add_argument("--estimators", help="comma-separated estimator names for the accuracy rows (default: all)")
    args = parser.parse_args()
    names = tuple(args.estimators.split(",")) if args.estimators else None
    installed = {info.name for info in mireg.list_estimators("score")}
    if names is not None and not set(names) <= installed:
        parser.error(f"unknown estimators {sorted(set(names) - installed)}; installed: {sorted(installed)}")
    dims = tuple(int(v) for v in args.dims.split(",")) if args.dims else (2, 10) if args.quick else (2, 10, 40)
    default_sizes = (128, 512) if args.quick else (128, 512, 2048)
    sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else default_sizes
    torch.set_num_threads(1)
    if args.speed_only:
        load_before = os.getloadavg()[0]
        timed = interleaved_ratios(15)
        load = f"1-minute load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
        text = "\n".join(
            f"| {key} | {v['median']:.2f} | {v['q25']:.2f}-{v['q75']:.2f} | {1000 * v['seconds']:.1f} |"
            for key, v in timed.items()
        )
        text = "| estimator and options | median ratio to eigh | IQR | median CPU ms |\n|---|---|---|---|\n" + text
        print(text)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "score_speed_kscore.json").write_text(json.dumps(timed, indent=2))
        (RESULTS / "score_speed_kscore.md").write_text(
            "# Score estimators at M = 512, d = 64 over one eigh of 512×512 (float32, one thread, CPU time, "
            f"15 interleaved rounds)\n\n{load} ({os.cpu_count()} CPUs).\n\n" + text + "\n"
        )
        return
    header = (
        "| estimator | options | distribution | d | M | warm-up calls | rel. RMSE in-sample | out-of-sample | ms/call |"
    )
    print(header + "\n" + RULE, flush=True)
    rows = accuracy_rows(args.quick, dims, sizes, names)
    ratios = speed_ratios()
    kscore_ratios = interleaved_ratios(5 if args.quick else 15)
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
        *(
            f"{key} at M=512, d=64 / one eigh 512x512, interleaved, CPU time: median "
            f"{value['median']:.2f} (IQR {value['q25']:.2f}-{value['q75']:.2f}), {1000 * value['seconds']:.1f} ms"
            for key, value in kscore_ratios.items()
        ),
    ]
    print("\n".join(lines))
    means = mean_table(rows)
    print(means)
    RESULTS.mkdir(exist_ok=True)
    name = "score_accuracy_quick" if args.quick else "score_accuracy"
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(), "threads": 1}
    if args.dims or args.sizes:
        name += "_d" + "-".join(map(str, dims)) + "_m" + "-".join(map(str, sizes))
    if names is not None:
        name += "_" + "-".join(names)
    meta = {**meta, "dims": dims, "sizes": sizes}
    record = {"meta": meta, "rows": rows, "ratios": ratios, "interleaved_ratios": kscore_ratios}
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2))
    table = [header, RULE, *(_format(row) for row in rows)]
    (RESULTS / f"{name}.md").write_text(
        "# Score estimator accuracy (float32, one thread)\n\n"
        + "\n".join(table)
        + "\n\n"
        + "\n\n".join(lines)
        + "\n\n## Mean relative RMSE\n\n"
        + means
        + "\n"
    )


if __name__ == "__main__":
    main()
