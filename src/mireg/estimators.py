"""The two contracts every estimator fulfils: :class:`ScoreEstimator` and
:class:`MIGradientEstimator`.

Both are template methods: the public entry point a user calls is defined here, validates the
inputs (NaN/Inf, wrong ranks, too few samples or mismatched widths raise a :class:`ValueError`
that says what was wrong and what was expected), calls the implementation a plugin writes, and
checks what it returns:

=====================  =================================================  ====================
a user calls           validated by                                       a plugin implements
=====================  =================================================  ====================
``est.score(s, at)``   :meth:`ScoreEstimator.score`                       ``_score(s, at)``
``mi(x, z, ...)``      forward hooks registered in                        ``forward(x, z)``
                       :meth:`MIGradientEstimator.__init__`
``mi.estimate(x, z)``  :meth:`MIGradientEstimator.estimate`               ``_estimate(x, z)``
=====================  =================================================  ====================

``mi(x, z)`` is torch's own template method (``nn.Module.__call__`` runs the hooks around
``forward``), so an implementation that calls ``super().forward(x, z)`` is not validated, and
nothing is gathered, a second time.

Supported dtypes: float32 and float64 are computed as given. Half precision (float16, bfloat16)
is computed in float32 and the result cast back (eigensolvers, Cholesky factors and score
networks are unreliable or unavailable in half precision); a result outside the half range
raises :class:`~mireg.errors.NonFiniteError`. Integer tensors are rejected.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mireg.distributed import gather_rows
from mireg.errors import NonFiniteError, ScoreOutputError
from mireg.options import option_specs
from mireg.text import summary_line

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


def all_finite(value: Tensor) -> bool:
    """Whether ``value`` (any shape) holds no NaN/Inf. One reduction is far cheaper than an elementwise
    test; NaN/Inf always reach the sum, and a sum that merely overflows falls through to the exact test."""
    return math.isfinite(float(value.detach().sum())) or bool(torch.isfinite(value).all())


def check_finite(value: Tensor, what: str) -> None:
    """Raise :class:`~mireg.errors.NonFiniteError` counting the NaN/Inf entries of ``value`` (any shape), ``what``."""
    if all_finite(value):
        return
    bad = int((~torch.isfinite(value)).sum())
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
            f"at ({points.dtype}, {points.device}) must have the dtype and device of samples ({x.dtype}, {x.device})"
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
            f"x and z must hold the same number of samples (paired rows), got batch sizes {a.shape[0]} and {b.shape[0]}"
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
    if not all_finite(out):
        bad = int((~torch.isfinite(out)).sum())
        peak = float(samples.detach().abs().amax())
        raise NonFiniteError(
            f"score estimator {describe(estimator)} returned {bad} NaN/Inf value(s) for finite {samples.dtype} "
            f"samples (largest |value| {peak:.3g}): the computation left the range of {samples.dtype}; "
            "rescale the samples, use float64, or check the estimator's options"
        )
    return out


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
    implement :meth:`_score`; users call :meth:`score`, which validates the inputs (see
    :func:`check_samples`) and the output (see :func:`check_score_output`) around it.
    Nonparametric estimators fit from scratch at every call; parametric ones (a score network)
    set ``parametric = True``, subclass :class:`torch.nn.Module` too and keep training.
    """

    #: Whether ``score`` accepts leading batch dimensions ``[..., M, d]``.
    batched: ClassVar[bool] = False
    #: Whether the estimator keeps learned state across calls (then it is an ``nn.Module``).
    parametric: ClassVar[bool] = False
    #: Whether appending all-zero coordinates to the samples leaves the score of the others unchanged (up to
    #: rounding) and scores the new ones 0, as with an isotropic kernel: MIGE then stacks its entropy terms of
    #: different widths into one batched call (``batched`` estimators only). A class attribute, or an
    #: instance's when it depends on the options (a kernel estimator's kernel).
    zero_padding_exact: bool = False
    #: Options MIGE builds this estimator with for its whitened batches; a user's ``score_options`` override them.
    whitened_options: ClassVar[Mapping[str, Any]] = {}

    def score(self, samples: Tensor, at: Tensor | None = None) -> Tensor:
        """Fit on ``samples`` ``[M, d]`` and return the score at ``at`` ``[N, d]`` (default: at
        the samples), shape ``[N, d]`` (``[M, d]``), in the dtype and device of the input.

        Validates ``samples`` and ``at``, computes half precision in float32 (cast back; a result
        outside the half range raises :class:`~mireg.errors.NonFiniteError`), calls :meth:`_score`
        and checks its result (:func:`check_score_output`).
        """
        samples, at = check_samples(samples, at, batched=self.batched)
        return self._score_checked_inputs(samples, at)

    def _score_checked_inputs(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """:meth:`score` after :func:`check_samples`: half precision computed in float32, :meth:`_score`
        called and its result checked. Callers that built ``samples`` and ``at`` valid themselves use
        :func:`score_of_checked` instead of validating them a second time."""
        dtype = compute_dtype(samples.dtype)
        if dtype == samples.dtype:
            return check_score_output(self, self._score(samples, at), samples, at)
        wide, wide_at = samples.to(dtype), None if at is None else at.to(dtype)
        wide_out = check_score_output(self, self._score(wide, wide_at), wide, wide_at)
        out = wide_out.to(samples.dtype)
        if not all_finite(out):
            raise NonFiniteError(
                f"score estimator {describe(self)} computed in float32 a score outside the range of "
                f"{samples.dtype} (largest |value| {float(wide_out.abs().amax()):.3g}); pass float32 samples"
            )
        return out

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """The implementation of :meth:`score`: ``samples`` ``[M, d]`` (``[..., M, d]`` when
        ``batched``), ``at`` ``[N, d]`` or ``None`` -> ``[N, d]`` (``[M, d]``).

        Receives validated float32 or float64 tensors only and must return finite values of that
        dtype: :meth:`score` checks both. (A plugin written against the first contract overrides
        :meth:`score` itself instead; that still works, without the checks.)"""
        raise NotImplementedError(f"{type(self).__name__} must implement _score(samples, at)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def score_of_checked(estimator: ScoreEstimator, samples: Tensor, at: Tensor | None = None) -> Tensor:
    """``estimator.score(samples, at)`` for inputs the caller has made valid itself (as :func:`check_samples`
    requires: finite, floating, ``[M, d]`` (``[..., M, d]`` for a ``batched`` estimator) with ``M >= 2``, ``at``
    alike): they are not checked again, the estimator's output still is. For MIGE's hot path, whose
    preconditioned rows are finite by construction. A plugin that overrides :meth:`ScoreEstimator.score`
    itself is called through it."""
    if type(estimator).score is not ScoreEstimator.score:
        return estimator.score(samples, at)
    return estimator._score_checked_inputs(samples, at)


def check_estimator_output(estimator: MIGradientEstimator, out: object, x: Tensor, z: Tensor) -> Any:
    """``out`` unchanged unless it is a tensor holding NaN/Inf, which raises :class:`~mireg.errors.NonFiniteError`
    naming ``estimator`` and the largest |value| of its inputs ``x`` ``[B, dx]`` and ``z`` ``[B, dz]``."""
    if isinstance(out, Tensor) and not all_finite(out):
        peak = max(float(x.detach().abs().amax()), float(z.detach().abs().amax()))
        raise NonFiniteError(
            f"MI estimator {describe(estimator)} returned a non-finite value for finite inputs (largest |value| "
            f"{peak:.3g}, {x.dtype}): the computation left the range of the dtype; standardise x and z, use "
            "float64, or lower the learning rate if this happens during training"
        )
    return out


def _prepare_call(
    module: MIGradientEstimator, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Forward pre-hook of every MI estimator: ``mi(x, z, **extra)`` reaches ``forward`` as
    :meth:`MIGradientEstimator.prepare` returns it (``x`` and ``z`` given by position or by name)."""
    kwargs = dict(kwargs)
    pair = [*args[:2], *(kwargs.pop(name) for name in ("x", "z")[len(args) :] if name in kwargs)]
    if len(pair) != 2:
        raise TypeError(f"{type(module).__name__} is called as mi(x, z) with two tensors, got {len(pair)}")
    x, z, extra = module.prepare(pair[0], pair[1], kwargs)
    return (x, z, *args[2:]), extra


def _check_call_output(module: MIGradientEstimator, args: tuple[Any, ...], output: Any) -> Any:
    """Forward hook of every MI estimator: the output of ``forward`` checked (:func:`check_estimator_output`)."""
    return check_estimator_output(module, output, args[0], args[1])


class MIGradientEstimator(_Described, nn.Module):
    """A module whose scalar output has the gradient of I(x; z) (an estimate of it).

    ``mi(x, z)`` returns a scalar surrogate: backpropagating it gives an estimate of ∇I(x; z)
    w.r.t. everything upstream of ``x`` and ``z`` (and trains any critic, which is a submodule,
    so ``mi.parameters()`` belongs in the optimizer). ``mi.estimate(x, z)`` returns the MI value
    for bound estimators and ``None`` for pure gradient estimators (MIGE).

    Subclasses implement ``forward(x, z)`` and :meth:`_estimate`; both receive the arguments as
    :meth:`prepare` returns them: validated, ``x`` as ``[B, dx]`` and ``z`` as ``[B, dz]``
    (flattened), and, when ``gather_across_ranks`` is set (the default) and torch.distributed is
    initialised, the global batch: the rows of every rank, gathered with the gradient path to
    each rank's own rows kept (:mod:`mireg.distributed`), and so are tensor keyword arguments of
    ``mi(x, z, ...)`` with one row per sample. A subclass that gathers what it needs itself sets
    ``gather_across_ranks = False`` and calls :func:`mireg.distributed.gather_rows`.
    """

    #: Whether :meth:`prepare` gathers the inputs across ranks when torch.distributed is initialised.
    gather_across_ranks: ClassVar[bool] = True
    #: Whether ``mi(x, z, log_var=...)`` takes the log-variances of a Gaussian encoder q(z|x) (Circumstance III).
    accepts_log_var: ClassVar[bool] = False
    #: Whether ``mi(x, z, mean=..., log_var=...)`` also takes that encoder's means (with them the batch's
    #: marginal of z is a known Gaussian mixture); separate from ``accepts_log_var`` so estimators declaring
    #: only that keep working.
    accepts_mean: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # mi(x, z): nn.Module.__call__ runs these around forward; validation and gathering happen once per call.
        self.register_forward_pre_hook(_prepare_call, with_kwargs=True)
        self.register_forward_hook(_check_call_output)

    @classmethod
    def min_batch_size(cls, options: Mapping[str, Any] | None = None) -> int:
        """The fewest rows of a (global) batch the estimator built with ``options`` accepts: 2 (a pair
        and a negative); a subclass with a higher minimum overrides this."""
        return 2

    def prepare(self, x: object, z: object, extra: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """The arguments ``forward`` and :meth:`_estimate` receive: ``x`` ``[B, ...]`` and ``z``
        ``[B, ...]`` validated and flattened to ``[B, dx]``, ``[B, dz]`` (:func:`check_pair`); with
        ``gather_across_ranks``, they and the tensors in ``extra`` gathered across ranks."""
        a, b = check_pair(x, z)
        if self.gather_across_ranks:
            a, b = gather_rows(a), gather_rows(b)
            extra = {k: gather_rows(v) if isinstance(v, Tensor) else v for k, v in extra.items()}
        return a, b, extra

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Scalar surrogate whose gradient estimates ∇I(x; z); ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, z)")

    def estimate(self, x: Tensor, z: Tensor) -> Tensor | None:
        """The MI estimate in nats as a 0-dim tensor, or ``None`` for gradient-only estimators.

        ``x`` ``[B, ...]``, ``z`` ``[B, ...]``: prepared (:meth:`prepare`) for :meth:`_estimate`,
        whose result is checked (:func:`check_estimator_output`)."""
        a, b, _ = self.prepare(x, z, {})
        out: Tensor | None = check_estimator_output(self, self._estimate(a, b), a, b)
        return out

    def _estimate(self, x: Tensor, z: Tensor) -> Tensor | None:
        """The implementation of :meth:`estimate`, on prepared ``x`` ``[B, dx]`` and ``z`` ``[B, dz]``.
        (A plugin written against the first contract overrides :meth:`estimate` itself; that still
        works, on unprepared inputs.)"""
        raise NotImplementedError(f"{type(self).__name__} must implement _estimate(x, z)")

    def training_loss(self, x: Tensor, z: Tensor, value: Tensor | None = None) -> Tensor:
        """The 0-dim loss this estimator's own parameters (a critic, a variational q) descend on a batch.

        Bound estimators ascend their bound, so the default is ``−forward(x, z)``; ``value`` is that
        forward value when the caller already has it (one pass serves the encoder and the critic).
        Estimators fitted by another objective (CLUB's q by likelihood) override this.
        """
        return -(self(x, z) if value is None else value)
