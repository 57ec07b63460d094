"""Linear-ish probes on frozen features: how the DIM paper (and MIGE §4.2) scores a representation.

For each layer of a frozen encoder a small classifier (one hidden layer of 200 units, dropout
0.1) is trained on the training split's features. The validation split picks the probe's epoch
(the only choice made); the test accuracy is reported at that epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mireg.data import Split, Splits


@attrs.frozen
class ProbeResult:
    """Accuracies of one probe: ``val`` (best over epochs), ``test`` at that ``epoch`` (1-based)."""

    val: float
    test: float
    epoch: int


class ProbeSettings(Protocol):
    """How the probes are trained (the DIM task's ``[eval]`` options satisfy it)."""

    @property
    def hidden(self) -> int: ...
    @property
    def dropout(self) -> float: ...
    @property
    def epochs(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def seed(self) -> int: ...


class Probe(nn.Module):
    """Classifier ``[B, d] -> [B, classes]`` logits: Linear, BatchNorm, ReLU, dropout, Linear."""

    def __init__(self, in_dim: int, classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        layers = [nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, classes))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


@torch.no_grad()
def extract(encode: Callable[[Tensor], Mapping[str, Tensor]], split: Split, batch_size: int) -> dict[str, Tensor]:
    """Features of every row of ``split`` by layer name: ``encode`` maps ``[b, d]`` to ``{layer: [b, k]}``."""
    parts: dict[str, list[Tensor]] = {}
    for x, _ in split.batches(batch_size):
        for layer, value in encode(x).items():
            parts.setdefault(layer, []).append(value.detach())
    return {layer: torch.cat(values) for layer, values in parts.items()}


@torch.no_grad()
def _accuracy(probe: Probe, features: Tensor, labels: Tensor, batch_size: int) -> float:
    probe.eval()
    right = sum(
        int((probe(features[i : i + batch_size]).argmax(-1) == labels[i : i + batch_size]).sum())
        for i in range(0, len(labels), batch_size)
    )
    return right / len(labels)


def train_probe(
    features: dict[str, Tensor],
    labels: dict[str, Tensor],
    classes: int,
    settings: ProbeSettings,
) -> ProbeResult:
    """Train one probe with Adam on ``features["train"]`` ``[N, k]`` and score it on ``"val"``/``"test"``.

    ``labels`` holds the ``[N]`` class indices of the same three splits. The global RNG is not
    touched: initialisation, dropout and batch order come from ``settings.seed`` alone, so the same
    features always give the same result.
    """
    batch_size = settings.batch_size
    train_x, train_y = features["train"], labels["train"]
    device = train_x.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        probe = Probe(train_x.shape[1], classes, settings.hidden, settings.dropout)
        probe = probe.to(device=device, dtype=train_x.dtype)
        optimizer = torch.optim.Adam(probe.parameters(), lr=settings.lr)
        best = ProbeResult(-1.0, 0.0, 0)
        for epoch in range(1, settings.epochs + 1):
            probe.train()
            order = torch.randperm(len(train_y), device=device)
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                if len(rows) < 2:  # BatchNorm needs two rows: a last batch of one is dropped
                    break
                loss = F.cross_entropy(probe(train_x[rows]), train_y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            val = _accuracy(probe, features["val"], labels["val"], 4 * batch_size)
            if val > best.val:
                best = ProbeResult(val, _accuracy(probe, features["test"], labels["test"], 4 * batch_size), epoch)
    return best


def probe_layers(
    encode: Callable[[Tensor], Mapping[str, Tensor]],
    data: Splits,
    settings: ProbeSettings,
) -> dict[str, ProbeResult]:
    """One probe per layer that ``encode`` returns, trained on frozen features: layer -> result."""
    splits = ("train", "val", "test")
    by_split = {name: extract(encode, data.split(name), 4 * settings.batch_size) for name in splits}
    labels = {name: data.split(name).y for name in splits}
    return {
        layer: train_probe({name: by_split[name][layer] for name in splits}, labels, data.classes, settings)
        for layer in by_split["train"]
    }
