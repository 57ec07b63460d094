"""Cost of the MIGE InfoMax surrogate in a training step, against the same step with a plain loss.

One step of a 784-512-64 MLP encoder at batch 128 (forward, backward, Adam update): once with a
plain loss on the representation, once maximising the MIGE surrogate of I(x; z) with the data
side randomly projected to 64 dimensions (scalable SSGE). Both are timed side by side in one run,
interleaved, with one torch thread; the ratio of medians is printed (target ≤ 1.5) and written
to ``benchmarks/results/mige_speed.json``.

    python benchmarks/mige_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import mireg

RESULTS = Path(__file__).parent / "results"


def make_step(loss_fn: Callable[[Tensor, Tensor], Tensor], seed: int) -> Callable[[Tensor], None]:
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 64))
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-4)

    def step(x: Tensor) -> None:
        optimizer.zero_grad()
        loss_fn(x, encoder(x)).backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 30 if args.quick else 200
    mi = mireg.mi_gradient_estimator("mige", projection_dim=64)
    steps = {
        "plain": make_step(lambda x, z: z.pow(2).mean(), 0),
        "mige": make_step(lambda x, z: -mi(x, z), 0),
    }
    generator = torch.Generator().manual_seed(0)
    data = [torch.rand(128, 784, generator=generator) for _ in range(8)]
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(repeats + 5):
        for name, step in steps.items():  # interleaved, so machine noise hits both alike
            start = time.perf_counter()
            step(data[i % len(data)])
            if i >= 5:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["mige"] / medians["plain"]
    result = {"median_seconds": medians, "ratio": ratio, "target": 1.5, "repeats": repeats, "threads": 1,
              "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mige_speed.json").write_text(json.dumps(result, indent=1))
    print(f"plain step {1e3 * medians['plain']:.2f} ms, MIGE step {1e3 * medians['mige']:.2f} ms, "
          f"ratio {ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
