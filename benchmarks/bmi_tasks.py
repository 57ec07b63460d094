"""benchmark-mi tasks, sampled once, and benchmark-mi's own estimators on exactly those samples.

Runs in the benchmark-only environment (``benchmarks/bmi/README.md``), never in mireg's::

    python3 -m venv benchmarks/.bmi-venv
    benchmarks/.bmi-venv/bin/pip install -r benchmarks/bmi/requirements.txt

Stage ``samples``: for every task in ``TASKS`` (benchmark-mi's own task ids, covering all its
families) and every seed, ``task.sample(5000, seed)`` is written to
``benchmarks/.bmi-samples/<task>__seed<seed>.npz`` with keys ``x`` [N, dx], ``y`` [N, dy],
``mi_true`` (nats), ``task``, ``seed``. ``benchmarks/bmi_suite.py`` (mireg's environment) reads
the same files, so both sides see identical rows.

Stage ``baselines``: benchmark-mi's KSG (``KSGEnsembleFirstEstimator``), CCA, MINE, InfoNCE and
NWJ at their defaults (neural ones: 10,000 steps of batch 256, half the rows held out, critic
MLP (16, 8), Adam lr 0.1; only ``seed`` is set, to the sample's seed, so replicates differ in
training randomness as well), on one CPU thread. Each (task, seed, estimator) row is written to
``benchmarks/results/bmi_baselines.json`` as soon as it is done; rows already there are skipped,
so an interrupted run is finished by running the same command again. The neural ones take
minutes per row: run them in the background, e.g.::

    nohup nice -n 15 benchmarks/.bmi-venv/bin/python benchmarks/bmi_tasks.py > bmi_tasks.log 2>&1 &

    python benchmarks/bmi_tasks.py --stage samples           # the .npz files only (seconds)
    python benchmarks/bmi_tasks.py --estimators ksg,cca      # the fast baselines only
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
SAMPLES = HERE / ".bmi-samples"
RESULTS = HERE / "results" / "bmi_baselines.json"
N_SAMPLES = 5_000
SEEDS = (0, 1, 2)
#: benchmark-mi 0.1.3 task ids (``bmi.benchmark.BENCHMARK_TASKS``): every family at least once.
TASKS = (
    "multinormal-dense-5-5-0.5",
    "multinormal-dense-25-25-0.5",
    "multinormal-sparse-3-3-2-2.0",
    "multinormal-sparse-5-5-2-2.0",
    "student-identity-2-2-1",
    "student-identity-3-3-2",
    "half_cube-multinormal-sparse-5-5-2-2.0",
    "spiral-multinormal-sparse-5-5-2-2.0",
    "normal_cdf-multinormal-sparse-5-5-2-2.0",
    "asinh-student-identity-3-3-2",
    "1v1-bimodal-0.75",
    "swissroll_x-normal_cdf-1v1-normal-0.75",
    "1v1-normal-0.75",
)
BASELINES = ("ksg", "cca", "mine", "infonce", "nwj")
#: One CPU thread for XLA, like mireg's benchmarks (set before jax is imported).
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def sample_path(task: str, seed: int) -> Path:
    """Where the sample of ``task`` drawn with ``seed`` lives."""
    return SAMPLES / f"{task}__seed{seed}.npz"


def write_samples(tasks: tuple[str, ...], seeds: tuple[int, ...]) -> None:
    """Draw ``N_SAMPLES`` rows of each task with each seed, skipping files that exist."""
    from bmi.benchmark import BENCHMARK_TASKS

    unknown = sorted(set(tasks) - set(BENCHMARK_TASKS))
    if unknown:
        raise SystemExit(f"unknown benchmark-mi task id(s) {unknown}; known ids: {', '.join(BENCHMARK_TASKS)}")
    SAMPLES.mkdir(exist_ok=True)
    for task_id in tasks:
        task = BENCHMARK_TASKS[task_id]
        for seed in seeds:
            path = sample_path(task_id, seed)
            if path.exists():
                continue
            x, y = task.sample(N_SAMPLES, seed)
            np.savez(
                path,
                x=np.asarray(x, dtype=np.float64),
                y=np.asarray(y, dtype=np.float64),
                mi_true=np.float64(task.mutual_information),
                task=task_id,
                seed=seed,
            )
            print(f"sampled {path.name}: x {np.shape(x)}, y {np.shape(y)}, I = {task.mutual_information:.4f}")


def baseline(name: str, seed: int) -> Any:
    """benchmark-mi's estimator ``name`` at its defaults (neural ones seeded with ``seed``, quiet)."""
    import bmi

    factories: dict[str, Callable[[], Any]] = {
        "ksg": bmi.estimators.KSGEnsembleFirstEstimator,
        "cca": bmi.estimators.CCAMutualInformationEstimator,
        "mine": lambda: bmi.estimators.MINEEstimator(seed=seed, verbose=False),
        "infonce": lambda: bmi.estimators.InfoNCEEstimator(seed=seed, verbose=False),
        "nwj": lambda: bmi.estimators.NWJEstimator(seed=seed, verbose=False),
    }
    return factories[name]()


def load_rows() -> list[dict]:
    if not RESULTS.exists():
        return []
    rows: list[dict] = json.loads(RESULTS.read_text())["rows"]
    return rows


def save_rows(rows: list[dict]) -> None:
    """Write all rows (atomically: a killed run never leaves a half-written file)."""
    RESULTS.parent.mkdir(exist_ok=True)
    payload = {
        "benchmark": "benchmark-mi's own estimators at their defaults on benchmarks/.bmi-samples",
        "benchmark_mi": importlib.metadata.version("benchmark-mi"),
        "n_samples": N_SAMPLES,
        "threads": "one (XLA_FLAGS " + os.environ.get("XLA_FLAGS", "") + ")",
        "machine": platform.platform(),
        "error": "estimate - mi_true (nats)",
        "rows": sorted(rows, key=lambda r: (r["task"], r["seed"], r["estimator"])),
    }
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(RESULTS)


def run_baselines(tasks: tuple[str, ...], seeds: tuple[int, ...], estimators: tuple[str, ...]) -> None:
    """Each missing (task, seed, estimator) row, seed-major so that every task gets one seed first."""
    rows = load_rows()
    done = {(r["task"], r["seed"], r["estimator"]) for r in rows}
    for seed in seeds:
        for task_id in tasks:
            for name in estimators:
                if (task_id, seed, name) in done:
                    continue
                data = np.load(sample_path(task_id, seed))
                estimator = baseline(name, seed)
                start = time.perf_counter()
                value = float(estimator.estimate(data["x"], data["y"]))
                seconds = time.perf_counter() - start
                truth = float(data["mi_true"])
                params = estimator.parameters() if hasattr(estimator, "parameters") else None
                rows.append(
                    {
                        "task": task_id,
                        "seed": seed,
                        "estimator": name,
                        "estimate": value,
                        "mi_true": truth,
                        "error": value - truth,
                        "seconds": seconds,
                        "params": json.loads(params.json()) if params is not None else {},
                    }
                )
                save_rows(rows)
                print(f"{task_id} seed {seed} {name}: {value:.4f} (true {truth:.4f}) in {seconds:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("samples", "baselines", "all"), default="all")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated benchmark-mi task ids")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--estimators", default=",".join(BASELINES), help=f"subset of {','.join(BASELINES)}")
    args = parser.parse_args()
    tasks = tuple(args.tasks.split(","))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    estimators = tuple(args.estimators.split(","))
    unknown = sorted(set(estimators) - set(BASELINES))
    if unknown:
        parser.error(f"unknown estimator(s) {unknown}; choose from {', '.join(BASELINES)}")
    os.environ.setdefault("XLA_FLAGS", XLA_ONE_THREAD)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.stage in ("samples", "all"):
        write_samples(tasks, seeds)
    if args.stage in ("baselines", "all"):
        missing = [sample_path(t, s) for t in tasks for s in seeds if not sample_path(t, s).exists()]
        if missing:
            parser.error(f"{len(missing)} sample file(s) missing, e.g. {missing[0]}; run --stage samples first")
        run_baselines(tasks, seeds, estimators)


if __name__ == "__main__":
    main()
