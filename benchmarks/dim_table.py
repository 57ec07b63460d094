"""Deep InfoMax: probe accuracy per layer for each objective (the shape of the paper's Table 1).

Every method uses ``configs/dim-digits.toml`` (and ``configs/dim-cifar10.toml`` where the CIFAR-10
files are present under ``--cifar-root``) with its own objective: global DIM with the JSD or
InfoNCE critic on (conv features, Y), each with and without prior matching, and MIGE's gradient
of I(x; Y) (Circumstance I). Each run trains the encoder with the trainer (validation, which
trains the probes, only after the last epoch), then freezes it and trains the three probes once
(conv, fc, Y); the probe epoch is chosen on the validation
split, the test accuracy at that epoch is reported as mean ± std over seeds. The paper's claim
checked here: MIGE loses less accuracy from conv to Y than the bound-based objectives
(CIFAR-10: MIGE 57.95 / 57.09 / 53.75, DIM(JSD) 55.81 / 45.73 / 40.67).

    python benchmarks/dim_table.py            # digits, 5 methods + 3 controls × 3 seeds, 30 epochs (2 min)
    python benchmarks/dim_table.py --quick    # smoke run: 3 epochs, 1 seed, 5 probe epochs
    python benchmarks/dim_table.py --cifar-root data --cifar-epochs 20 --device cuda

Writes ``benchmarks/results/dim_table.json`` and ``dim_table.md`` (``dim_table_quick.*`` with --quick).
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

from mireg.config import Resolved, Selection, load_config, resolve
from mireg.errors import ConfigError
from mireg.registry import default_registry
from mireg.tasks.dim import DIM, LAYERS
from mireg.training import Trainer, resolve_device
from mireg.training.trainer import seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
#: key -> (row label, [estimator] block, [task] options)
METHODS: dict[str, tuple[str, Selection, dict[str, Any]]] = {
    "jsd": ("DIM (JSD)", Selection("jsd", {}), {"pair": "conv"}),
    "jsd+pm": ("DIM (JSD + PM)", Selection("jsd", {}), {"pair": "conv", "prior_matching": True}),
    "infonce": ("DIM (infoNCE)", Selection("infonce", {}), {"pair": "conv"}),
    "infonce+pm": ("DIM (infoNCE + PM)", Selection("infonce", {}), {"pair": "conv", "prior_matching": True}),
    "mige": ("MIGE", Selection("mige", {"score": "ssge"}), {"pair": "input"}),
    # Controls, below the Table 1 rows: the encoder before training, each objective on the other pair.
    "untrained": ("Untrained encoder (control)", Selection("mige", {"score": "ssge"}), {"pair": "input"}),
    "jsd-input": ("DIM (JSD) on (x, Y) (control)", Selection("jsd", {}), {"pair": "input"}),
    "mige-conv": (
        "MIGE Circumstance II on (conv, Y) (control)",
        Selection("mige", {"score": "ssge", "projection_dim": 64}),
        {"pair": "conv"},
    ),
}
#: The paper's CIFAR-10 rows (conv, fc, Y test accuracy in %), for the markdown table.
PAPER_CIFAR10 = {
    "jsd": (55.81, 45.73, 40.67),
    "jsd+pm": (52.2, 52.84, 43.17),
    "infonce": (51.82, 42.81, 37.79),
    "infonce+pm": (56.77, 49.42, 42.68),
    "mige": (57.95, 57.09, 53.75),
}


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run of the table."""

    config: str
    method: str
    seed: int
    epochs: int
    probe_epochs: int
    device: str
    data_options: tuple[tuple[str, Any], ...] = ()


def run_job(job: Job) -> dict[str, Any]:
    """Train one encoder with the trainer (validated, i.e. probed, once at the end), or probe the
    untrained encoder; the per-layer probe accuracies."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    _, estimator, task_options = METHODS[job.method]
    base = load_config(ROOT / job.config)
    config = dataclasses.replace(
        base,
        task=Selection("dim", {**base.task.options, **task_options}),
        estimator=estimator,
        data=Selection(base.data.name, {**base.data.options, **dict(job.data_options)}),
        eval={**base.eval, "epochs": job.probe_epochs},
    ).with_train(epochs=job.epochs, seed=job.seed, device=job.device, threads=1, validate_every=job.epochs)
    resolved = resolve(config)
    if job.method == "untrained":
        probes = untrained_probes(resolved)
        test = {layer: probes[layer].test for layer in LAYERS}
        val = {layer: probes[layer].val for layer in LAYERS}
        chosen = {layer: probes[layer].epoch for layer in LAYERS}
    else:
        with tempfile.TemporaryDirectory() as out:
            metrics = Trainer(resolved, out, progress=False).run()["metrics"]
        test = {layer: metrics[f"test_acc_{layer}"] for layer in LAYERS}
        val = {layer: metrics[f"val_acc_{layer}"] for layer in LAYERS}
        chosen = {layer: int(metrics[f"probe_epoch_{layer}"]) for layer in LAYERS}
    return {
        "method": job.method,
        "seed": job.seed,
        "test": test,
        "val": val,
        "probe_epoch": chosen,
        "runtime_s": time.perf_counter() - started,
    }


def untrained_probes(resolved: Resolved) -> dict[str, Any]:
    """Probe results of the freshly initialised encoder (the control row)."""
    device = resolve_device(resolved.train.device)
    seed_everything(resolved.train.seed)
    data = resolved.dataset.load().to(device, torch.float32)
    assert resolved.config.estimator is not None
    mi = default_registry().create("mi_gradient", resolved.config.estimator.name, resolved.config.estimator.options)
    task = resolved.task
    assert isinstance(task, DIM)
    network = task.build(data, resolved.model, mi, device=device, dtype=torch.float32)
    network.eval()
    return task.probes(network, data, resolved.eval)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (over seeds, in %) of test and validation accuracy per method and layer."""
    table: dict[str, Any] = {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        row: dict[str, Any] = {"seeds": len(mine)}
        for split in ("test", "val"):
            for layer in LAYERS:
                values = [100 * r[split][layer] for r in mine]
                row[f"{split}_{layer}"] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                }
        drops = [100 * (r["test"]["conv"] - r["test"]["y"]) for r in mine]
        row["drop_conv_to_y"] = {
            "mean": statistics.fmean(drops),
            "std": statistics.stdev(drops) if len(drops) > 1 else 0.0,
        }
        table[method] = row
    return table


def markdown(dataset: str, table: dict[str, Any], settings: dict[str, Any], paper: bool) -> str:
    def cell(stat: dict[str, float]) -> str:
        return f"{stat['mean']:.2f} ± {stat['std']:.2f}"

    lines = [
        f"### {dataset}: probe test accuracy (%) per layer, mean ± std over {settings['seeds']} seeds",
        "",
        f"Encoder {settings['epochs']} epochs, probes {settings['probe_epochs']} epochs (epoch chosen on validation).",
        "",
        "| Model | conv | fc | Y | drop conv→Y | val conv | val fc | val Y |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, row in table.items():
        test = " | ".join(cell(row[f"test_{layer}"]) for layer in LAYERS)
        val = " | ".join(f"{row[f'val_{layer}']['mean']:.2f}" for layer in LAYERS)
        lines.append(f"| {METHODS[method][0]} | {test} | {cell(row['drop_conv_to_y'])} | {val} |")
    if paper:
        lines += [
            "",
            "Paper (CIFAR-10, Table 1): "
            + "; ".join(f"{METHODS[m][0]} {' / '.join(str(v) for v in values)}" for m, values in PAPER_CIFAR10.items()),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs, 1 seed, 5 probe epochs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="encoder epochs on digits")
    parser.add_argument("--probe-epochs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="parallel runs, one torch thread each")
    parser.add_argument("--cifar-root", default="data", help="where torchvision's cifar-10-batches-py may be")
    parser.add_argument("--cifar-epochs", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="device of the CIFAR runs (digits always on the CPU)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.probe_epochs, args.cifar_epochs = 1, 3, 5, 1

    studies = [("digits", "configs/dim-digits.toml", args.epochs, "cpu", ())]
    cifar = (("root", args.cifar_root), ("download", False))
    try:
        resolve(
            dataclasses.replace(load_config(ROOT / "configs/dim-cifar10.toml"), data=Selection("cifar10", dict(cifar)))
        )
        studies.append(("cifar10", "configs/dim-cifar10.toml", args.cifar_epochs, args.device, cifar))
    except ConfigError as error:
        print(f"CIFAR-10 skipped: {error}")

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": platform.machine(), "torch": torch.__version__, "studies": {}}
    report = []
    for dataset, config, epochs, device, options in studies:
        jobs = [
            Job(config, method, seed, epochs, args.probe_epochs, device, options)
            for seed in range(args.seeds)
            for method in METHODS
        ]
        with ProcessPoolExecutor(max_workers=args.workers if device == "cpu" else 1) as pool:
            runs = []
            for run in pool.map(run_job, jobs):
                print(
                    f"{dataset} {run['method']:<11} seed {run['seed']}: test "
                    + " ".join(f"{layer} {100 * run['test'][layer]:.2f}" for layer in LAYERS)
                    + f" ({run['runtime_s']:.0f} s)",
                    flush=True,
                )
                runs.append(run)
        settings = {"seeds": args.seeds, "epochs": epochs, "probe_epochs": args.probe_epochs, "config": config}
        table = summarise(runs)
        results["studies"][dataset] = {"settings": settings, "table": table, "runs": runs}
        report.append(markdown(dataset, table, settings, paper=dataset == "digits"))
    results["runtime_s"] = time.perf_counter() - started
    stem = "dim_table_quick" if args.quick else "dim_table"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(report))
    print("\n".join(report))
    print(f"written to {RESULTS / stem}.json and .md in {results['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
