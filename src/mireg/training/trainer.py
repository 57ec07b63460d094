"""The generic trainer: epochs of task steps, per-epoch validation, checkpoints, exact resume.

Reproducibility: the seed fixes initialisation and sampling (torch, numpy and Python RNGs,
saved in every checkpoint) and the batch order (a function of seed and epoch, see
:func:`mireg.data.epoch_order`); the learning rate is a function of the epoch. A run stopped by
SIGINT/SIGTERM finishes its step, checkpoints mid-epoch and exits; a crash leaves the last
epoch's checkpoint. Either way ``--resume`` ends with the metrics of an uninterrupted run.
Evaluation restores the RNG states it found, so training does not depend on how often it
validates, and resuming a finished run repeats its last evaluation exactly.

Under torch.distributed (``torchrun ... -m mireg run``) every rank holds the data and takes its
slice of each global batch of ``world_size × train.batch_size`` rows; the estimators gather the
global batch themselves (:mod:`mireg.distributed`), gradients are averaged over ranks as
DistributedDataParallel would, and stopping is agreed on by all ranks at the same step. Only
rank 0 shows progress and writes checkpoints, metrics, curves and results. On GPUs BatchNorm
layers become SyncBatchNorm (statistics of the global batch); with gloo on CPUs, where PyTorch
has no SyncBatchNorm, batch statistics stay per rank and the running statistics are averaged over
ranks after every step.

Progress is a bar when its stream is a terminal and one line per epoch otherwise (a batch job,
``| tee log``), so logs hold no carriage-return fragments.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import attrs
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from mireg.config import Resolved, check_batch_size, parse_config, resolve, resolve_device
from mireg.data import Splits, steps_per_epoch, training_batches
from mireg.distributed import any_rank, average_buffers, average_gradients, mean_over_ranks, world
from mireg.errors import CheckpointError, Interrupted, MiregError, NonFiniteError, TrainingError
from mireg.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mireg.training.output import CHECKPOINT, CURVES, METRICS, RESULTS, claimed
from mireg.training.reports import plot_curves, write_json, write_metrics

#: [train] keys that may differ between a run and its resumption.
RESUMABLE_CHANGES = ("epochs", "device", "threads", "validate_every")


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


@attrs.define
class _State:
    """Progress saved in checkpoints besides modules, optimizers and RNGs."""

    epoch: int = 0
    step: int = 0
    running: dict[str, list[float]] = attrs.Factory(dict)
    history: list[dict[str, Any]] = attrs.Factory(list)


def _comparable(resolved: Resolved) -> dict[str, Any]:
    """The resolved configuration (defaults filled in) without the keys a resume may change."""
    config = resolved.to_dict()
    return {**config, "train": {k: v for k, v in config["train"].items() if k not in RESUMABLE_CHANGES}}


def _saved_settings(path: Path, saved: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's raw configuration ``saved``, resolved as :func:`_comparable` gives it."""
    try:
        config = parse_config(saved, source=f"{path} (field 'config')")
        kept = {key: value for key, value in config.train.items() if key not in RESUMABLE_CHANGES}
        config = attrs.evolve(config, train=kept)
        return _comparable(resolve(config))
    except MiregError as error:
        raise CheckpointError(f"the configuration saved in {path} does not resolve here: {error}") from None


class Trainer:
    """Runs one resolved configuration into ``out``: ``metrics.jsonl``, ``curves.png``,
    ``checkpoint.pt`` and ``results.json``."""

    def __init__(
        self, resolved: Resolved, out: str | Path, *, progress: bool = True, stream: TextIO | None = None
    ) -> None:
        """``progress`` on ``stream`` (default stderr): a bar on a terminal, else one line per epoch."""
        self.resolved = resolved
        self.settings = resolved.train
        self.task = resolved.task
        self.out = Path(out)
        self.progress = progress
        self.stream = sys.stderr if stream is None else stream
        self._final: dict[str, float] | None = None  # the last epoch's test metrics
        self.rank, self.world = world()
        self.main = self.rank == 0
        self.device = resolve_device(self.settings.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU
        self.dtype = getattr(torch, self.settings.dtype)

    # ------------------------------------------------------------------ setup
    def _build(self) -> tuple[Splits, nn.Module, dict[str, list[nn.Parameter]], dict[str, torch.optim.Optimizer]]:
        data = self.resolved.dataset.load().to(self.device, self.dtype)
        check_batch_size(self.settings, len(data.train), **self.resolved.batch_limits(), world=self.world)
        estimator = self.resolved.estimator.build() if self.resolved.estimator is not None else None
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
    def _apply(
        losses: dict[str, Tensor], groups: dict[str, list[nn.Parameter]], optimizers: dict[str, Any]
    ) -> str | None:
        """Each group's optimizer minimises its own loss w.r.t. its own parameters only (with the
        gradients averaged over ranks under torch.distributed). Returns what diverged, without
        stepping, when a gradient is non-finite (the same on every rank: NaN survives the average)."""
        active = [g for g in groups if g in losses and losses[g].requires_grad]
        for index, group in enumerate(active):
            params = groups[group]
            grads = torch.autograd.grad(losses[group], params, retain_graph=index < len(active) - 1, allow_unused=True)
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad
            average_gradients(params)
            present = [p.grad.detach().sum() for p in params if p.grad is not None]
            if present and not bool(torch.isfinite(torch.stack(present).sum())):
                return f"a gradient of the {group!r} parameters is non-finite"
        for group in active:  # only after every gradient is computed: steps change parameters in place
            optimizers[group].step()
        return None

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
        saved, current = _saved_settings(path, payload["config"]), _comparable(self.resolved)
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
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path} does not fit this model: {error}") from None
        try:
            set_rng_state(payload["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path} is damaged: the field 'rng' holds no RNG states ({error})") from None
        return _State(payload["epoch"], payload["step"], payload["running"], payload["history"])

    # ------------------------------------------------------------------ run
    def run(self, *, resume: bool = False, force: bool = False) -> dict[str, Any]:
        """Train (or continue with ``resume``) and return the results written to ``results.json``.

        ``out`` is checked and locked before any data are loaded (:mod:`mireg.training.output`):
        a fresh run refuses a folder holding a run unless ``force``, which overwrites it.
        """
        if not self.main:
            return self._run(resume)
        with claimed(self.out, resume=resume, force=force):
            return self._run(resume)

    def _run(self, resume: bool) -> dict[str, Any]:
        started = time.perf_counter()
        if self.settings.threads is not None:
            torch.set_num_threads(self.settings.threads)
        seed_everything(self.settings.seed)
        data, module, groups, optimizers = self._build()
        if resume:
            state = self._restore(module, optimizers)
        else:
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
        """Train the rest of epoch ``state.epoch`` (from step ``state.step``), then end it."""
        s, epoch = self.settings, state.epoch
        started = time.perf_counter()
        for name, optimizer in optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = s.lr_at(epoch, self._base_lr(name))
        module.train()
        reporting = self.progress and self.main
        live = reporting and self.stream.isatty()  # a live bar on a terminal, else one line per epoch
        bar = tqdm(
            total=steps_per_epoch(data.train, s.batch_size * self.world),
            initial=state.step,
            desc=f"epoch {epoch + 1}/{s.epochs}",
            disable=not live,
            file=self.stream,
        )
        with bar:
            batches = training_batches(data.train, s.batch_size * self.world, seed=s.seed, epoch=epoch, skip=state.step)
            for x, y in batches:
                stopping = self._step(module, groups, optimizers, state, x, y, bool(stops))
                bar.update(1)
                if "loss" in state.running:
                    bar.set_postfix(loss=f"{state.running['loss'][0] / state.running['loss'][1]:.4f}")
                if stopping:
                    self._checkpoint(module, optimizers, state)
                    self._interrupted(stops[0] if stops else signal.SIGTERM, state)
        self._end_epoch(data, module, optimizers, state)
        if reporting and not live:
            row = state.history[-1]
            shown = "".join(f", {key} {row[key]:.4f}" for key in ("train_loss", "val_error") if key in row)
            print(f"epoch {epoch + 1}/{s.epochs}{shown} ({time.perf_counter() - started:.1f} s)", file=self.stream)
        if any_rank(bool(stops), device=self.device)[0]:
            self._interrupted(stops[0] if stops else signal.SIGTERM, state)

    def _step(
        self,
        module: nn.Module,
        groups: dict[str, list[nn.Parameter]],
        optimizers: dict[str, Any],
        state: _State,
        x: Tensor,
        y: Tensor,
        stop_requested: bool,
    ) -> bool:
        """One training step on this rank's slice of the global batch ``x`` ``[world·B, d]``, ``y``:
        losses, divergence agreed over ranks, the optimizers' steps and the running metrics.
        Returns whether any rank was asked to stop."""
        size = self.settings.batch_size
        mine = slice(self.rank * size, (self.rank + 1) * size)
        try:
            out = self.task.step(module, x[mine], y[mine])
            loss = out.losses["model"].detach()
            bad = None if bool(torch.isfinite(loss)) else f"the loss is {float(loss)}"
        except NonFiniteError as error:  # an estimator saw the non-finite values first
            bad = str(error)
        diverged, stopping = any_rank(bad is not None, stop_requested, device=self.device)
        if diverged:
            raise self._diverged(bad or "on another rank", state)
        bad = self._apply(out.losses, groups, optimizers)
        if bad is not None:
            raise self._diverged(bad, state)
        average_buffers(module)
        for key, value in out.metrics.items():
            sums = state.running.setdefault(key, [0.0, 0.0])
            sums[0] += float(value)
            sums[1] += 1.0
        state.step += 1
        return stopping

    def _end_epoch(self, data: Splits, module: nn.Module, optimizers: dict[str, Any], state: _State) -> None:
        """The epoch's row of metrics (training means over ranks, validation when due, information-plane
        values when due; after the last epoch also the test metrics, kept for the results), then the
        checkpoint and ``metrics.jsonl``."""
        s, epoch, options = self.settings, state.epoch, self.resolved.eval
        module.eval()
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": s.lr_at(epoch, s.lr)}
        train = {f"train_{k}": total / count for k, (total, count) in state.running.items()}
        row.update(mean_over_ranks(train, self.device))
        if epoch + 1 == s.epochs:
            validation, self._final = self._final_evaluation(module, data)
            row.update(validation)
        elif (epoch + 1) % s.validate_every == 0:
            row.update(self._evaluate(module, data, ("val",)))
        every = self.task.information_every(options)
        if every and (epoch + 1) % every == 0:
            with self._rng_kept():
                information = self.task.information(module, data, options)
            row.update(mean_over_ranks(information, self.device))
        state.history.append(row)
        state.epoch, state.step, state.running = epoch + 1, 0, {}
        self._checkpoint(module, optimizers, state)
        if self.main:
            write_metrics(self.out / METRICS, state.history)

    def _rng_kept(self) -> contextlib.AbstractContextManager[None]:
        """A block whose torch RNG draws are undone afterwards: what evaluation draws changes neither
        training nor a resume (a finished run resumed repeats its last evaluation, and training does
        not depend on ``validate_every`` or ``eval.mi_every``)."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def _evaluate(self, module: nn.Module, data: Splits, splits: tuple[str, ...]) -> dict[str, float]:
        """``task.evaluate`` on ``splits``, its RNG draws undone."""
        with self._rng_kept():
            return self.task.evaluate(module, data, splits, self.resolved.eval)

    def _final_evaluation(self, module: nn.Module, data: Splits) -> tuple[dict[str, float], dict[str, float]]:
        """The last epoch's evaluation of val and test in one call: (val metrics, the others)."""
        metrics = self._evaluate(module, data, ("val", "test"))
        validation = {key: value for key, value in metrics.items() if key.startswith("val_")}
        return validation, {key: value for key, value in metrics.items() if key not in validation}

    def _diverged(self, what: str, state: _State) -> TrainingError:
        checkpoint = self.out / CHECKPOINT
        kept = f"{checkpoint} keeps the last good state" if checkpoint.exists() else "no checkpoint was written yet"
        return TrainingError(
            f"the loss became non-finite in epoch {state.epoch + 1}, step {state.step + 1} on rank {self.rank} "
            f"({what}); {kept}. Training diverged: try a lower train.lr (now {self.settings.lr:g})"
        )

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
        # resumed after the last epoch: repeat its evaluation
        metrics.update(self._final if self._final is not None else self._final_evaluation(module, data)[1])
        results = {
            "task": type(self.task).name,
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
