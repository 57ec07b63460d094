"""Cost of a MIGE InfoMax step against plain Adam and SGD steps, and its accuracy, across batch sizes.

At every batch size B, one step of a 784-512-64 MLP encoder (forward, backward, update) is timed
four ways, side by side in one run with one torch thread: a plain loss on the representation with
Adam, the same with SGD (momentum-free, so the encoder's own cost dominates), and each optimizer
maximising the MIGE surrogate of I(x; z) with the data side randomly projected to 64 dimensions
(scalable SSGE). The four run interleaved, in a rotated order, in repeated blocks: per-step times
are reported as median and interquartile range, and the MIGE / plain ratio as the median and IQR
of the per-block ratios of medians (machine noise hits the four alike within a block).

At the same B, the toy-gradient accuracy of default MIGE (estimated / true dI/dρ on the correlated
Gaussians at d = 20, ρ ∈ {0.5, 0.9, 0.99}, mean over seeds, and on the warped toy, each coordinate
mapped by t ↦ t + 0.4t³) and, up to ``--exact-up-to``, of the exact path (``landmarks=None``), so
that speed is never bought with accuracy. The projection's effect on the gradient: on the toy with
the data side widened to D = 200 (x padded with independent noise and rotated, so the MI is
unchanged) and projected to 64, the mean and standard deviation over batches of the dI/dρ estimate
with a fresh Gaussian matrix per call (the former projection), fresh column signs on one seeded
matrix (the current one) and a fixed matrix, and the spread over repeated calls on one batch (the
projection's own variance). With B = 2048 and 8192 among the batch sizes, the growth of the MIGE
call alone from the one to the other, the two sizes interleaved call by call. Writes
``benchmarks/results/mige_speed{,_quick}.{json,md,png}`` (PNG: ms per step against B, log-log).
``--device cuda`` times the steps on a GPU (synchronised around each step; the toy accuracy is
computed on the CPU) and writes ``mige_speed_cuda{,_quick}.*``.

``--profile`` instead profiles ``--profile-steps`` MIGE steps (SGD, the first batch size) with
torch.profiler at one thread and prints the operators by their share of the CPU time, self time
(the operator's own work) and total time (with what it calls), writing nothing.

``--clock cpu`` times the CPU steps by this process's CPU time instead of the wall clock (on a
machine shared with other jobs, the one-thread step's own cost).

    python benchmarks/mige_speed.py [--quick] [--device cuda] [--clock cpu] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import mireg
from mireg.mige import MIGE
from mireg.projection import random_projection
from mireg.testing import correlated_gaussian_mi_grad, correlated_gaussians, toy_gradient_ratio

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("adam plain", "adam mige", "sgd plain", "sgd mige")
#: Step clocks: elapsed time, or the CPU time of this process (with one torch thread, the step's own work
#: whatever else the machine runs).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
TOY_DIM, TOY_RHOS = 20, (0.5, 0.9, 0.99)


def make_step(optimizer_name: str, mige: bool, seed: int, device: torch.device) -> Callable[[Tensor], None]:
    """One training step of a fresh 784-512-64 encoder with a plain loss or the MIGE surrogate."""
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 64)).to(device)
    optimizer: torch.optim.Optimizer
    if optimizer_name == "adam":
        optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-4)
    else:
        optimizer = torch.optim.SGD(encoder.parameters(), lr=1e-4)
    mi = mireg.mi_gradient_estimator("mige", projection_dim=64).to(device) if mige else None

    def step(x: Tensor) -> None:
        optimizer.zero_grad()
        z = encoder(x)
        loss = -mi(x, z) if mi is not None else z.pow(2).mean()
        loss.backward()
        optimizer.step()

    return step


def quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


def interleaved(ways: dict[str, Callable[[], object]], blocks: int, calls: int) -> dict[str, Any]:
    """Seconds per call of two ``ways`` run alternately, and per-block ratios of medians (first / second)."""
    names = list(ways)
    for way in ways.values():  # warm-up
        way()
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios = []
    for block in range(blocks):
        block_times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(calls):
            for name in names[block % 2 :] + names[: block % 2]:
                start = time.perf_counter()
                ways[name]()
                block_times[name].append(time.perf_counter() - start)
        for name in names:
            times[name].extend(block_times[name])
        ratios.append(statistics.median(block_times[names[0]]) / statistics.median(block_times[names[1]]))
    return {"seconds": {name: quartiles(t) for name, t in times.items()}, "ratio": quartiles(ratios)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batch(
    batch: int, blocks: int, steps: int, device: torch.device, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Per-step seconds of every variant and per-block MIGE / plain ratios at one batch size, read off ``clock``."""
    generator = torch.Generator().manual_seed(batch)
    data = [torch.rand(batch, 784, generator=generator).to(device) for _ in range(4)]
    runners = {name: make_step(name.split()[0], name.endswith("mige"), 0, device) for name in VARIANTS}
    for runner in runners.values():  # warm-up: lazy allocations, optimizer state
        runner(data[0])
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    ratios: dict[str, list[float]] = {"adam": [], "sgd": []}
    for block in range(blocks):
        order = VARIANTS[block % len(VARIANTS) :] + VARIANTS[: block % len(VARIANTS)]
        block_times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for i in range(steps):
            for name in order:  # interleaved step by step, in a rotated order
                synchronize(device)
                start = clock()
                runners[name](data[i % len(data)])
                synchronize(device)
                block_times[name].append(clock() - start)
        for name in VARIANTS:
            times[name].extend(block_times[name])
        for opt in ratios:
            ratios[opt].append(
                statistics.median(block_times[f"{opt} mige"]) / statistics.median(block_times[f"{opt} plain"])
            )
    return {
        "step_seconds": {name: quartiles(t) for name, t in times.items()},
        "ratio": {opt: quartiles(r) for opt, r in ratios.items()},
        "blocks": blocks,
        "steps_per_block": steps,
    }


def call_growth(small: int, large: int, blocks: int, device: torch.device, calls: int = 3) -> dict[str, Any]:
    """Cost of the MIGE call alone (forward and backward onto a 64-wide representation, data side 784 wide
    projected to 64) at ``large`` rows over ``small`` rows: per-block ratios of medians, the two sizes
    interleaved call by call, so machine noise hits both alike."""
    generator = torch.Generator().manual_seed(0)
    mi = mireg.mi_gradient_estimator("mige", projection_dim=64).to(device)
    inputs = {
        b: (torch.rand(b, 784, generator=generator).to(device), torch.randn(b, 64, generator=generator).to(device))
        for b in (small, large)
    }

    def call(b: int) -> None:
        x, z = inputs[b]
        synchronize(device)
        mi(x, z.requires_grad_()).backward()
        synchronize(device)

    return {
        "from": small,
        "to": large,
        **interleaved({"large": lambda: call(large), "small": lambda: call(small)}, blocks, calls),
    }


def accuracy(batch: int, seeds: int, exact: bool) -> dict[str, dict[str, float]]:
    """Estimated / true dI/dρ of default MIGE on the toy (d = 20) and its warped twin, and of the exact path
    (``landmarks=None``) on the toy when ``exact``, by path and ρ."""
    paths: list[tuple[str, dict[str, Any], bool]] = [("default", {}, False), ("default, warped toy", {}, True)]
    paths += [("exact", {"landmarks": None}, False)] if exact else []
    out = {}
    for label, options, warped in paths:
        mi = mireg.mi_gradient_estimator("mige", **options)
        out[label] = {f"{rho}": toy_gradient_ratio(mi, TOY_DIM, rho, batch, seeds, warped=warped) for rho in TOY_RHOS}
    return out


class _FreshGaussianMIGE(MIGE):
    """MIGE with the former projection: a fresh Gaussian matrix with unit columns at every call."""

    def _project(self, x: Tensor) -> Tensor:
        assert self.projection_dim is not None
        return x @ random_projection(x.shape[1], self.projection_dim, dtype=x.dtype).T


def projection_spread(seeds: int, wide: int = 200, batch: int = 512) -> dict[str, dict[str, float]]:
    """Mean and spread of dI/dρ / true (d = 20, ρ = 0.5) with the data side widened to ``wide`` and projected
    to 64: across ``seeds`` batches, and across ``seeds`` calls on one batch (the projection's own variance)."""
    rotation = torch.linalg.qr(torch.randn(wide, wide, generator=torch.Generator().manual_seed(123))).Q
    truth = correlated_gaussian_mi_grad(TOY_DIM, 0.5)
    modes = {
        "fresh Gaussian": _FreshGaussianMIGE(score=mireg.score_estimator("ssge"), projection_dim=64),
        "flipped signs": mireg.mi_gradient_estimator("mige", projection_dim=64),
        "fixed": mireg.mi_gradient_estimator("mige", projection_dim=64, fixed_projection=True),
    }
    torch.manual_seed(0)
    out = {}
    for name, mi in modes.items():
        across: list[float] = []
        same: list[float] = []
        for grads, fixed_batch in ((across, False), (same, True)):
            for seed in range(seeds):
                batch_seed = 0 if fixed_batch else seed
                r = torch.tensor(0.5, requires_grad=True)
                x, y = correlated_gaussians(batch, TOY_DIM, r, torch.Generator().manual_seed(batch_seed))
                noise = torch.randn(batch, wide - TOY_DIM, generator=torch.Generator().manual_seed(10_000 + batch_seed))
                mi(torch.cat([x, noise], 1) @ rotation, y).backward()
                grads.append(float(r.grad) / truth)  # type: ignore[arg-type]
        out[name] = {
            "mean": statistics.fmean(across),
            "std_across_batches": statistics.stdev(across),
            "std_same_batch": statistics.stdev(same),
        }
    return out


def profile_steps(batch: int, steps: int, device: torch.device, rows: int = 25) -> str:
    """Tables of the operators of ``steps`` MIGE SGD steps at ``batch``, by self and total CPU time."""
    from torch.profiler import ProfilerActivity, profile

    generator = torch.Generator().manual_seed(batch)
    data = [torch.rand(batch, 784, generator=generator).to(device) for _ in range(4)]
    step = make_step("sgd", True, 0, device)
    for i in range(5):  # warm-up, outside the profile
        step(data[i % len(data)])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            step(data[i % len(data)])
        synchronize(device)
    averages = prof.key_averages()
    return "\n".join(
        f"{steps} MIGE SGD steps, B = {batch}, by {key}:\n" + averages.table(sort_by=key, row_limit=rows)
        for key in ("self_cpu_time_total", "cpu_time_total")
    )


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"`{meta['command']}`",
        "",
        f"MIGE step cost on {meta['device_name']}, 784-512-64 MLP, data side projected to 64, one torch thread, "
        f"torch {meta['torch']}; "
        f"load average {meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after, on {meta['cpus']} "
        f"CPUs; default landmarks {meta['landmarks']}. Times ({meta.get('clock', 'wall')} clock): median [IQR] "
        "over all steps; ratios: median [IQR] of per-block ratios of medians.",
        "",
        "| B | Adam plain ms | Adam MIGE ms | MIGE/Adam | SGD plain ms | SGD MIGE ms | MIGE/SGD |",
        "|---|---|---|---|---|---|---|",
    ]

    def ms(q: dict[str, float]) -> str:
        return f"{1e3 * q['median']:.2f} [{1e3 * q['q1']:.2f}, {1e3 * q['q3']:.2f}]"

    def ratio(q: dict[str, float]) -> str:
        return f"{q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}]"

    for row in result["rows"]:
        s, r = row["step_seconds"], row["ratio"]
        lines.append(
            f"| {row['batch']} | {ms(s['adam plain'])} | {ms(s['adam mige'])} | {ratio(r['adam'])} | "
            f"{ms(s['sgd plain'])} | {ms(s['sgd mige'])} | {ratio(r['sgd'])} |"
        )
    lines += [
        "",
        f"Toy accuracy: estimated / true dI/dρ at d = 20, mean over {meta['seeds']} seeds (the warped toy: each "
        "coordinate of x and y mapped by t ↦ t + 0.4t³).",
        "",
        "| B | path | " + " | ".join(f"ρ={rho}" for rho in TOY_RHOS) + " |",
        "|---|---|" + "---|" * len(TOY_RHOS),
    ]
    for row in result["rows"]:
        for path, cells in row["accuracy"].items():
            lines.append(f"| {row['batch']} | {path} | " + " | ".join(f"{v:.3f}" for v in cells.values()) + " |")
    spread = result["projection"]
    lines += [
        "",
        f"Projection (toy widened to D = 200, projected to 64, ρ = 0.5, {meta['seeds_projection']} batches / "
        "calls): dI/dρ / true. The projection loses information, so the mean is the projected MI's gradient.",
        "",
        "| projection | mean | std across batches | std on one batch |",
        "|---|---|---|---|",
    ]
    for name, row in spread.items():
        lines.append(f"| {name} | {row['mean']:.3f} | {row['std_across_batches']:.4f} | {row['std_same_batch']:.4f} |")
    growth = result.get("growth")
    if growth:
        q = growth["ratio"]
        lines += [
            "",
            f"Growth of the MIGE call alone (forward and backward, the step's extra cost) from B = {growth['from']} to "
            f"{growth['to']}: ×{q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}] for ×{growth['to'] // growth['from']} "
            "the batch (median [IQR] of per-block ratios, the two sizes interleaved call by call).",
        ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = [row["batch"] for row in result["rows"]]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name in VARIANTS:
        medians = [1e3 * row["step_seconds"][name]["median"] for row in result["rows"]]
        lows = [m - 1e3 * row["step_seconds"][name]["q1"] for m, row in zip(medians, result["rows"], strict=True)]
        highs = [1e3 * row["step_seconds"][name]["q3"] - m for m, row in zip(medians, result["rows"], strict=True)]
        ax.errorbar(
            batches,
            medians,
            yerr=[lows, highs],
            marker="o",
            capsize=2,
            label=name,
            linestyle="--" if name.endswith("plain") else "-",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("ms per step (median, IQR)")
    ax.set_title("784-512-64 encoder step, one thread")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B = 128 and 512, fewer blocks and seeds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default 128 512 2048 8192)")
    parser.add_argument("--blocks", type=int, help="interleaved blocks per batch size")
    parser.add_argument("--seeds", type=int, help="seeds of the toy accuracy")
    parser.add_argument("--device", default="cpu", help="where the steps are timed (cpu or cuda)")
    parser.add_argument("--exact-up-to", type=int, default=2048, help="largest B at which the exact path is checked")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (one thread, on a shared CPU machine)",
    )
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of MIGE steps instead")
    parser.add_argument("--profile-steps", type=int, default=50, help="MIGE steps profiled by --profile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here: run this on a GPU machine, or leave out --device")
    if device.type == "cuda" and args.clock == "cpu":
        raise SystemExit("--clock cpu counts no GPU time: time GPU steps with the wall clock")
    batches = args.batches or ([128, 512] if args.quick else [128, 512, 2048, 8192])
    if args.profile:
        print(profile_steps(batches[0], args.profile_steps, device))
        return
    blocks = args.blocks or (5 if args.quick else 9)
    seeds = args.seeds or (2 if args.quick else 5)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = []
    for batch in batches:
        steps = max(2, (10 if args.quick else 20) * 128 // batch)
        row = {"batch": batch, **time_batch(batch, blocks, steps, device, CLOCKS[args.clock])}
        row["accuracy"] = accuracy(batch, seeds, exact=batch <= args.exact_up_to)
        rows.append(row)
        s, r = row["step_seconds"], row["ratio"]
        print(
            f"B={batch}: Adam plain {1e3 * s['adam plain']['median']:.2f} ms, MIGE {1e3 * s['adam mige']['median']:.2f}"
            f" ms, ratio {r['adam']['median']:.2f}; SGD plain {1e3 * s['sgd plain']['median']:.2f} ms, MIGE "
            f"{1e3 * s['sgd mige']['median']:.2f} ms, ratio {r['sgd']['median']:.2f}; toy {row['accuracy']}",
            flush=True,
        )
    seeds_projection = 6 if args.quick else 20
    projection = projection_spread(seeds_projection)
    growth = call_growth(2048, 8192, blocks, device) if {2048, 8192} <= set(batches) else None
    meta = {
        "command": " ".join(["python", "benchmarks/mige_speed.py", *sys.argv[1:]]),
        "seeds_projection": seeds_projection,
        "torch": torch.__version__,
        "threads": 1,
        "device": str(device),
        "clock": args.clock,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "seconds": time.perf_counter() - started,
        "seeds": seeds,
        "landmarks": mireg.mi_gradient_estimator("mige").landmarks,
        "targets": {"B=128 MIGE/Adam": 1.25, "B=128 MIGE/SGD": 1.5, "B=8192 MIGE/plain": 3.0},
    }
    result: dict[str, Any] = {"meta": meta, "rows": rows, "projection": projection}
    if growth is not None:
        result["growth"] = growth
    stem = "mige_speed" + ("_cuda" if device.type == "cuda" else "") + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (args.out / f"{stem}.md").write_text(table)
    plot(result, args.out / f"{stem}.png")
    print(table)


if __name__ == "__main__":
    main()
