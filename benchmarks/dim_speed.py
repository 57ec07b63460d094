"""Cost of one DIM training step with MIGE vs. the JSD objective (issue 7: ratio at most 1.5).

The 32×32×3 DCGAN encoder (3 convs 64/128/256, FC 1024, Y 64) at batch 128. One step is what the
trainer does: the task's losses, the gradients of every parameter group, the optimizer steps.
MIGE uses the CIFAR config's setting (Circumstance I, the image projected to 64 dimensions);
JSD is global DIM (critic on conv features and Y). The two are timed interleaved, one torch
thread, so machine noise hits both alike; the median of the repeats is reported.

    python benchmarks/dim_speed.py [--repeats 15] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mireg.data import Split, Splits
from mireg.registry import default_registry
from mireg.tasks.dim import DIM, DIMModelOptions
from mireg.training.trainer import Trainer

RESULTS = Path(__file__).parent / "results" / "dim_speed.json"
BATCH = 128
#: label -> (estimator block, task option ``pair``)
SETUPS: dict[str, tuple[dict[str, Any], str]] = {
    "mige": ({"name": "mige", "options": {"score": "ssge", "projection_dim": 64}}, "input"),
    "jsd": ({"name": "jsd", "options": {}}, "conv"),
}


def _stepper(label: str, device: torch.device) -> Any:
    estimator_block, pair = SETUPS[label]
    torch.manual_seed(0)
    x = torch.rand(BATCH, 3 * 32 * 32, device=device)
    data = Splits(*(Split(x, torch.zeros(BATCH, dtype=torch.long, device=device)) for _ in range(3)), classes=10)
    estimator = default_registry().create("mi_gradient", estimator_block["name"], estimator_block["options"])
    task = DIM(pair=pair)  # type: ignore[arg-type]
    network = task.build(data, DIMModelOptions(variant="dcgan"), estimator, device=device, dtype=torch.float32)
    groups = task.parameter_groups(network)
    optimizers = {name: torch.optim.Adam(params, lr=1e-4) for name, params in groups.items()}

    def step() -> float:
        start = time.perf_counter()
        out = task.step(network, x, data.train.y)
        Trainer._apply(out.losses, groups, optimizers)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    steppers = {label: _stepper(label, device) for label in SETUPS}
    times: dict[str, list[float]] = {label: [] for label in SETUPS}
    for repeat in range(args.warmup + args.repeats):
        for label, step in steppers.items():
            seconds = step()
            if repeat >= args.warmup:
                times[label].append(seconds)
    median = {label: statistics.median(values) for label, values in times.items()}
    ratio = median["mige"] / median["jsd"]
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "batch": BATCH,
        "input": [3, 32, 32],
        "repeats": args.repeats,
        "median_s": median,
        "times_s": times,
        "ratio_mige_over_jsd": ratio,
        "target": 1.5,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median step: MIGE {median['mige'] * 1e3:.1f} ms, JSD {median['jsd'] * 1e3:.1f} ms on {result['device']}")
    print(f"ratio MIGE / JSD = {ratio:.2f} (target <= 1.5); written to {args.out}")


if __name__ == "__main__":
    main()
