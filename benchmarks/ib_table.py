"""Information Bottleneck: baseline, VIB, MINE-IB and MIGE-IB test error (the paper's Table 2).

Every method uses the configuration of ``configs/ib-digits.toml`` (and ``configs/ib-mnist.toml``
where the MNIST files are present) with its own information term. β is tuned per method on
the validation split (seed 0, the grid below; the lowest validation error wins, ties go to the
lower validation NLL), never on the test set; the chosen β is then trained with each seed and
the test error, averaged over z samples as VIB reports it, is given as mean ± std over seeds.

    python benchmarks/ib_table.py                 # digits: 5-value β grid, 5 seeds (and MNIST if present)
    python benchmarks/ib_table.py --quick         # smoke run: 3 epochs, one β, 2 seeds, under a minute
    python benchmarks/ib_table.py --mnist-root data --mnist-epochs 20

Writes ``benchmarks/results/ib_table.json`` and ``ib_table.md`` (``ib_table_quick.*`` with --quick).
The paper (permutation-invariant MNIST): baseline 1.38%, DVB 1.13%, MINE-IB 1.11%, MIGE-IB 1.05%.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from mireg.config import Selection, load_config, resolve
from mireg.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
#: Row label, IB method and [estimator] block per method (None: no estimator).
METHODS: dict[str, tuple[str, str, Selection | None]] = {
    "baseline": ("Baseline", "baseline", None),
    "vib": ("DVB (VIB)", "vib", None),
    "mine": ("MINE-IB", "mi", Selection("mine", {})),
    "mige": ("MIGE-IB", "mi", Selection("mige", {"score": "ssge"})),
}
PAPER_MNIST = {"baseline": 1.38, "vib": 1.13, "mine": 1.11, "mige": 1.05}
BETAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run of the table."""

    config: str
    method: str
    beta: float
    seed: int
    epochs: int
    data_options: tuple[tuple[str, Any], ...] = ()


def run_job(job: Job) -> dict[str, Any]:
    """Train ``job`` on one thread in a scratch directory; its final metrics and runtime."""
    torch.set_num_threads(1)
    base = load_config(job.config)
    _, method, estimator = METHODS[job.method]
    config = dataclasses.replace(
        base,
        task=Selection("ib", {"method": method, "beta": job.beta}),
        estimator=estimator,
        data=Selection(base.data.name, {**base.data.options, **dict(job.data_options)}),
    ).with_train(seed=job.seed, epochs=job.epochs, device="cpu")
    with tempfile.TemporaryDirectory() as out:
        results = Trainer(resolve(config), out, progress=False).run()
    return {**dataclasses.asdict(job), "metrics": results["metrics"], "runtime_s": results["runtime_s"]}


def table(config: str, betas: tuple[float, ...], seeds: list[int], epochs: int, pool: ProcessPoolExecutor,
          data_options: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """Tune β per method on the validation split, then train every seed with the chosen β."""
    tuning_jobs = [Job(config, m, b, seeds[0], epochs, data_options) for m in METHODS if m != "baseline" for b in betas]
    tuning = list(pool.map(run_job, tuning_jobs))
    chosen: dict[str, float] = {"baseline": 0.0}
    for method in METHODS:
        if method != "baseline":
            candidates = [r for r in tuning if r["method"] == method]
            best = min(candidates, key=lambda r: (r["metrics"]["val_error"], r["metrics"]["val_nll"]))
            chosen[method] = best["beta"]
    final_jobs = [Job(config, m, chosen[m], s, epochs, data_options) for m in METHODS for s in seeds]
    final = list(pool.map(run_job, final_jobs))
    rows = {}
    for method, (label, _, _) in METHODS.items():
        runs = [r for r in final if r["method"] == method]
        test = [100 * r["metrics"]["test_error"] for r in runs]
        val = [100 * r["metrics"]["val_error"] for r in runs]
        rows[method] = {
            "label": label,
            "beta": chosen[method] if method != "baseline" else None,
            "test_error_mean": statistics.mean(test),
            "test_error_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            "val_error_mean": statistics.mean(val),
            "test_errors": test,
            "runtime_s_mean": statistics.mean(r["runtime_s"] for r in runs),
        }
    tried = [{"method": r["method"], "beta": r["beta"], "val_error": r["metrics"]["val_error"]} for r in tuning]
    return {"config": config, "epochs": epochs, "seeds": seeds, "beta_grid": list(betas), "rows": rows, "tuning": tried}


def markdown(name: str, result: dict[str, Any], paper: dict[str, float] | None) -> str:
    seeds = len(result["seeds"])
    lines = [
        f"### {name}: misclassification rate (test, mean ± std over {seeds} seeds, {result['epochs']} epochs)",
        "",
        "| Model | Misclass rate | β (tuned on val) | val error |" + (" paper (MNIST) |" if paper else ""),
        "|---|---|---|---|" + ("---|" if paper else ""),
    ]
    for method, row in result["rows"].items():
        beta = "—" if row["beta"] is None else f"{row['beta']:g}"
        cells = f"| {row['label']} | {row['test_error_mean']:.2f}% ± {row['test_error_std']:.2f} | {beta} | "
        cells += f"{row['val_error_mean']:.2f}% |"
        lines.append(cells + (f" {paper[method]:.2f}% |" if paper else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs, one β, 2 seeds: a smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="digits epochs (default: the config's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--mnist-root", default="data", help="directory holding MNIST/raw (skipped when absent)")
    parser.add_argument("--mnist-epochs", type=int, default=20)
    args = parser.parse_args()
    digits_config = str(ROOT / "configs" / "ib-digits.toml")
    betas = (1e-2,) if args.quick else BETAS
    seeds = list(range(2 if args.quick else args.seeds))
    epochs = 3 if args.quick else (args.epochs or load_config(digits_config).train.get("epochs", 10))
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": platform.machine(), "threads_per_run": 1, "datasets": {}}
    sections = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        report["datasets"]["digits"] = table(digits_config, betas, seeds, epochs, pool)
        sections.append(markdown("digits", report["datasets"]["digits"], None))
        mnist_raw = Path(args.mnist_root) / "MNIST" / "raw"
        if (mnist_raw / "train-images-idx3-ubyte").is_file():
            mnist = table(str(ROOT / "configs" / "ib-mnist.toml"), betas, seeds, 1 if args.quick else args.mnist_epochs,
                          pool, (("root", args.mnist_root), ("download", False)))
            report["datasets"]["mnist"] = mnist
            sections.append(markdown("MNIST (permutation invariant)", mnist, PAPER_MNIST))
        else:
            sections.append(f"MNIST skipped: no files in {mnist_raw}")
    report["runtime_s"] = time.perf_counter() - started
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ib_table{suffix}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    text = "\n\n".join(sections) + f"\n\nTotal runtime {report['runtime_s']:.0f} s.\n"
    (RESULTS / f"ib_table{suffix}.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
