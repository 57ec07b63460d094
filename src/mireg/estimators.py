"""The two contracts every estimator fulfils: :class:`ScoreEstimator` and
:class:`MIGradientEstimator`.

Both validate their inputs before the subclass sees them: a subclass writes ``score`` (or
``forward``/``estimate``) for well-formed tensors, and the base class wraps those methods so
that NaN/Inf, wrong ranks, too few samples or mismatched widths raise a :class:`ValueError`
that says what was wrong and what was expected, and checks what ``score`` returns.

Supported dtypes: float32 and float64 are computed as given. Half precision (float16, bfloat16)
is computed in float32 and the result cast back (eigensolvers, Cholesky factors and score
networks are unreliable or unavailable in half precision); a result outside the half range
raises :class:`~mireg.errors.NonFiniteError`. Integer tensors are rejected.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from mireg.distributed import gather_rows
from mireg.errors import NonFiniteError, ScoreOutputError
from mireg.options import option_specs
from mireg.text import summary_line

F = TypeVar("F", bound=Callable[..., Any])

#: Dtypes computed in float32 and cast back: too coarse for the linear algebra of the estimators.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype estimators compute in for inputs of ``dtype``: float32 for half precision, else ``dtype``."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def _check_tensor(value: object, what: str, expected: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape {expected}, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{what} must be a floating-point tensor of shape {expected}, got dtype {value.dtype}")
    return value


def check_finite(value: Tensor, what: str) -> None:
    """Raise :class:`~mireg.errors.NonFiniteError` counting the NaN/Inf entries of ``value`` (any shape), ``what``."""
    # One reduction is far cheaper than an elementwise test; NaN/Inf always reach the sum, and a
    # sum that merely overflows falls through to the exact count below, which then finds nothing.
    if bool(torch.isfinite(value.detach().sum())):
        return
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise NonFiniteError(
            f"{what} contains {bad} NaN/Inf value(s); estimators need finite inputs "
            "(check the encoder output or the learning rate)"
        )


def check_samples(samples: object, at: object = None, *, batched: bool = False) -> tuple[Tensor, Tensor | None]:
    """Validate the arguments of :meth:`ScoreEstimator.score`.

    Args:
        samples: ``[M, d]`` (or ``[..., M, d]`` when ``batched``), finite, floating, ``M >= 2``.
        at: ``None`` or ``[N, d]`` (``[..., N, d]``) with the dtype and device of ``samples``.
    Returns:
        The two tensors, unchanged.
    """
    expected = "[..., M, d]" if batched else "[M, d]"
    x = _check_tensor(samples, "samples", expected)
    if x.ndim < 2 or (x.ndim != 2 and not batched):
        raise ValueError(f"samples must have shape {expected}, got shape {tuple(x.shape)} (rank {x.ndim})")
    if x.shape[-2] < 2:
        raise ValueError(f"score estimation needs at least 2 samples, got M = {x.shape[-2]}")
    if x.shape[-1] < 1:
        raise ValueError("samples must have at least one dimension (d >= 1), got d = 0")
    check_finite(x, "samples")
    if at is None:
        return x, None
    points = _check_tensor(at, "at", expected.replace("M", "N"))
    if points.ndim != x.ndim or points.shape[-1] != x.shape[-1] or points.shape[:-2] != x.shape[:-2]:
        raise ValueError(
            f"at must have shape {(*x.shape[:-2], 'N', x.shape[-1])} to match samples "
            f"{tuple(x.shape)}, got {tuple(points.shape)}"
        )
    if points.dtype != x.dtype or points.device != x.device:
        raise ValueError(
            f"at ({points.dtype}, {points.device}) must have the dtype and device of samples "
            f"({x.dtype}, {x.device})"
        )
    check_finite(points, "at")
    return x, points


def check_pair(x: object, z: object) -> tuple[Tensor, Tensor]:
    """Validate the arguments of an MI-gradient estimator and flatten them.

    Args:
        x: ``[B, ...]`` (an image batch ``[B, C, H, W]`` is fine), finite, floating.
        z: ``[B, ...]`` with the same ``B``.
    Returns:
        ``x`` as ``[B, dx]`` and ``z`` as ``[B, dz]`` (views, the autograd graph is kept).
    """
    a = _check_tensor(x, "x", "[B, ...]")
    b = _check_tensor(z, "z", "[B, ...]")
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(f"x and z need a batch dimension, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"x and z must hold the same number of samples (paired rows), got batch sizes "
            f"{a.shape[0]} and {b.shape[0]}"
        )
    if a.shape[0] < 2:
        raise ValueError(f"MI estimation needs a batch of at least 2 samples, got {a.shape[0]}")
    check_finite(a, "x")
    check_finite(b, "z")
    return a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)


def describe(estimator: object) -> str:
    """``'name' (module.Class)`` of an estimator, for error messages."""
    cls = type(estimator)
    return f"{getattr(cls, 'name', '?')!r} ({cls.__module__}.{cls.__qualname__})"


def check_score_output(estimator: ScoreEstimator, out: object, samples: Tensor, at: Tensor | None) -> Tensor:
    """Check what ``estimator.score(samples, at)`` returned: a finite tensor of shape ``[..., N, d]``
    (``N`` rows of ``at``, or ``M`` of ``samples``) in the dtype and on the device of ``samples``.

    Raises :class:`~mireg.errors.ScoreOutputError` for a wrong type, shape, dtype or device and
    :class:`~mireg.errors.NonFiniteError` for NaN/Inf values, both naming the estimator.
    """
    points = samples if at is None else at
    expected = (*points.shape[:-1], samples.shape[-1])
    if not isinstance(out, Tensor):
        raise ScoreOutputError(
            f"score estimator {describe(estimator)} returned {type(out).__name__}, "
            f"expected a tensor of shape {expected}"
        )
    if tuple(out.shape) != expected:
        raise ScoreOutputError(
            f"score estimator {describe(estimator)} returned shape {tuple(out.shape)}, expected {expected} "
            "(the d-dimensional score at each of the N points)"
        )
    if out.dtype != samples.dtype or out.device != samples.device:
        raise ScoreOutputError(
            f"score estimator {describe(estimator)} returned {out.dtype} on {out.device}, expected the dtype and "
            f"device of its samples ({samples.dtype}, {samples.device})"
        )
    if not bool(torch.isfinite(out.detach().sum())):
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            peak = float(samples.detach().abs().amax())
            raise NonFiniteError(
                f"score estimator {describe(estimator)} returned {bad} NaN/Inf value(s) for finite {samples.dtype} "
                f"samples (largest |value| {peak:.3g}): the computation left the range of {samples.dtype}; "
                "rescale the samples, use float64, or check the estimator's options"
            )
    return out


def _validated_score(method: F, batched: bool) -> F:
    @functools.wraps(method)
    def score(self: ScoreEstimator, samples: Tensor, at: Tensor | None = None) -> Tensor:
        samples, at = check_samples(samples, at, batched=batched)
        dtype = compute_dtype(samples.dtype)
        if dtype == samples.dtype:
            return check_score_output(self, method(self, samples, at), samples, at)
        wide, wide_at = samples.to(dtype), None if at is None else at.to(dtype)
        wide_out = check_score_output(self, method(self, wide, wide_at), wide, wide_at)
        out = wide_out.to(samples.dtype)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteError(
                f"score estimator {describe(self)} computed in float32 a score outside the range of "
                f"{samples.dtype} (largest |value| {float(wide_out.abs().amax()):.3g}); pass float32 samples"
            )
        return out

    score.__mireg_validated__ = True  # type: ignore[attr-defined]
    return score  # type: ignore[return-value]


def _validated_pair(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: MIGradientEstimator, x: Tensor, z: Tensor, *args: Any, **kwargs: Any) -> Any:
        x, z = check_pair(x, z)
        if self.gather_across_ranks:
            x, z = gather_rows(x), gather_rows(z)
            kwargs = {k: gather_rows(v) if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        out = method(self, x, z, *args, **kwargs)
        if isinstance(out, Tensor) and not bool(torch.isfinite(out.detach()).all()):
            peak = max(float(x.detach().abs().amax()), float(z.detach().abs().amax()))
            raise NonFiniteError(
                f"MI estimator {describe(self)} returned a non-finite value for finite inputs (largest |value| "
                f"{peak:.3g}, {x.dtype}): the computation left the range of the dtype; standardise x and z, use "
                "float64, or lower the learning rate if this happens during training"
            )
        return out

    wrapper.__mireg_validated__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class _Described:
    """Class attributes shared by both contracts."""

    #: The registry name; lower case, e.g. ``"ssge"``.
    name: ClassVar[str]
    #: Other names the estimator answers to.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Papers or URLs shown by ``mireg show``.
    references: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return summary_line(cls)

    def options(self) -> dict[str, Any]:
        """The option values this estimator was built with (attributes named like the options)."""
        return {name: getattr(self, name) for name in option_specs(type(self)) if hasattr(self, name)}

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.options().items())


class ScoreEstimator(_Described, abc.ABC):
    """Estimates the score ∇ log q(x) of a distribution known only through samples.

    Subclasses set ``name``, take their options as keyword-only ``__init__`` parameters and
    implement ``score``. Inputs reach ``score`` validated (see :func:`check_samples`).
    Nonparametric estimators fit from scratch at every call; parametric ones (a score network)
    set ``parametric = True``, subclass :class:`torch.nn.Module` too and keep training.
    """

    #: Whether ``score`` accepts leading batch dimensions ``[..., M, d]``.
    batched: ClassVar[bool] = False
    #: Whether the estimator keeps learned state across calls (then it is an ``nn.Module``).
    parametric: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        method = cls.__dict__.get("score")
        if method is not None and not getattr(method, "__mireg_validated__", False):
            cls.score = _validated_score(method, cls.batched)  # type: ignore[method-assign]

    @abc.abstractmethod
    def score(self, samples: Tensor, at: Tensor | None = None) -> Tensor:
        """Fit on ``samples`` ``[M, d]`` and return the score at ``at`` ``[N, d]`` (default: at
        the samples), shape ``[N, d]`` (``[M, d]``), in the dtype and device of the input.

        Subclasses receive float32 or float64 only (half precision arrives as float32 and the
        result is cast back) and must return finite values: the base class checks both."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class MIGradientEstimator(_Described, nn.Module):
    """A module whose scalar output has the gradient of I(x; z) (an estimate of it).

    ``forward(x, z)`` returns a scalar surrogate: backpropagating it gives an estimate of
    ∇I(x; z) w.r.t. everything upstream of ``x`` and ``z`` (and trains any critic, which is a
    submodule, so ``mi.parameters()`` belongs in the optimizer). ``estimate(x, z)`` returns the
    MI value for bound estimators and ``None`` for pure gradient estimators (MIGE). Both receive
    ``x`` as ``[B, dx]`` and ``z`` as ``[B, dz]``: inputs are validated and flattened first.

    Under ``torch.distributed`` both receive the global batch: the rows of every rank, gathered
    with the gradient path to each rank's own rows kept (:mod:`mireg.distributed`), and so do
    tensor keyword arguments with one row per sample. Set ``gather_across_ranks = False`` on a
    subclass that handles ranks itself.
    """

    #: Whether inputs are gathered across ranks when torch.distributed is initialised.
    gather_across_ranks: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute in ("forward", "estimate"):
            method = cls.__dict__.get(attribute)
            if method is not None and not getattr(method, "__mireg_validated__", False):
                setattr(cls, attribute, _validated_pair(method))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Scalar surrogate whose gradient estimates ∇I(x; z); ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, z)")

    def estimate(self, x: Tensor, z: Tensor) -> Tensor | None:
        """The MI estimate in nats as a 0-dim tensor, or ``None`` for gradient-only estimators."""
        raise NotImplementedError(f"{type(self).__name__} must implement estimate(x, z)")

    def training_loss(self, x: Tensor, z: Tensor, value: Tensor | None = None) -> Tensor:
        """The 0-dim loss this estimator's own parameters (a critic, a variational q) descend on a batch.

        Bound estimators ascend their bound, so the default is ``−forward(x, z)``; ``value`` is that
        forward value when the caller already has it (one pass serves the encoder and the critic).
        Estimators fitted by another objective (CLUB's q by likelihood) override this.
        """
        return -(self(x, z) if value is None else value)
