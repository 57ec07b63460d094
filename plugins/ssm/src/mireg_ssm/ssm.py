"""Sliced score matching: a score network trained on the batches it is asked about.

Objectives (x ~ q, s_θ the network, v a random projection with E[v vᵀ] = I):

* ``"ssm"`` (Song et al. 2019, eq. 8): ``E[vᵀ ∇ₓ(vᵀ s_θ(x)) + ½ (vᵀ s_θ(x))²]``.
* ``"ssm_vr"`` (the variance-reduced form, eq. 9): ``E[vᵀ ∇ₓ(vᵀ s_θ(x)) + ½ ‖s_θ(x)‖²]``;
  the second term is integrated over v in closed form.
* ``"dsm"`` (Vincent 2011): ``½ E‖σ s_θ(x + σε) + ε‖²``, ε ~ N(0, I). It learns the score of
  q convolved with N(0, σ² I): biased by O(σ²/λ_min(Cov)), but needs no second derivatives.

Both sliced objectives equal Hyvärinen's ``E[tr ∇ₓ s_θ + ½ ‖s_θ‖²]`` in expectation over v,
whose minimiser is the true score ∇ log q.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from mireg import ScoreEstimator
from mireg.options import Range, check_options

Objective = Literal["ssm_vr", "ssm", "dsm"]
Activation = Literal["softplus", "elu", "silu", "tanh"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"softplus": nn.Softplus, "elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh}
_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


class ScoreNet(nn.Module):
    """MLP ``[N, d] -> [N, d]`` with a smooth activation (the sliced objectives differentiate it twice).

    Each ``nn.Linear`` is initialised like PyTorch's default (U(±1/sqrt(fan_in)) for weight and
    bias) but from ``generator``, so the network depends only on the seed and the device type.
    """

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...],
        activation: Activation,
        *,
        generator: torch.Generator,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        widths = (dim, *hidden, dim)
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            linear = nn.Linear(fan_in, fan_out, dtype=dtype, device=device)
            bound = 1.0 / math.sqrt(fan_in)
            with torch.no_grad():
                linear.weight.uniform_(-bound, bound, generator=generator)
                linear.bias.uniform_(-bound, bound, generator=generator)
            layers.append(linear)
            if i < len(widths) - 2:
                layers.append(_ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)

    @property
    def dim(self) -> int:
        first: nn.Linear = self.layers[0]  # type: ignore[assignment]
        return first.in_features

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[N, d]`` -> score estimate ``[N, d]``."""
        out: Tensor = self.layers(x)
        return out


class AdamState(nn.Module):
    """Adam (Kingma & Ba 2015, as ``torch.optim.Adam`` computes it) with its state in buffers.

    The moments and the step count are buffers, so ``state_dict()`` carries them, ``.to()``
    moves them with the network and ``copy.deepcopy`` duplicates them: resuming from a saved
    estimator continues the exact optimisation trajectory.
    """

    step: Tensor

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        for i, p in enumerate(params):
            self.register_buffer(f"exp_avg_{i}", torch.zeros_like(p))
            self.register_buffer(f"exp_avg_sq_{i}", torch.zeros_like(p))

    @torch.no_grad()
    def update(self, params: list[nn.Parameter], grads: tuple[Tensor, ...], lr: float) -> None:
        """One Adam step on ``params`` with ``grads`` (same order as at construction)."""
        self.step += 1
        t = int(self.step)
        beta1, beta2 = _BETAS
        step_size = lr / (1 - beta1**t)
        correction2 = math.sqrt(1 - beta2**t)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m: Tensor = getattr(self, f"exp_avg_{i}")
            v: Tensor = getattr(self, f"exp_avg_sq_{i}")
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.addcdiv_(m, (v.sqrt() / correction2).add_(_ADAM_EPS), value=-step_size)


def _load_pre_hook(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Build the network of an unused estimator before a saved state is loaded into it."""
    assert isinstance(module, SlicedScoreMatching)
    weight = state_dict.get(f"{prefix}net.layers.0.weight")
    if module.net is None and isinstance(weight, Tensor):
        module._build(weight.shape[1], weight.dtype, weight.device)


class SlicedScoreMatching(ScoreEstimator, nn.Module):
    """Sliced score matching (Song et al. 2019): an MLP score network trained on every batch.

    Parametric: the network and its Adam state persist, and each ``score(samples, at=None)``
    call runs ``n_steps`` optimisation steps on ``samples`` ``[M, d]`` (warm start) and then
    returns the network at ``at`` ``[N, d]`` (default: the samples), detached, ``[N, d]`` in the
    dtype and device of the input. The network is built on the first call, for that call's d,
    dtype and device; later calls must have the same d (one estimator per distribution; MIGE
    deep-copies one per entropy term) and device (move it with ``.to()``); another dtype is
    computed in the network's and returned in the input's. Projections are drawn from a generator seeded by
    ``(seed, call index)``; the network is initialised from ``seed``. ``state_dict()`` holds
    network, Adam moments, step and call counters, so save -> load -> continue reproduces
    uninterrupted training exactly.

    Defaults, each for a one-line reason (the measurements are in
    ``benchmarks/results/ssm_defaults.md``): ``objective="ssm_vr"``, the most accurate objective;
    ``n_steps=1``, repeated steps on one batch fit its noise and MIGE pays one step per training
    step; ``lr=1e-3`` with ``ema_decay=0.95``, the averaged weights cut the error of the raw ones;
    ``hidden=(128, 128)`` softplus, headroom for wider d at no loss of accuracy; ``n_projections=1``,
    the error is dominated by the sample noise of the batch; ``noise_std=0.2`` (DSM), a small bias
    on the unit-variance batches MIGE passes.

    Options:
      objective: "ssm_vr" (sliced, variance-reduced), "ssm" (sliced) or "dsm" (denoising)
      hidden: widths of the hidden layers of the score MLP; () gives an affine score model
      activation: smooth nonlinearity of the MLP: "softplus", "elu", "silu" or "tanh"
      n_steps: Adam steps on each batch per score() call (0: evaluate only)
      lr: Adam learning rate
      n_projections: random projections v per sample for the sliced objectives
      noise_std: standard deviation σ of the DSM perturbation (in units of the data)
      ema_decay: score() evaluates an exponential moving average of the weights with this per-step decay (0: off)
      seed: seed of the network initialisation and of the projection/noise draws
    """

    name = "ssm"
    calls: Tensor
    parametric = True
    references = (
        "Song, Garg, Shi & Ermon, Sliced Score Matching: A Scalable Approach to Density and Score Estimation, UAI 2019",
        "Vincent, A Connection Between Score Matching and Denoising Autoencoders, Neural Computation 2011",
    )

    def __init__(
        self,
        *,
        objective: Objective = "ssm_vr",
        hidden: tuple[int, ...] = (128, 128),
        activation: Activation = "softplus",
        n_steps: Annotated[int, Range(0)] = 1,
        lr: Annotated[float, Range(0, low_open=True)] = 1e-3,
        n_projections: Annotated[int, Range(1)] = 1,
        noise_std: Annotated[float, Range(0, low_open=True)] = 0.2,
        ema_decay: Annotated[float, Range(0, 1, high_open=True)] = 0.95,
        seed: int = 0,
    ) -> None:
        check_options(SlicedScoreMatching, locals())
        super().__init__()
        hidden = tuple(hidden)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in hidden):
            raise ValueError(f"hidden must be a sequence of positive integer widths, got {hidden!r}")
        self.objective: Objective = objective
        self.hidden = hidden
        self.activation: Activation = activation
        self.n_steps = n_steps
        self.lr = lr
        self.n_projections = n_projections
        self.noise_std = noise_std
        self.ema_decay = ema_decay
        self.seed = seed
        self.net: ScoreNet | None = None
        self.ema: ScoreNet | None = None
        self.adam: AdamState | None = None
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.register_load_state_dict_pre_hook(_load_pre_hook)

    def _build(self, dim: int, dtype: torch.dtype, device: torch.device) -> None:
        generator = torch.Generator(device=device).manual_seed(self.seed)
        self.net = ScoreNet(dim, self.hidden, self.activation, generator=generator, dtype=dtype, device=device)
        self.adam = AdamState(list(self.net.parameters()))
        if self.ema_decay > 0:
            self.ema = copy.deepcopy(self.net).requires_grad_(False)

    def _generator(self, device: torch.device) -> torch.Generator:
        """A generator for this call's draws, seeded by (seed, call index): resumable, device-local."""
        return torch.Generator(device=device).manual_seed((self.seed * 1_000_003 + int(self.calls)) % 2**63)

    def loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """The training objective on a detached batch ``x`` ``[M, d]``; a 0-dim tensor."""
        assert self.net is not None
        if self.objective == "dsm":
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            residual = self.noise_std * self.net(x + self.noise_std * eps) + eps
            return 0.5 * residual.pow(2).sum(-1).mean()
        k = self.n_projections
        xs = x.repeat(k, 1).requires_grad_(True)  # [K·M, d]
        v = torch.randn(xs.shape, generator=generator, dtype=x.dtype, device=x.device)
        s = self.net(xs)
        sv = (s * v).sum(-1)  # [K·M]
        (grad_sv,) = torch.autograd.grad(sv.sum(), xs, create_graph=True)  # rows: ∇ₓ(vᵀ s) at each xs
        jacobian_term = (grad_sv * v).sum(-1)
        square = s.pow(2).sum(-1) if self.objective == "ssm_vr" else sv.pow(2)
        return (jacobian_term + 0.5 * square).mean()

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """Train ``n_steps`` on ``samples`` ``[M, d]``, return the score at ``at`` ``[N, d]`` (or the samples)."""
        dim = samples.shape[1]
        if self.net is None:
            self._build(dim, samples.dtype, samples.device)
        assert self.net is not None and self.adam is not None
        weight: Tensor = next(self.net.parameters())
        if self.net.dim != dim:
            raise ValueError(
                f"this ssm estimator's network was built for d = {self.net.dim} on its first call, got samples "
                f"with d = {dim}; use one estimator per distribution (a fresh one, or copy.deepcopy of an unused one)"
            )
        if weight.device != samples.device:
            raise ValueError(
                f"samples are on {samples.device} but the ssm network is on {weight.device}; "
                f"move the estimator with .to({str(samples.device)!r}) or pass samples on {weight.device}"
            )
        params = list(self.net.parameters())
        with torch.inference_mode(False), torch.enable_grad():
            x = samples.detach().to(weight.dtype).clone()  # a normal tensor even under inference_mode
            generator = self._generator(x.device)
            for _ in range(self.n_steps):
                grads = torch.autograd.grad(self.loss(x, generator), params)
                self.adam.update(params, grads, self.lr)
                if self.ema is not None:
                    with torch.no_grad():
                        for averaged, p in zip(self.ema.parameters(), params, strict=True):
                            averaged.lerp_(p, 1 - self.ema_decay)
            self.calls += 1
        evaluated = self.ema if self.ema is not None else self.net
        with torch.no_grad():
            points = samples if at is None else at
            return evaluated(points.detach().to(weight.dtype)).to(samples.dtype)
