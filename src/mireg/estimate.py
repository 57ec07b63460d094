"""``estimate_mi``: the MI of a finite data set in one call, measured on rows no training step saw.

The rows are shuffled (``seed``) and cut into three disjoint splits:

* **train** (the rest): the estimator's parameters (a critic, a variational q) descend its training
  loss on random batches of these rows, and the standardisation (per-column mean and standard
  deviation) is fitted on these rows only;
* **validation** (``validation_fraction``): every ``eval_every`` steps the training loss is
  evaluated here; the parameters with the lowest validation loss are kept, and training stops
  after ``patience`` steps without improvement (early stopping);
* **test** (``test_fraction``): touched once, at the end, by the kept parameters; ``value`` is the
  mean of ``estimate`` over disjoint batches of these rows and ``stderr`` its standard error.

The stopping step is chosen on the validation rows, so the validation value of the kept
parameters is the maximum of noisy numbers and biased upwards; the test rows played no part in
any choice, so ``value`` is not. An estimator without parameters (nothing to train, e.g. MIGE's
heat-flow value) is evaluated on batches of all rows: no row was used to fit it. Bound values
depend on the batch size (InfoNCE is at most log B), so evaluation batches have the training
batch size.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor

from mireg.errors import NonFiniteError
from mireg.estimators import MIGradientEstimator
from mireg.registry import default_registry

#: Columns with at most this many distinct values look discrete (a warning says why that misleads).
DISCRETE_VALUES = 10


@attrs.frozen
class Training:
    """Training settings of :func:`estimate_mi` for one estimator.

    ``batch_size`` rows per step (and per evaluation batch); at most ``max_steps`` Adam steps at
    learning rate ``lr`` with decoupled ``weight_decay`` (AdamW); the validation loss every
    ``eval_every`` steps; stop after ``patience`` steps without a better validation loss.
    """

    batch_size: int = 128
    max_steps: int = 3000
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 50
    patience: int = 500

    def __attrs_post_init__(self) -> None:
        for name, minimum in (("batch_size", 2), ("max_steps", 1), ("eval_every", 1), ("patience", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if (
            not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay))
            or self.weight_decay < 0
        ):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")


#: Defaults per estimator name where ``Training()`` is not the measured best, chosen with
#: ``benchmarks/finite_data.py`` (results in ``benchmarks/results/finite_data*.md``): InfoNCE's separable
#: 2x256 critic overfits 3,000 training rows within ~100 steps at lr 1e-3, less at 3e-4 (jsd: same critic);
#: SMILE's JS-trained critic is still improving after 3,000 steps at 16.6 nats at lr 1e-3, much nearer at 3e-3.
TRAINING_DEFAULTS: dict[str, Training] = {
    "infonce": Training(lr=3e-4),
    "jsd": Training(lr=3e-4),
    "smile": Training(lr=3e-3),
    "mige": Training(batch_size=512),  # nothing to train: the heat-flow value of batches of all rows (bmi_suite.md)
}


@attrs.frozen
class Evaluation:
    """One evaluation during training: ``step``; ``train``, the mean ``estimate`` on as many training
    rows as there are validation rows (rows the parameters were fitted on: the gap to ``validation``
    shows overfitting); ``validation``, the mean ``estimate`` on the validation rows;
    ``validation_loss``, the mean training loss there (what early stopping minimises)."""

    step: int
    train: float
    validation: float
    validation_loss: float


@attrs.frozen
class MIEstimate:
    """The result of :func:`estimate_mi`.

    ``value`` (nats) is the mean of ``estimate`` over ``test_batches`` disjoint batches of test rows
    that no training step or model choice saw (all rows, ``rows == (0, 0, N)``, for an estimator
    without parameters); ``stderr`` is the standard error of that mean over
    the batches (sampling error of the test rows for the kept parameters, not the spread between
    training runs). ``steps`` training steps ran; the kept parameters are those of ``best_step``.
    ``rows`` counts the (train, validation, test) rows; ``settings`` are the training settings used
    and ``options`` the estimator's options (defaults included).
    """

    value: float
    stderr: float
    steps: int
    best_step: int
    history: tuple[Evaluation, ...]
    estimator: str
    options: dict[str, Any]
    settings: Training
    rows: tuple[int, int, int]
    test_batches: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        return attrs.asdict(self, value_serializer=lambda _, __, v: list(v) if isinstance(v, tuple) else v)


def _as_matrix(data: object, name: str) -> Tensor:
    """``data`` (numpy array, tensor or nested sequence) as a float32 CPU tensor ``[N, d]``; 1-D is one column."""
    if isinstance(data, Tensor):
        array = data.detach().cpu().numpy()
    else:
        try:
            array = np.asarray(data)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} must be a numeric array [N, d] (numpy or torch), got {type(data).__name__}"
            ) from error
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"{name} must hold numbers (a float or integer array [N, d]), got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a matrix [N, d] (one row per sample) or a vector [N], got shape {array.shape} "
            f"({array.ndim} dimensions); flatten the per-sample dimensions first, e.g. {name}.reshape(len({name}), -1)"
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {array.shape}); it needs at least one variable")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} has NaN or infinite values in {len(rows)} row(s) (first: {rows[:5].tolist()}); "
            "drop or impute those rows (in x and y alike) before estimating MI"
        )
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _check_columns(data: Tensor, name: str) -> None:
    """Raise for constant columns of ``data`` ``[N, d]``; warn for columns with few distinct values."""
    constant = torch.nonzero(data.max(0).values == data.min(0).values).flatten().tolist()
    if constant:
        raise ValueError(
            f"column(s) {constant} of {name} are constant: a constant carries no information and cannot be "
            "standardised; drop those columns"
        )
    few = [j for j in range(data.shape[1]) if torch.unique(data[:, j]).numel() <= DISCRETE_VALUES]
    if few:
        warnings.warn(
            f"column(s) {few} of {name} take at most {DISCRETE_VALUES} distinct values: the estimators assume "
            "continuous data with a density, and on repeated values the density ratio they learn is unbounded "
            "(the joint puts mass on single points), so the estimate grows with training and capacity instead of "
            "converging to the discrete MI; add small noise (dequantise) or use a discrete estimator",
            UserWarning,
            stacklevel=3,
        )


def _split_sizes(n: int, batch: int, test_fraction: float, validation_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) row counts; each split must hold a batch, the test split two (for a stderr)."""
    for label, value in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{label} must be in (0, 1), got {value!r}")
    if test_fraction + validation_fraction >= 1.0:
        raise ValueError(
            "test_fraction + validation_fraction must leave rows to train on (sum < 1), "
            f"got {test_fraction} + {validation_fraction}"
        )
    n_test = round(n * test_fraction)
    n_validation = round(n * validation_fraction)
    n_train = n - n_test - n_validation
    if n_train < batch or n_validation < batch or n_test < 2 * batch:
        share = min(1.0 - test_fraction - validation_fraction, validation_fraction, test_fraction / 2)
        largest = int(n * share)
        needed = math.ceil(batch / share)
        advice = f"a batch_size of at most {largest}" if largest >= 2 else "more rows"
        raise ValueError(
            f"{n} rows are too few for batch_size={batch}: split as {n_train} train / {n_validation} validation / "
            f"{n_test} test rows, but the train and validation splits need one batch each and the test split two "
            f"(for a standard error); use at least {needed} rows, or {advice}"
        )
    return n_train, n_validation, n_test


def split_rows(
    n: int, *, batch_size: int, test_fraction: float = 0.2, validation_fraction: float = 0.2, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """The row indices (train, validation, test) that :func:`estimate_mi` uses for ``n`` rows and these
    settings: a permutation of ``range(n)`` drawn from ``seed``, test rows first, then validation rows.

    Raises ValueError when a split would hold too few rows for ``batch_size`` (see :func:`estimate_mi`).
    """
    _, n_validation, n_test = _split_sizes(n, batch_size, test_fraction, validation_fraction)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_test + n_validation :], order[n_test : n_test + n_validation], order[:n_test]


def _check_two_batches(n: int, batch: int) -> None:
    """An estimator without parameters is valued on batches of all ``n`` rows and needs two (for a standard error)."""
    if n < 2 * batch:
        raise ValueError(
            f"{n} rows are too few for batch_size={batch}: an estimator without parameters is valued on batches of "
            f"all rows and needs two (for a standard error); use a batch_size of at most {n // 2}, or more rows"
        )


def _batches(n: int, batch: int) -> list[slice]:
    """Disjoint slices of ``batch`` rows covering ``[0, n)`` (a remainder under one batch is dropped)."""
    return [slice(start, start + batch) for start in range(0, n - batch + 1, batch)]


@torch.no_grad()
def _values(mi: MIGradientEstimator, x: Tensor, y: Tensor, batch: int) -> list[float]:
    """``mi.estimate`` on each disjoint batch of ``x`` ``[n, dx]``, ``y`` ``[n, dy]``."""
    values = []
    for rows in _batches(x.shape[0], batch):
        value = mi.estimate(x[rows], y[rows])
        assert value is not None  # checked once before training
        values.append(float(value))
    return values


@torch.no_grad()
def _losses(mi: MIGradientEstimator, x: Tensor, y: Tensor, batch: int) -> list[float]:
    """``mi.training_loss`` on each disjoint batch of ``x`` ``[n, dx]``, ``y`` ``[n, dy]``."""
    return [float(mi.training_loss(x[rows], y[rows])) for rows in _batches(x.shape[0], batch)]


def _progress_bar(enabled: bool | None, total: int, name: str) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"estimate_mi {name}", unit="step", leave=False)


def estimate_mi(
    x: object,
    y: object,
    estimator: str | MIGradientEstimator = "infonce",
    *,
    options: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    max_steps: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
) -> MIEstimate:
    """Estimate I(x; y) in nats from paired rows, on test rows that no training step saw.

    Args:
        x: ``[N, dx]`` (or ``[N]``, one column), numpy array, tensor or nested sequence of numbers.
        y: ``[N, dy]`` (or ``[N]``) with the same N; row i of x and y is one sample.
        estimator: the name of a registered MI-gradient estimator that gives a value (``mireg list``),
            or an instance (trained in place; its name picks the default settings).
        options: the estimator's options, e.g. ``{"hidden": 64}`` (``mireg show NAME``); names only.
        batch_size, max_steps, lr, weight_decay, eval_every, patience: training settings (see
            :class:`Training`); ``None`` takes the measured default of :data:`TRAINING_DEFAULTS`
            (``Training()`` for an estimator not listed there).
        test_fraction: share of the rows held out for the reported value.
        validation_fraction: share of the rows for early stopping.
        seed: splits (:func:`split_rows`), batches and the initialisation (the caller's global RNG
            state is restored afterwards).
        device: where to train, e.g. ``"cpu"`` or ``"cuda"``.
        progress: a progress bar on stderr; ``None``: only when stderr is a terminal.
    Returns:
        An :class:`MIEstimate`. ``value`` is what the estimator's ``estimate`` measures: MI for the
        bounds, 2·JS divergence for ``jsd``, an upper bound for ``club``.
    Raises:
        ValueError: mismatched rows, too few rows, NaN/Inf, constant columns, a rank other than 1
            or 2, an estimator without a value (``estimate`` returns None), or bad settings.
        UnknownEstimatorError, OptionError: an unknown estimator name or option.
    """
    start = time.perf_counter()
    a, b = _as_matrix(x, "x"), _as_matrix(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows (row i of each is one paired sample), "
            f"got {a.shape[0]} and {b.shape[0]}"
        )
    _check_columns(a, "x")
    _check_columns(b, "y")
    if isinstance(estimator, MIGradientEstimator):
        if options:
            raise ValueError(f"options {sorted(options)} apply to an estimator name, not to an instance")
        name = estimator.name
    else:
        name = default_registry().get("mi_gradient", estimator).name
    overrides: dict[str, Any] = {
        "batch_size": batch_size,
        "max_steps": max_steps,
        "lr": lr,
        "weight_decay": weight_decay,
        "eval_every": eval_every,
        "patience": patience,
    }
    settings = attrs.evolve(
        TRAINING_DEFAULTS.get(name, Training()), **{k: v for k, v in overrides.items() if v is not None}
    )
    target = torch.device(device)
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed + 1)
        if isinstance(estimator, MIGradientEstimator):
            mi = estimator.to(target)
        else:
            mi = default_registry().create("mi_gradient", name, dict(options or {})).to(target)
        # The probe sizes a lazy critic, so that its parameters exist below; its rows are the permutation's
        # last, which split_rows makes training rows.
        order = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed))
        tail = order[-settings.batch_size :]
        _check_gives_value(
            mi, *(_standardised(data, tail, side)[tail].to(target) for data, side in ((a, "x"), (b, "y")))
        )
        fit = _Fit(mi, settings, generator, _progress_bar(progress, settings.max_steps, name))
        if list(mi.parameters()):
            train, validation, test = split_rows(
                a.shape[0],
                batch_size=settings.batch_size,
                test_fraction=test_fraction,
                validation_fraction=validation_fraction,
                seed=seed,
            )
            rows = (len(train), len(validation), len(test))
            a, b = _standardised(a, train, "x").to(target), _standardised(b, train, "y").to(target)
            fit.train(a[train], b[train], a[validation], b[validation])
        else:  # nothing is fitted to any row, so every row is a test row
            _check_two_batches(a.shape[0], settings.batch_size)
            test, rows = order, (0, 0, a.shape[0])
            a, b = _standardised(a, test, "x").to(target), _standardised(b, test, "y").to(target)
        values = _values(mi.eval(), a[test], b[test], settings.batch_size)
    if not np.isfinite(values).all():
        raise NonFiniteError(
            f"{name} gave a non-finite value on the test rows even with the kept parameters (step {fit.best_step}); "
            "lower lr or the critic's size"
        )
    return MIEstimate(
        value=float(np.mean(values)),
        stderr=float(np.std(values, ddof=1) / math.sqrt(len(values))),
        steps=fit.steps,
        best_step=fit.best_step,
        history=tuple(fit.history),
        estimator=name,
        options=mi.options(),
        settings=settings,
        rows=rows,
        test_batches=len(values),
        seconds=time.perf_counter() - start,
    )


def _standardised(data: Tensor, train: Tensor, name: str) -> Tensor:
    """``data`` ``[N, d]`` minus the mean, over the standard deviation, both of the ``train`` rows only."""
    std = data[train].std(0)
    flat = torch.nonzero(std == 0).flatten().tolist()
    if flat:
        raise ValueError(
            f"column(s) {flat} of {name} are constant on the training rows (nearly constant overall); drop them"
        )
    return (data - data[train].mean(0)) / std


@torch.no_grad()
def _check_gives_value(mi: MIGradientEstimator, x: Tensor, y: Tensor) -> None:
    """Raise if ``mi`` has no value to give (``estimate`` returns ``None``); also sizes a lazy critic."""
    if mi.estimate(x, y) is None:
        raise ValueError(
            f"the estimator {mi.name!r} gives no MI value (its estimate() returns None: it estimates gradients "
            "only); choose one that does, e.g. 'infonce', 'mine', 'mine-f' or 'smile' (`mireg list`)"
        )


class _Fit:
    """Training with early stopping: the state of the steps so far (``steps``, ``best_step``, ``history``)."""

    def __init__(self, mi: MIGradientEstimator, settings: Training, generator: torch.Generator, bar: Any) -> None:
        self.mi, self.settings, self.generator, self.bar = mi, settings, generator, bar
        self.steps = 0
        self.best_step = 0
        self.history: list[Evaluation] = []

    def _batches(self, n: int) -> Iterator[Tensor]:
        """Row indices of training batches: reshuffled every pass over the ``n`` rows, without end."""
        while True:
            order = torch.randperm(n, generator=self.generator)
            for rows in _batches(n, self.settings.batch_size):
                yield order[rows]

    def _step(
        self,
        step: int,
        optimizer: torch.optim.Optimizer,
        rows: Tensor,
        x: Tensor,
        y: Tensor,
        x_validation: Tensor,
        y_validation: Tensor,
    ) -> Evaluation | None:
        """One optimiser step on the training ``rows``; the evaluation when ``step`` is due for one, else ``None``."""
        s, mi = self.settings, self.mi
        rows = rows.to(x.device)
        mi.train()
        optimizer.zero_grad(set_to_none=True)
        loss = mi.training_loss(x[rows], y[rows])
        loss.backward()
        optimizer.step()
        self.steps = step
        if self.bar is not None:
            self.bar.update(1)
        if step % s.eval_every and step != s.max_steps:
            return None
        values, losses = (
            _values(mi.eval(), x_validation, y_validation, s.batch_size),
            _losses(mi, x_validation, y_validation, s.batch_size),
        )
        seen = _values(mi, x[: x_validation.shape[0]], y[: x_validation.shape[0]], s.batch_size)
        return Evaluation(step, float(np.mean(seen)), float(np.mean(values)), float(np.mean(losses)))

    def train(self, x: Tensor, y: Tensor, x_validation: Tensor, y_validation: Tensor) -> None:
        """Adam(W) steps on batches of ``x`` ``[n, dx]``, ``y`` ``[n, dy]``; keep the parameters with the
        lowest training loss on the validation rows; stop ``patience`` steps after the last improvement."""
        s, mi = self.settings, self.mi
        optimizer = torch.optim.AdamW(mi.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        best_loss, best_state = math.inf, copy.deepcopy(mi.state_dict())
        batches = self._batches(x.shape[0])
        for step in range(1, s.max_steps + 1):
            try:
                evaluation = self._step(step, optimizer, next(batches), x, y, x_validation, y_validation)
            except NonFiniteError:  # the estimator met or made a non-finite value: the same as a NaN loss
                evaluation = Evaluation(step, math.nan, math.nan, math.nan)
            if evaluation is None:
                continue
            self.history.append(evaluation)
            if not math.isfinite(evaluation.validation_loss):
                warnings.warn(
                    f"training diverged by step {step} (non-finite values); kept the parameters of step "
                    f"{self.best_step}: lower lr (now {s.lr}) for a trained estimate",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            if evaluation.validation_loss < best_loss:
                best_loss, best_state, self.best_step = evaluation.validation_loss, copy.deepcopy(mi.state_dict()), step
                if self.bar is not None:
                    self.bar.set_postfix(validation=f"{evaluation.validation:.3f}")
            elif step - self.best_step >= s.patience:
                break
        if self.bar is not None:
            self.bar.close()
        mi.load_state_dict(best_state)
