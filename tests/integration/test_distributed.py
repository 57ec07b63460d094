"""Two gloo processes on the CPU give the same parameter gradients as one process with both
shards: estimators see the global batch (mireg.distributed), DDP-style gradient averaging.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import mireg
from mireg.distributed import gather_rows

WORLD = 2
BATCH = 48  # per rank

CASES: dict[str, dict[str, Any]] = {
    "mige": {"name": "mige"},
    "mige-stein": {"name": "mige", "score": "stein"},
    "mige-stochastic": {"name": "mige", "stochastic": True},
    "mige-mixture": {"name": "mige", "stochastic": True, "mean": True},
    "mine": {"name": "mine"},
    "mine-f": {"name": "mine-f"},
    "infonce": {"name": "infonce"},
    "jsd": {"name": "jsd"},
}


def gradients(case: str, rows: slice) -> dict[str, torch.Tensor]:
    """Parameter gradients of ``-mi(x, E(x))`` on rows ``rows`` of a fixed global batch."""
    spec = dict(CASES[case])
    name, stochastic, with_mean = spec.pop("name"), spec.pop("stochastic", False), spec.pop("mean", False)
    torch.manual_seed(0)
    x = torch.randn(WORLD * BATCH, 5, dtype=torch.float64)[rows]
    encoder = nn.Linear(5, 6 if stochastic else 3).double()
    mi = mireg.mi_gradient_estimator(name, **spec).double()
    if stochastic:
        mean, log_var = encoder(x).chunk(2, dim=1)
        z = mean + (0.5 * log_var).exp() * torch.randn(WORLD * BATCH, 3, dtype=torch.float64)[rows]
        loss = -(mi(x, z, log_var=log_var, mean=mean) if with_mean else mi(x, z, log_var=log_var))
    else:
        loss = -mi(x, encoder(x))
    params = dict(encoder.named_parameters()) | {f"mi.{k}": v for k, v in mi.named_parameters()}
    loss.backward()
    grads = {k: v.grad.clone() for k, v in params.items() if v.grad is not None}
    if not stochastic:
        with torch.no_grad():
            value = mi.estimate(x, torch.tanh(encoder(x)))  # a linear encoder makes (x, z) singular: I = inf
        if value is not None:  # bound estimators: the value of the global batch, on every rank
            grads["estimate"] = value
    return grads


class RowCounter(mireg.MIGradientEstimator):
    """Records how many rows ``forward`` and ``_estimate`` receive (x, z and the keyword tensor ``weight``)."""

    name = "row-counter"

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor, z: torch.Tensor, *, weight: torch.Tensor) -> torch.Tensor:
        self.rows += [x.shape[0], z.shape[0], weight.shape[0]]
        return (x.sum(1) * z.sum(1) * weight).mean()

    def _estimate(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.rows += [x.shape[0], z.shape[0]]
        return (x.sum(1) * z.sum(1)).mean()


class CallsSuper(RowCounter):
    """Overrides both implementations and calls the base's: the inputs must not be gathered again."""

    def forward(self, x: torch.Tensor, z: torch.Tensor, *, weight: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return super().forward(x, z, weight=weight)

    def _estimate(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return super()._estimate(x, z)


def rows_seen(rows: slice) -> dict[str, torch.Tensor]:
    """Rows each implementation of :class:`CallsSuper` saw, and its forward and estimate values, on ``rows``."""
    torch.manual_seed(0)
    x, z, weight = torch.randn(3, WORLD * BATCH, 4, dtype=torch.float64)[:, rows]
    mi = CallsSuper()
    value = mi(x, z, weight=weight[:, 0])
    estimate = mi.estimate(x, z)
    return {"rows": torch.tensor(mi.rows), "value": value.detach(), "estimate": estimate}


def _worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for case in CASES:
            grads = gradients(case, slice(rank * BATCH, (rank + 1) * BATCH))
            for key, grad in grads.items():  # what DistributedDataParallel does to parameter gradients
                if key != "estimate":
                    dist.all_reduce(grad)
                    grad /= WORLD
            results[case] = grads
        results["calls-super"] = rows_seen(slice(rank * BATCH, (rank + 1) * BATCH))
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_gradients(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("ddp")
    out = folder / "grads.pt"
    mp.spawn(_worker, args=(str(folder / "store"), str(out)), nprocs=WORLD, join=True)
    results: dict[str, dict[str, torch.Tensor]] = torch.load(out, weights_only=True)
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_match_one_process_with_the_global_batch(
    case: str, two_process_gradients: dict[str, dict[str, torch.Tensor]]
) -> None:
    distributed = two_process_gradients[case]
    single = gradients(case, slice(None))
    assert distributed.keys() == single.keys() and single
    for key, grad in single.items():
        torch.testing.assert_close(distributed[key], grad, rtol=1e-9, atol=1e-12, msg=f"{case}: {key}")


def test_without_a_process_group_nothing_is_gathered() -> None:
    x = torch.randn(4, 2, requires_grad=True)
    assert gather_rows(x) is x


def test_a_subclass_calling_super_gathers_the_rows_once(
    two_process_gradients: dict[str, dict[str, torch.Tensor]],
) -> None:
    seen = two_process_gradients["calls-super"]
    # forward: subclass x, base x, z, weight; estimate: subclass x, base x, z. Gathered twice would be 4 * BATCH.
    assert seen["rows"].tolist() == [WORLD * BATCH] * 7
    single = rows_seen(slice(None))
    torch.testing.assert_close(seen["value"], single["value"], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(seen["estimate"], single["estimate"], rtol=1e-12, atol=0.0)
