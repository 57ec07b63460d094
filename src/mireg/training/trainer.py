"""The generic trainer: epochs of task steps, per-epoch validation, checkpoints, exact resume.

Reproducibility: the seed fixes initialisation and sampling (torch, numpy and Python RNGs,
saved in every checkpoint) and the batch order (a function of seed and epoch, see
:func:`mireg.data.epoch_order`); the learning rate is a function of the epoch. A run stopped by
SIGINT/SIGTERM finishes its step, checkpoints mid-epoch and exits; a crash leaves the last
epoch's checkpoint. Either way ``--resume`` ends with the metrics of an uninterrupted run.

Under torch.distributed (``torchrun ... -m mireg run``) every rank holds the data and takes its
slice of each global batch of ``world_size × train.batch_size`` rows; the estimators gather the
global batch themselves (:mod:`mireg.distributed`), gradients are averaged over ranks as
DistributedDataParallel would, and stopping is agreed on by all ranks at the same step. Only
rank 0 shows progress and writes checkpoints, metrics, curves and results. On GPUs BatchNorm
layers become SyncBatchNorm (statistics of the global batch); with gloo on CPUs, where PyTorch
has no SyncBatchNorm, batch statistics stay per rank and the running statistics are averaged over
ranks after every step.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from mireg.config import Resolved
from mireg.data import Splits, steps_per_epoch, training_batches
from mireg.distributed import any_rank, average_buffers, average_gradients, mean_over_ranks, world
from mireg.errors import ConfigError, MiregError
from mireg.training.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mireg.training.reports import plot_curves, write_json, write_metrics

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
RESULTS = "results.json"
#: [train] keys that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("epochs", "device", "threads", "validate_every")


class Interrupted(MiregError):
    """The run was stopped by a signal after writing a checkpoint; ``signal`` is its number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signal = signum


class TrainingError(MiregError):
    """Training diverged (a non-finite loss); the last checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a :class:`torch.device` (``auto``: CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but CUDA is not available here; use 'cpu' or 'auto'")
    return device


def seed_everything(seed: int) -> None:
    """Seed torch (and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Catch SIGINT/SIGTERM into the yielded list (a second signal aborts at once)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}: aborting without a checkpoint")
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@dataclasses.dataclass
class _State:
    """Progress saved in checkpoints besides modules, optimizers and RNGs."""

    epoch: int = 0
    step: int = 0
    running: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    train = {k: v for k, v in config.get("train", {}).items() if k not in RESUMABLE_CHANGES}
    return {**config, "train": train}


class Trainer:
    """Runs one resolved configuration into ``out``: ``metrics.jsonl``, ``curves.png``,
    ``checkpoint.pt`` and ``results.json``."""

    def __init__(self, resolved: Resolved, out: str | Path, *, progress: bool = True) -> None:
        self.resolved = resolved
        self.settings = resolved.train
        self.task = resolved.task
        self.out = Path(out)
        self.progress = progress
        self.rank, self.world = world()
        self.main = self.rank == 0
        self.device = resolve_device(self.settings.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU
        self.dtype = getattr(torch, self.settings.dtype)

    # ------------------------------------------------------------------ setup
    def _build(self) -> tuple[Splits, nn.Module, dict[str, list[nn.Parameter]], dict[str, torch.optim.Optimizer]]:
        from mireg.registry import default_registry

        config = self.resolved.config
        data = self.resolved.dataset.load().to(self.device, self.dtype)
        estimator = None
        if config.estimator is not None:
            estimator = default_registry().create(
                "mi_gradient", config.estimator.name, config.estimator.options, where="estimator.options."
            )
        module = self.task.build(data, self.resolved.model, estimator, device=self.device, dtype=self.dtype)
        if self.world > 1 and self.device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        groups = self.task.parameter_groups(module)
        optimizers = {name: self._optimizer(name, params) for name, params in groups.items()}
        return data, module, groups, optimizers

    def _base_lr(self, group: str) -> float:
        s = self.settings
        return s.lr if group == "model" or s.critic_lr is None else s.critic_lr

    def _optimizer(self, group: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        s = self.settings
        if s.optimizer == "adam":
            return torch.optim.Adam(params, lr=self._base_lr(group), weight_decay=s.weight_decay)
        return torch.optim.SGD(params, lr=self._base_lr(group), momentum=0.9, weight_decay=s.weight_decay)

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _apply(losses: dict[str, Tensor], groups: dict[str, list[nn.Parameter]], optimizers: dict[str, Any]) -> None:
        """Each group's optimizer minimises its own loss w.r.t. its own parameters only (with the
        gradients averaged over ranks under torch.distributed)."""
        active = [g for g in groups if g in losses and losses[g].requires_grad]
        for index, group in enumerate(active):
            params = groups[group]
            grads = torch.autograd.grad(
                losses[group], params, retain_graph=index < len(active) - 1, allow_unused=True
            )
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad
            average_gradients(params)
        for group in active:  # only after every gradient is computed: steps change parameters in place
            optimizers[group].step()

    def _checkpoint(self, module: nn.Module, optimizers: dict[str, Any], state: _State) -> None:
        if not self.main:
            return
        save_checkpoint(
            self.out / CHECKPOINT,
            {
                "config": self.resolved.config.to_dict(),
                "epoch": state.epoch,
                "step": state.step,
                "running": state.running,
                "history": state.history,
                "module": module.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                "rng": rng_state(),
            },
        )

    def _restore(self, module: nn.Module, optimizers: dict[str, Any]) -> _State:
        path = self.out / CHECKPOINT
        payload = load_checkpoint(path, map_location=self.device)
        saved, current = _comparable(payload["config"]), _comparable(self.resolved.config.to_dict())
        if saved != current:
            changed = sorted(
                f"{block}.{key}"
                for block in set(saved) | set(current)
                for key in set(saved.get(block, {})) | set(current.get(block, {}))
                if saved.get(block, {}).get(key) != current.get(block, {}).get(key)
            )
            raise CheckpointError(
                f"{path} was written with another configuration (differences: {', '.join(changed)}); "
                "resume with the original config and seed, or choose another --out"
            )
        try:
            module.load_state_dict(payload["module"])
            for name, optimizer in optimizers.items():
                optimizer.load_state_dict(payload["optimizers"][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{path} does not fit this model: {error}") from None
        set_rng_state(payload["rng"])
        return _State(payload["epoch"], payload["step"], payload["running"], payload["history"])

    # ------------------------------------------------------------------ run
    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Train (or continue with ``resume``) and return the results written to ``results.json``."""
        started = time.perf_counter()
        checkpoint = self.out / CHECKPOINT
        if checkpoint.exists() and not resume:
            raise CheckpointError(
                f"{self.out} already holds a run ({checkpoint}); pass --resume to continue it or choose another --out"
            )
        if self.settings.threads is not None:
            torch.set_num_threads(self.settings.threads)
        seed_everything(self.settings.seed)
        data, module, groups, optimizers = self._build()
        if resume:
            state = self._restore(module, optimizers)
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            state = _State()
        if self.main:
            write_metrics(self.out / METRICS, state.history)
        with stop_requests() as stops:
            while state.epoch < self.settings.epochs:
                self._epoch(data, module, groups, optimizers, state, stops)
        return self._finish(data, module, state, time.perf_counter() - started)

    def _epoch(
        self,
        data: Splits,
        module: nn.Module,
        groups: dict[str, list[nn.Parameter]],
        optimizers: dict[str, Any],
        state: _State,
        stops: list[int],
    ) -> None:
        s, epoch = self.settings, state.epoch
        for name, optimizer in optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = s.lr_at(epoch, self._base_lr(name))
        module.train()
        total = steps_per_epoch(data.train, s.batch_size * self.world)
        if total == 0:
            raise ConfigError(
                f"train.batch_size = {s.batch_size} on {self.world} process(es) exceeds the {len(data.train)} "
                "training rows"
            )
        visible = self.progress and self.main
        bar = tqdm(total=total, initial=state.step, desc=f"epoch {epoch + 1}/{s.epochs}", disable=not visible)
        mine = slice(self.rank * s.batch_size, (self.rank + 1) * s.batch_size)
        with bar:
            batches = training_batches(data.train, s.batch_size * self.world, seed=s.seed, epoch=epoch, skip=state.step)
            for x, y in batches:
                out = self.task.step(module, x[mine], y[mine])
                loss = out.losses["model"]
                diverged, stopping = any_rank(not bool(torch.isfinite(loss)), bool(stops), device=self.device)
                if diverged:
                    raise TrainingError(
                        f"the loss became non-finite ({float(loss)} on rank {self.rank}) in epoch {epoch + 1}, "
                        f"step {state.step + 1}; "
                        f"{self.out / CHECKPOINT} keeps the last good state (try a lower train.lr)"
                    )
                self._apply(out.losses, groups, optimizers)
                average_buffers(module)
                for key, value in out.metrics.items():
                    sums = state.running.setdefault(key, [0.0, 0.0])
                    sums[0] += float(value)
                    sums[1] += 1.0
                state.step += 1
                bar.update(1)
                if "loss" in state.running:
                    bar.set_postfix(loss=f"{state.running['loss'][0] / state.running['loss'][1]:.4f}")
                if stopping:
                    self._checkpoint(module, optimizers, state)
                    self._interrupted(stops[0] if stops else signal.SIGTERM, state)
            module.eval()
            row: dict[str, Any] = {"epoch": epoch + 1, "lr": s.lr_at(epoch, s.lr)}
            train = {f"train_{k}": total_ / count for k, (total_, count) in state.running.items()}
            row.update(mean_over_ranks(train, self.device))
            if (epoch + 1) % s.validate_every == 0 or epoch + 1 == s.epochs:
                row.update(self.task.evaluate(module, data, "val", self.resolved.eval))
            shown = {key: f"{row[key]:.4f}" for key in ("train_loss", "val_error") if key in row}
            bar.set_postfix(shown)
        state.history.append(row)
        state.epoch, state.step, state.running = epoch + 1, 0, {}
        self._checkpoint(module, optimizers, state)
        if self.main:
            write_metrics(self.out / METRICS, state.history)
        if any_rank(bool(stops), device=self.device)[0]:
            self._interrupted(stops[0] if stops else signal.SIGTERM, state)

    def _interrupted(self, signum: int, state: _State) -> None:
        name = signal.Signals(signum).name
        where = f"epoch {state.epoch + 1}, step {state.step}" if state.step else f"the end of epoch {state.epoch}"
        raise Interrupted(
            f"stopped by {name} at {where}; checkpoint written to {self.out / CHECKPOINT}. "
            f"Continue with: mireg run CONFIG --out {self.out} --resume",
            signum,
        )

    def _finish(self, data: Splits, module: nn.Module, state: _State, runtime: float) -> dict[str, Any]:
        module.eval()
        config = self.resolved.config
        metrics = {k: v for k, v in state.history[-1].items() if k not in ("epoch", "lr")} if state.history else {}
        metrics.update(self.task.evaluate(module, data, "test", self.resolved.eval))
        results = {
            "task": self.resolved.task_cls.name,
            **self.task.describe(),
            "estimator": config.estimator.name if config.estimator else None,
            "dataset": config.data.name,
            "seed": self.settings.seed,
            "epochs": state.epoch,
            "metrics": metrics,
            "runtime_s": runtime,
            "config": config.to_dict(),
        }
        if self.main:
            write_json(self.out / RESULTS, results)
            plot_curves(self.out / CURVES, state.history)
        return results
