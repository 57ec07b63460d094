"""Every estimator and task on a GPU: device and dtype follow the inputs, with timings.

Runs each registered score estimator, each MI-gradient estimator (forward, backward, estimate)
and a one-epoch run of each task config on ``--device`` (default ``cuda``), in float32 and
float64, and checks that every output lives on that device in the input's dtype and is finite.
Prints one line per check with its median time and writes ``benchmarks/results/device_check.json``.
It is run when a GPU machine is available; ``--device cpu`` is a dry run of the script itself.

    python benchmarks/device_check.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import mireg
from mireg.config import load_config, resolve
from mireg.testing import correlated_gaussians
from mireg.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CONFIGS = ("configs/ib-quick.toml", "configs/dim-digits.toml")


def timed(function: Callable[[], Any], device: torch.device, repeats: int) -> tuple[Any, float]:
    """The last result of ``function`` and its median time in seconds (synchronised on CUDA)."""
    times, result = [], None
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times[1:])  # the first call warms up kernels and lazy layers


def check_tensor(name: str, value: torch.Tensor, device: torch.device, dtype: torch.dtype) -> None:
    if value.device.type != device.type or value.dtype != dtype or not bool(torch.isfinite(value).all()):
        finite = bool(torch.isfinite(value).all())
        raise AssertionError(
            f"{name}: got {value.dtype} on {value.device} (finite: {finite}), expected finite {dtype} on {device}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available here: run this on a GPU machine, or pass --device cpu for a dry run")
    repeats, batch = (2, 256) if args.quick else (10, 1024)
    rows: list[dict[str, Any]] = []

    def record(kind: str, name: str, dtype: torch.dtype, seconds: float) -> None:
        rows.append({"kind": kind, "name": name, "dtype": str(dtype), "ms": 1e3 * seconds})
        print(f"{kind:<12} {name:<10} {dtype!s:<14} {1e3 * seconds:9.2f} ms", flush=True)

    for dtype in (torch.float32, torch.float64):
        generator = torch.Generator().manual_seed(0)
        x, y = (t.to(device=device, dtype=dtype) for t in correlated_gaussians(batch, 16, 0.8, generator))
        for info in mireg.list_estimators("score"):
            estimator = mireg.score_estimator(info.name)
            if isinstance(estimator, torch.nn.Module):
                estimator.to(device=device, dtype=dtype)
            score, seconds = timed(lambda e=estimator, samples=y: e.score(samples), device, repeats)
            check_tensor(f"score {info.name}", score, device, dtype)
            record("score", info.name, dtype, seconds)
        for info in mireg.list_estimators("mi_gradient"):
            mi = mireg.mi_gradient_estimator(info.name).to(device=device, dtype=dtype)
            leaf = y.clone().requires_grad_()

            def step(mi: torch.nn.Module = mi, x: torch.Tensor = x, leaf: torch.Tensor = leaf) -> torch.Tensor:
                leaf.grad = None
                mi(x, leaf).backward()
                assert leaf.grad is not None
                return leaf.grad

            grad, seconds = timed(step, device, repeats)
            check_tensor(f"gradient {info.name}", grad, device, dtype)
            value = mi.estimate(x, y)
            if value is not None:
                check_tensor(f"estimate {info.name}", value.detach(), device, dtype)
            record("mi_gradient", info.name, dtype, seconds)
    for path in CONFIGS:
        config = load_config(ROOT / path).with_train(device=args.device, epochs=1)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            results = Trainer(resolve(config), out, progress=False).run()
        record("task", Path(path).stem, torch.float32, time.perf_counter() - start)  # one epoch, setup included
        rows[-1]["metrics"] = results["metrics"]
    RESULTS.mkdir(exist_ok=True)
    report = {
        "device": str(device),
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "rows": rows,
    }
    (RESULTS / f"device_check_{device.type}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"all {len(rows)} checks passed on {report['name']}")


if __name__ == "__main__":
    main()
