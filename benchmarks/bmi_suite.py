"""mireg's MI estimators on benchmark-mi's tasks, beside benchmark-mi's own on the very same samples.

Runs in mireg's environment. The samples are the ``.npz`` files that ``benchmarks/bmi_tasks.py``
writes in benchmark-mi's environment (``benchmarks/.bmi-samples/``: 5,000 rows of each task in
``bmi_tasks.TASKS`` per seed in ``bmi_tasks.SEEDS``), and benchmark-mi's KSG, CCA, MINE, InfoNCE
and NWJ on them come from ``benchmarks/results/bmi_baselines.json`` (same script). For every
(task, seed) and every mireg estimator here that gives a value, ``mireg.estimate_mi(x, y,
estimator=NAME, **settings)`` is run on one torch thread with its defaults (plus ``-o`` settings);
its ``value`` is measured on rows never used for training. Error = estimate − true MI (nats).

Targets checked (``targets`` in the JSON, a section of the Markdown):

* mean absolute error over the (task, seed) pairs that both sides have, per estimator, at most that
  of benchmark-mi's implementation of the same estimator (mine ↔ MINE, infonce ↔ InfoNCE,
  mine-f ↔ NWJ), with no more training steps than benchmark-mi's default 10,000;
* no held-out estimate below −0.05 nats on any task.

Rows are written as they finish and skipped on a rerun with the same settings, so a long run can
be resumed::

    python benchmarks/bmi_suite.py            # all tasks and seeds: writes results/bmi_suite.{json,md,png}
    python benchmarks/bmi_suite.py --quick    # 3 tasks, seed 0, max_steps=300: results/bmi_suite_quick.*
    python benchmarks/bmi_suite.py --estimators infonce -o max_steps=2000
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bmi_tasks import RESULTS as BASELINES_JSON
from bmi_tasks import SEEDS, TASKS, sample_path

RESULTS = Path(__file__).parent / "results"
#: mireg estimators tried, in table order; those not registered in this install are left out.
CANDIDATES = ("mine", "mine-f", "infonce", "smile", "club", "mige")
#: mireg estimator -> benchmark-mi's implementation of the same bound.
SAME_BOUND = {"mine": "mine", "mine-f": "nwj", "infonce": "infonce"}
BMI_BASELINES = ("ksg", "cca", "mine", "infonce", "nwj")
#: mireg estimators without a critic -> benchmark-mi's neural estimators whose MAE each must beat, and the limit.
VALUE_TARGETS = {"mige": ("mine", "infonce", "nwj")}
VALUE_MAE_LIMIT = 0.15
#: An estimate within this of benchmark-mi's CCA (the Gaussian value) but this far from the truth "falls back".
FALLBACK_NATS = 0.1
BMI_DEFAULT_STEPS = 10_000
NEGATIVE_LIMIT = -0.05
QUICK_TASKS = ("multinormal-sparse-5-5-2-2.0", "student-identity-3-3-2", "spiral-multinormal-sparse-5-5-2-2.0")
QUICK_SETTINGS = {"max_steps": 300}

#: The contract of ``mireg.estimate_mi``: (x [N, dx], y [N, dy], estimator=NAME, **settings) -> record
#: with ``value`` (nats, held out), ``stderr``, ``steps`` and ``seconds``.
EstimateMI = Callable[..., Any]


def registered(candidates: Sequence[str]) -> list[str]:
    """The candidates that this mireg install registers as MI estimators (names or aliases)."""
    import mireg

    names = set()
    for info in mireg.list_estimators("mi_gradient"):
        names.add(info.name)
        names.update(info.aliases)
    return [name for name in candidates if name in names]


def parse_setting(text: str) -> tuple[str, Any]:
    """``key=value`` with a Python literal value (``max_steps=2000``, ``lr=1e-3``), else the string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a setting is key=value (e.g. max_steps=2000), got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def run_row(estimate_mi: EstimateMI, name: str, task: str, seed: int, settings: dict[str, Any]) -> dict:
    """One ``estimate_mi`` call on the stored sample of (task, seed); returns the JSON row.

    An estimator that refuses (a mireg error, e.g. one without a value yet) gets a row with the
    message instead of numbers, so the table says why it is empty.
    """
    data = np.load(sample_path(task, seed))
    truth = float(data["mi_true"])
    row: dict[str, Any] = {"task": task, "seed": seed, "estimator": name, "mi_true": truth, "settings": settings}
    start = time.perf_counter()
    try:
        record = estimate_mi(data["x"], data["y"], estimator=name, **settings)
    except (ValueError, KeyError, NotImplementedError) as error:
        row["failed"] = f"{type(error).__name__}: {error}"
        return row
    value = float(record.value)
    row.update(
        estimate=value,
        error=value - truth,
        stderr=float(record.stderr),
        steps=int(record.steps),
        seconds=float(record.seconds),
        wall_seconds=time.perf_counter() - start,
    )
    return row


def load_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows: list[dict] = json.loads(path.read_text())["rows"]
    return rows


def load_baselines() -> list[dict]:
    """benchmark-mi's rows from ``bmi_baselines.json`` (empty when bmi_tasks.py has not run them)."""
    return load_rows(BASELINES_JSON)


def mean_abs(rows: list[dict], pairs: set[tuple[str, int]]) -> float:
    values = [abs(r["error"]) for r in rows if (r["task"], r["seed"]) in pairs]
    return sum(values) / len(values)


def targets(rows: list[dict], baselines: list[dict]) -> dict[str, Any]:
    """The two targets, on the (task, seed) pairs both sides have."""
    done = [r for r in rows if "estimate" in r]
    comparisons = {}
    for ours, theirs in SAME_BOUND.items():
        mine_rows = [r for r in done if r["estimator"] == ours]
        bmi_rows = [r for r in baselines if r["estimator"] == theirs]
        pairs = {(r["task"], r["seed"]) for r in mine_rows} & {(r["task"], r["seed"]) for r in bmi_rows}
        if not pairs:
            continue
        mae_mireg = mean_abs(mine_rows, pairs)
        mae_bmi = mean_abs(bmi_rows, pairs)
        max_steps = max(r["steps"] for r in mine_rows if (r["task"], r["seed"]) in pairs)
        comparisons[ours] = {
            "benchmark_mi": theirs,
            "pairs": len(pairs),
            "mae_mireg": mae_mireg,
            "mae_benchmark_mi": mae_bmi,
            "max_steps_mireg": max_steps,
            "met": mae_mireg <= mae_bmi and max_steps <= BMI_DEFAULT_STEPS,
        }
    values = {}
    for ours, theirs_all in VALUE_TARGETS.items():
        mine_rows = [r for r in done if r["estimator"] == ours]
        pairs = {(r["task"], r["seed"]) for r in mine_rows}
        for theirs in theirs_all:
            pairs &= {(r["task"], r["seed"]) for r in baselines if r["estimator"] == theirs}
        if not pairs:
            continue
        mae = mean_abs(mine_rows, pairs)
        maes = {t: mean_abs([r for r in baselines if r["estimator"] == t], pairs) for t in theirs_all}
        cca = {(r["task"], r["seed"]): r["estimate"] for r in baselines if r["estimator"] == "cca"}
        fallback = sorted(
            {
                r["task"]
                for r in mine_rows
                if (r["task"], r["seed"]) in cca
                and abs(r["estimate"] - cca[r["task"], r["seed"]]) < FALLBACK_NATS
                and abs(r["error"]) > FALLBACK_NATS
            }
        )
        values[ours] = {
            "pairs": len(pairs),
            "mae_mireg": mae,
            "mae_benchmark_mi": maes,
            "limit": VALUE_MAE_LIMIT,
            "met": mae <= VALUE_MAE_LIMIT and all(mae < m for m in maes.values()),
            "gaussian_fallback_tasks": fallback,
        }
    negatives = [
        {"task": r["task"], "seed": r["seed"], "estimator": r["estimator"], "estimate": r["estimate"]}
        for r in done
        if r["estimate"] < NEGATIVE_LIMIT
    ]
    return {"same_bound": comparisons, "values": values, "below_limit": negatives, "limit": NEGATIVE_LIMIT}


def cell(rows: list[dict], task: str, estimator: str) -> str:
    """``mean error ± spread (seconds s)`` over the seeds, or the failure."""
    picked = [r for r in rows if r["task"] == task and r["estimator"] == estimator]
    if not picked:
        return "–"
    done = [r for r in picked if "estimate" in r]
    if not done:
        return "failed"
    errors = [r["error"] for r in done]
    seconds = sum(r["seconds"] for r in done) / len(done)
    spread = (max(errors) - min(errors)) / 2
    return f"{sum(errors) / len(errors):+.2f} ± {spread:.2f} ({seconds:.0f} s)"


def markdown(rows: list[dict], baselines: list[dict], names: list[str], goal: dict, settings: dict) -> str:
    """The task × estimator table (mireg's, then benchmark-mi's) and the targets."""
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    columns = [("mireg", n) for n in names] + [("benchmark-mi", n) for n in BMI_BASELINES]
    head = "| task | I (nats) | " + " | ".join(f"{side} {n}" for side, n in columns) + " |"
    lines = [
        "# mireg and benchmark-mi on benchmark-mi's tasks (same samples)",
        "",
        f"`python benchmarks/bmi_suite.py`; mireg settings {settings or 'defaults'}; one torch thread. Cells: mean",
        "error (estimate − truth, nats) ± half the range over seeds (mean seconds per estimate).",
        "",
        head,
        "|" + "---|" * (len(columns) + 2),
    ]
    for task in tasks:
        truth = next(r["mi_true"] for r in rows if r["task"] == task)
        cells = [cell(rows, task, n) for n in names] + [cell(baselines, task, n) for n in BMI_BASELINES]
        lines.append(f"| {task} | {truth:.3f} | " + " | ".join(cells) + " |")
    failures = sorted({(r["estimator"], r["failed"]) for r in rows if "failed" in r})
    if failures:
        lines += ["", "Estimators that refused:", ""] + [f"- {name}: {message}" for name, message in failures]
    lines += ["", "## Targets", "", "| mireg | benchmark-mi | pairs | MAE mireg | MAE benchmark-mi | max steps | met |"]
    lines.append("|---|---|---|---|---|---|---|")
    for ours, c in goal["same_bound"].items():
        lines.append(
            f"| {ours} | {c['benchmark_mi']} | {c['pairs']} | {c['mae_mireg']:.3f} | {c['mae_benchmark_mi']:.3f} "
            f"| {c['max_steps_mireg']} | {'yes' if c['met'] else 'no'} |"
        )
    for ours, v in goal.get("values", {}).items():
        theirs = ", ".join(f"{t} {m:.3f}" for t, m in v["mae_benchmark_mi"].items())
        lines += [
            "",
            f"{ours}: MAE {v['mae_mireg']:.3f} nats over {v['pairs']} (task, seed) pairs; benchmark-mi's {theirs}; "
            f"target ≤ {v['limit']} and below each: {'met' if v['met'] else 'not met'}. Tasks where it falls back to "
            f"the Gaussian value (within {FALLBACK_NATS} nats of benchmark-mi's CCA, over {FALLBACK_NATS} from the "
            f"truth): {', '.join(v['gaussian_fallback_tasks']) or 'none'}.",
        ]
    below = goal["below_limit"]
    lines += ["", f"Held-out estimates below {NEGATIVE_LIMIT} nats: {len(below)}"]
    lines += [f"- {b['estimator']} on {b['task']} seed {b['seed']}: {b['estimate']:.3f}" for b in below]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], baselines: list[dict], names: list[str], path: Path) -> None:
    """Error per task: mireg's estimators filled, benchmark-mi's hollow; bars span the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    series = [(n, rows, True) for n in names] + [(n, baselines, False) for n in BMI_BASELINES]
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(tasks)), 5.0))
    width = 0.8 / len(series)
    for k, (name, source, ours) in enumerate(series):
        xs, means, lows, highs = [], [], [], []
        for i, task in enumerate(tasks):
            errors = [r["error"] for r in source if r["task"] == task and r["estimator"] == name and "error" in r]
            if errors:
                mean = sum(errors) / len(errors)
                xs.append(i - 0.4 + (k + 0.5) * width)
                means.append(mean)
                lows.append(mean - min(errors))
                highs.append(max(errors) - mean)
        if not xs:
            continue
        label = f"mireg {name}" if ours else f"benchmark-mi {name}"
        style = {"mfc": None if ours else "none", "marker": "o" if ours else "s"}
        ax.errorbar(xs, means, yerr=[lows, highs], ls="none", label=label, capsize=2, **style)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("estimate − true MI (nats)")
    ax.set_title("benchmark-mi tasks, 5,000 samples: error per estimator (bars: range over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[dict], names: list[str], settings: dict, stem: str) -> dict:
    """Write ``<stem>.json``, ``.md`` and ``.png`` in results/ (JSON atomically); returns the targets.

    benchmark-mi's rows are limited to the (task, seed) samples that mireg's rows cover, so every
    column of the table averages over the same samples.
    """
    covered = {(r["task"], r["seed"]) for r in rows}
    baselines = [b for b in load_baselines() if (b["task"], b["seed"]) in covered]
    goal = targets(rows, baselines)
    payload = {
        "benchmark": "mireg.estimate_mi on benchmark-mi tasks (benchmarks/.bmi-samples), beside bmi_baselines.json",
        "settings": settings,
        "estimators": names,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "error": "estimate - mi_true (nats)",
        "targets": goal,
        "rows": sorted(rows, key=lambda r: (r["task"], r["seed"], r["estimator"])),
    }
    tmp = RESULTS / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(RESULTS / f"{stem}.json")
    (RESULTS / f"{stem}.md").write_text(markdown(rows, baselines, names, goal, settings))
    plot(rows, baselines, names, RESULTS / f"{stem}.png")
    return goal


def run_suite(
    estimate_mi: EstimateMI,
    names: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    settings: dict[str, Any],
    stem: str,
) -> list[dict]:
    """Every missing (task, seed, estimator) row with these settings, seed-major; results written after each."""
    previous = [r for r in load_rows(RESULTS / f"{stem}.json") if r["settings"] == settings]
    done = {(r["task"], r["seed"], r["estimator"]) for r in previous}
    rows = list(previous)
    for seed in seeds:
        for task in tasks:
            for name in names:
                if (task, seed, name) in done:
                    continue
                row = run_row(estimate_mi, name, task, seed, settings)
                rows.append(row)
                write(rows, list(names), settings, stem)
                shown = f"{row['estimate']:.4f} in {row['seconds']:.1f} s" if "estimate" in row else row["failed"]
                print(f"{task} seed {seed} {name}: {shown} (true {row['mi_true']:.4f})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"tasks {', '.join(QUICK_TASKS)}, seed 0, {QUICK_SETTINGS}"
    )
    parser.add_argument("--estimators", default=",".join(CANDIDATES), help="comma-separated mireg estimator names")
    parser.add_argument(
        "--tasks", default=None, help="comma-separated benchmark-mi task ids (default: bmi_tasks.TASKS)"
    )
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: bmi_tasks.SEEDS)")
    parser.add_argument("-o", dest="settings", action="append", type=parse_setting, default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    import mireg

    if not hasattr(mireg, "estimate_mi"):
        parser.error("this mireg has no mireg.estimate_mi; install a mireg that provides it")
    torch.set_num_threads(1)
    settings = {**(QUICK_SETTINGS if args.quick else {}), **dict(args.settings)}
    tasks = tuple(args.tasks.split(",")) if args.tasks else (QUICK_TASKS if args.quick else TASKS)
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else ((0,) if args.quick else SEEDS)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {unknown}; the sampled ones are {', '.join(TASKS)}")
    missing = [sample_path(t, s) for t in tasks for s in seeds if not sample_path(t, s).exists()]
    if missing:
        parser.error(f"{len(missing)} sample file(s) missing, e.g. {missing[0]}: run bmi_tasks.py --stage samples")
    names = registered(args.estimators.split(","))
    if not names:
        parser.error(f"none of {args.estimators} is a registered mireg estimator")
    stem = "bmi_suite_quick" if args.quick else "bmi_suite"
    rows = run_suite(mireg.estimate_mi, names, tasks, seeds, settings, stem)
    goal = write(rows, names, settings, stem)
    print(json.dumps(goal, indent=1))
    print(f"wrote {RESULTS / stem}.json, .md, .png")


if __name__ == "__main__":
    main()
