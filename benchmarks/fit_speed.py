"""Two choices on the path of MIGE's score fits, timed on the CPU with one torch thread.

1. Cholesky: ``torch.linalg.cholesky_ex`` against ``mireg.linalg.cholesky_ex`` (power-of-two sizes
   bordered by an identity row and column) on random symmetric positive-definite ``[n, n]``
   matrices and stacks of two (MIGE's z and joint terms), n in multiples of 64 up to 1024 and 2048.
2. MIGE's two terms, the z term ``[M, 64]`` and the joint ``[M, 128]`` (a 64-wide representation, the
   data side projected to 64), preconditioned and scored by :func:`mireg.mige.preconditioned_scores`
   in one stacked fit against two separate fits, for the default kef, SSGE and Stein, at batch sizes
   M from 64 to 512: where the stack pays, which sets :data:`mireg.mige.STACKED_FIT_ROWS`.
3. The landmark path's evaluation: kef fitted on 512 rows of a 128-wide whitened batch and evaluated
   at all B rows (B = 2048, 8192), in blocks of :data:`mireg_kscore.expansion.EVALUATION_BLOCK` rows
   against all rows at once.

Each pair of ways runs interleaved call by call, in repeated blocks; reported: median [IQR] per call
over all calls and the median [IQR] of per-block ratios (first way / second way). Writes
``benchmarks/results/fit_speed{,_quick}.{json,md,png}`` (the PNG: the ratios of 1 and 2).

    python benchmarks/fit_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from mige_speed import interleaved
from torch import Tensor

import mireg
from mireg import mige
from mireg.estimators import ScoreEstimator
from mireg.linalg import cholesky_ex
from mireg.testing import correlated_gaussians
from mireg_kscore import expansion

RESULTS = Path(__file__).parent / "results"


def cholesky_row(n: int, stack: int, blocks: int) -> dict[str, Any]:
    a = torch.randn(stack, n, n, generator=torch.Generator().manual_seed(n))
    matrix = (a @ a.mT / n + torch.eye(n)).squeeze(0)
    if not torch.allclose(torch.linalg.cholesky_ex(matrix)[0], cholesky_ex(matrix)[0], rtol=1e-5, atol=1e-5):
        raise SystemExit(f"the factors differ at n = {n}")
    ways = {"torch": lambda: torch.linalg.cholesky_ex(matrix), "mireg": lambda: cholesky_ex(matrix)}
    return {"n": n, "stack": stack, **interleaved(ways, blocks, max(3, int(2e7 / n**3) + 3))}


def whitened(name: str) -> ScoreEstimator:
    """The registered score estimator ``name`` with the options MIGE builds it with (its ``whitened_options``)."""
    return mireg.score_estimator(name, **mireg.registry.default_registry().get("score", name).cls.whitened_options)


def stacked_row(name: str, m: int, blocks: int) -> dict[str, Any]:
    x, y = correlated_gaussians(m, 64, 0.5, torch.Generator().manual_seed(m))
    terms = [y, torch.cat([x, y], 1)]
    estimator = whitened(name)
    options: dict[str, Any] = {"calibrate": "affine", "landmarks": mige.DEFAULT_LANDMARKS}

    def fits(rows: int) -> Callable[[], list[Tensor]]:
        def run() -> list[Tensor]:
            mige.STACKED_FIT_ROWS = rows
            return mige.preconditioned_scores(estimator, terms, **options)

        return run

    default = mige.STACKED_FIT_ROWS
    try:
        result = interleaved({"stacked": fits(m), "separate": fits(0)}, blocks, max(3, int(3e7 / m**3) + 3))
    finally:
        mige.STACKED_FIT_ROWS = default
    return {"estimator": name, "m": m, **result}


def evaluation_row(b: int, blocks: int) -> dict[str, Any]:
    rows = torch.randn(b, 128, generator=torch.Generator().manual_seed(b))
    estimator = mireg.score_estimator(
        "kef", **mireg.registry.default_registry().get("score", "kef").cls.whitened_options
    )
    landmarks = rows[mige._landmark_rows(b, mige.DEFAULT_LANDMARKS, rows.device)]

    def evaluate(block: int) -> Callable[[], Tensor]:
        def run() -> Tensor:
            expansion.EVALUATION_BLOCK = block
            return estimator.score(landmarks, at=rows)

        return run

    default = expansion.EVALUATION_BLOCK
    try:
        result = interleaved({"blocks": evaluate(default), "at once": evaluate(b)}, blocks, 3)
    finally:
        expansion.EVALUATION_BLOCK = default
    return {"b": b, "block": default, **result}


def section(title: str, header: list[str], cells: list[list[str]]) -> list[str]:
    """Lines of a Markdown table under ``title``."""
    rows = ["| " + " | ".join(row) + " |" for row in cells]
    return ["", title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows]


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]

    def us(q: dict[str, float]) -> str:
        return f"{1e6 * q['median']:.0f} [{1e6 * q['q1']:.0f}, {1e6 * q['q3']:.0f}]"

    def ratio(q: dict[str, float]) -> str:
        return f"{q['median']:.2f} [{q['q1']:.2f}, {q['q3']:.2f}]"

    def cells(rows: list[dict[str, Any]], keys: list[str], ways: list[str]) -> list[list[str]]:
        return [
            [*(str(row[k]) for k in keys), *(us(row["seconds"][w]) for w in ways), ratio(row["ratio"])] for row in rows
        ]

    block = result["evaluation"][0]["block"] if result["evaluation"] else "-"
    lines = [
        f"`{meta['command']}`",
        "",
        f"CPU, one torch thread, torch {meta['torch']}, load average {meta['load_before'][0]:.1f} before, "
        f"{meta['load_after'][0]:.1f} after, on {meta['cpus']} CPUs. µs per call: median [IQR] over all calls; "
        "ratios: median [IQR] of per-block ratios of medians, the two ways interleaved call by call.",
        *section(
            "Cholesky of a random SPD matrix:",
            ["n", "stack", "torch µs", "mireg µs", "torch / mireg"],
            cells(result["cholesky"], ["n", "stack"], ["torch", "mireg"]),
        ),
        *section(
            "MIGE's z term [M, 64] and joint term [M, 128], preconditioned, scored and calibrated "
            f"(`preconditioned_scores`, landmarks {meta['landmarks']}): one stacked fit against two fits "
            f"(MIGE stacks up to M = {meta['stacked_fit_rows']}):",
            ["estimator", "M", "stacked µs", "separate µs", "stacked / separate"],
            cells(result["stacked"], ["estimator", "m"], ["stacked", "separate"]),
        ),
        *section(
            f"kef fitted on 512 landmark rows of a [B, 128] batch, evaluated at every row: in blocks of {block} "
            "rows against all rows at once:",
            ["B", "blocks µs", "at once µs", "blocks / at once"],
            cells(result["evaluation"], ["b"], ["blocks", "at once"]),
        ),
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for stack in sorted({row["stack"] for row in result["cholesky"]}):
        rows = [row for row in result["cholesky"] if row["stack"] == stack]
        ratios = [row["ratio"]["median"] for row in rows]
        left.plot([row["n"] for row in rows], ratios, marker="o", label=f"stack {stack}")
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_xlabel("n")
    left.set_ylabel("torch / mireg time (median)")
    left.set_title("Cholesky")
    left.legend()
    for name in sorted({row["estimator"] for row in result["stacked"]}):
        rows = [row for row in result["stacked"] if row["estimator"] == name]
        right.plot([row["m"] for row in rows], [row["ratio"]["median"] for row in rows], marker="o", label=name)
    right.axhline(1.0, color="grey", linewidth=0.8)
    right.set_xscale("log", base=2)
    right.set_xlabel("batch M")
    right.set_ylabel("stacked / separate time (median)")
    right.set_title("MIGE's two terms")
    right.legend()
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
    batches = [64, 128, 256] if args.quick else [64, 96, 128, 160, 192, 256, 512]
    blocks = 3 if args.quick else 11
    load_before = os.getloadavg()
    cholesky = [cholesky_row(n, stack, blocks) for n in sizes for stack in (1, 2)]
    stacked = [stacked_row(name, m, blocks) for name in ("kef", "ssge", "stein") for m in batches]
    evaluation = [evaluation_row(b, blocks) for b in ([2048] if args.quick else [2048, 8192])]
    meta = {
        "command": " ".join(["python", "benchmarks/fit_speed.py", *sys.argv[1:]]),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "landmarks": mige.DEFAULT_LANDMARKS,
        "stacked_fit_rows": mige.STACKED_FIT_ROWS,
    }
    result = {"meta": meta, "cholesky": cholesky, "stacked": stacked, "evaluation": evaluation}
    stem = "fit_speed" + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (args.out / f"{stem}.md").write_text(table)
    plot(result, args.out / f"{stem}.png")
    print(table)


if __name__ == "__main__":
    main()
