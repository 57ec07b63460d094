"""Cholesky factorisation on the CPU: ``torch.linalg.cholesky_ex`` against ``mireg.linalg.cholesky_ex``.

At each size n (multiples of 64 up to 1024, and 2048: the sizes of MIGE's kernel systems and whitening), a
random symmetric positive-definite ``[n, n]`` matrix (and a stack of two, the batched call of MIGE's
z and joint terms) is factorised both ways, interleaved call by call, one torch thread, in repeated
blocks; reported: median [IQR] µs per call over all calls and the median [IQR] of per-block ratios.
Writes ``benchmarks/results/cholesky_speed.{json,md,png}``.

    python benchmarks/cholesky_speed.py [--quick]
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
from torch import Tensor

from mireg.linalg import cholesky_ex

RESULTS = Path(__file__).parent / "results"
WAYS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "torch": torch.linalg.cholesky_ex,
    "mireg": cholesky_ex,
}


def quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


def time_size(n: int, stack: int, blocks: int, calls: int) -> dict[str, Any]:
    """Seconds per call of each way and per-block ratios torch / mireg at one size."""
    generator = torch.Generator().manual_seed(n)
    a = torch.randn(stack, n, n, generator=generator)
    matrix = (a @ a.mT / n + torch.eye(n)).squeeze(0)
    for way in WAYS.values():  # the two agree, and warm up
        way(matrix)
    factors = [way(matrix)[0] for way in WAYS.values()]
    if not torch.allclose(factors[0], factors[1], rtol=1e-5, atol=1e-5):
        raise SystemExit(f"the factors differ at n = {n}")
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    ratios = []
    for block in range(blocks):
        names = list(WAYS)[block % 2 :] + list(WAYS)[: block % 2]
        block_times: dict[str, list[float]] = {name: [] for name in WAYS}
        for _ in range(calls):
            for name in names:
                start = time.perf_counter()
                WAYS[name](matrix)
                block_times[name].append(time.perf_counter() - start)
        for name in WAYS:
            times[name].extend(block_times[name])
        ratios.append(statistics.median(block_times["torch"]) / statistics.median(block_times["mireg"]))
    return {"n": n, "stack": stack, "seconds": {k: quartiles(v) for k, v in times.items()}, "ratio": quartiles(ratios)}


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"`{meta['command']}`",
        "",
        f"Cholesky of a random SPD matrix on the CPU, one torch thread, torch {meta['torch']}, load average "
        f"{meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after, on {meta['cpus']} CPUs. "
        "µs per call: median [IQR]; torch / mireg: median [IQR] of per-block ratios of medians.",
        "",
        "| n | stack | torch µs | mireg µs | torch / mireg |",
        "|---|---|---|---|---|",
    ]

    def us(q: dict[str, float]) -> str:
        return f"{1e6 * q['median']:.0f} [{1e6 * q['q1']:.0f}, {1e6 * q['q3']:.0f}]"

    for row in result["rows"]:
        s, r = row["seconds"], row["ratio"]
        lines.append(
            f"| {row['n']} | {row['stack']} | {us(s['torch'])} | {us(s['mireg'])} | "
            f"{r['median']:.2f} [{r['q1']:.2f}, {r['q3']:.2f}] |"
        )
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for stack in sorted({row["stack"] for row in result["rows"]}):
        rows = [row for row in result["rows"] if row["stack"] == stack]
        for name in WAYS:
            ax.plot(
                [row["n"] for row in rows],
                [1e6 * row["seconds"][name]["median"] for row in rows],
                marker="o",
                markersize=3,
                linestyle="--" if name == "torch" else "-",
                label=f"{name}, stack {stack}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("µs per Cholesky (median)")
    ax.set_title("CPU Cholesky, one thread")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and blocks")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [128, 192, 256, 512] if args.quick else [*range(64, 1025, 64), 2048]
    blocks = 3 if args.quick else 11
    load_before = os.getloadavg()
    rows = []
    for n in sizes:
        for stack in (1, 2):
            calls = max(3, int(2e7 / n**3) + 3)
            rows.append(time_size(n, stack, blocks, calls))
            print(rows[-1]["n"], rows[-1]["stack"], f"{rows[-1]['ratio']['median']:.2f}", flush=True)
    meta = {
        "command": " ".join(["python", "benchmarks/cholesky_speed.py", *sys.argv[1:]]),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    result = {"meta": meta, "rows": rows}
    stem = "cholesky_speed" + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (args.out / f"{stem}.md").write_text(table)
    plot(result, args.out / f"{stem}.png")
    print(table)


if __name__ == "__main__":
    main()
