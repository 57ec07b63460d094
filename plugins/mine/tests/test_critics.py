"""The shared critics of mireg.critics, as the bound estimators use them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mireg.critics import (
    ConcatCritic,
    SeparableCritic,
    build_critic,
    log_mean_exp,
    materialize,
    off_diagonal,
    pair_scores,
)


def test_separable_scores_every_pair() -> None:
    torch.manual_seed(0)
    critic = SeparableCritic(hidden=8, layers=2, embed_dim=4)
    x, z = torch.randn(5, 3), torch.randn(5, 2)
    scores = critic(x, z)
    assert scores.shape == (5, 5)
    for i in range(5):
        for j in range(5):
            assert torch.allclose(scores[i, j], critic.f(x[i]) @ critic.g(z[j]), atol=1e-6)


def test_concat_equals_an_mlp_on_the_expanded_concatenation() -> None:
    torch.manual_seed(0)
    critic = ConcatCritic(x_dim=3, z_dim=2, hidden=8, layers=2, activation="tanh")
    first = nn.Linear(5, 8)
    with torch.no_grad():
        first.weight.copy_(torch.cat([critic.first_x.weight, critic.first_z.weight], dim=1))
        first.bias.copy_(critic.first_x.bias)
    x, z = torch.randn(4, 3), torch.randn(4, 2)
    pairs = torch.cat([x.unsqueeze(1).expand(4, 4, 3), z.unsqueeze(0).expand(4, 4, 2)], dim=-1)  # [B, B, dx + dz]
    expected = critic.rest(first(pairs)).squeeze(-1)
    assert torch.allclose(critic(x, z), expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_relu_concat_critic_matches_the_broadcast_mlp_in_value_and_gradients(dtype: torch.dtype) -> None:
    # One hidden ReLU layer is scored block by block (mireg.critics._ReluPairScores); B = 37 with
    # H = 64 spans several row blocks, the last one short.
    torch.manual_seed(0)
    critic = ConcatCritic(x_dim=3, z_dim=2, hidden=64, layers=1).to(dtype)
    assert critic.fused
    x = torch.randn(37, 3, dtype=dtype, requires_grad=True)
    z = torch.randn(37, 2, dtype=dtype, requires_grad=True)
    weights = torch.randn(37, 37, dtype=dtype)
    inputs = (x, z, *critic.parameters())
    fused = critic(x, z)
    fused_grads = torch.autograd.grad((fused * weights).sum(), inputs)
    broadcast = critic.rest(critic.first_x(x).unsqueeze(1) + critic.first_z(z).unsqueeze(0)).squeeze(-1)
    broadcast_grads = torch.autograd.grad((broadcast * weights).sum(), inputs)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(fused, broadcast, atol=tolerance)
    for got, expected in zip(fused_grads, broadcast_grads, strict=True):
        assert torch.allclose(got, expected, atol=tolerance * 10, rtol=tolerance)


def test_off_diagonal_and_its_log_mean_exp() -> None:
    scores = torch.arange(16.0).view(4, 4)
    mask = ~torch.eye(4, dtype=torch.bool)
    assert torch.equal(off_diagonal(scores), scores[mask])
    assert torch.allclose(log_mean_exp(off_diagonal(scores)), scores[mask].exp().mean().log())


def test_pair_scores_all_and_shifted_negatives() -> None:
    torch.manual_seed(0)
    x, z = torch.randn(6, 3), torch.randn(6, 2)
    for critic in (SeparableCritic(hidden=8, embed_dim=4), ConcatCritic(hidden=8, layers=2)):
        full = critic(x, z)
        joint, negative = pair_scores(critic, x, z)
        assert torch.allclose(joint, full.diagonal())
        assert torch.allclose(negative, full[~torch.eye(6, dtype=torch.bool)].view(6, 5))
        joint, negative = pair_scores(critic, x, z, negatives=2)
        assert negative.shape == (6, 2)
        assert torch.allclose(joint, full.diagonal(), atol=1e-6)
        for i in range(6):
            assert torch.allclose(negative[i], full[i, [(i + 1) % 6, (i + 2) % 6]], atol=1e-6)
        assert torch.equal(pair_scores(critic, x, z, negatives=9)[1], pair_scores(critic, x, z)[1])


def test_lazy_critic_trains_with_an_optimizer_built_before_the_first_call() -> None:
    torch.manual_seed(0)
    critic = build_critic("separable", x_dim=None, z_dim=None, hidden=8, layers=1, embed_dim=4, activation="relu")
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    x, z = torch.randn(6, 3), torch.randn(6, 2)
    loss = critic(x, z).diagonal().mean()
    before = [p.detach().clone() for p in critic.parameters()]
    loss.backward()
    optimizer.step()
    after = list(critic.parameters())
    assert [p.shape for p in after] == [(8, 3), (8,), (4, 8), (4,), (8, 2), (8,), (4, 8), (4,)]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_eager_and_materialised_critics_have_sized_parameters() -> None:
    eager = build_critic("concat", x_dim=3, z_dim=2, hidden=8, layers=2, embed_dim=4, activation="relu")
    assert sum(p.numel() for p in eager.parameters()) == 3 * 8 + 8 + 2 * 8 + 8 * 8 + 8 + 8 + 1
    lazy = build_critic("concat", x_dim=None, z_dim=None, hidden=8, layers=2, embed_dim=4, activation="relu")
    materialize(lazy, torch.randn(2, 3), torch.randn(2, 2))
    assert sum(p.numel() for p in lazy.parameters()) == sum(p.numel() for p in eager.parameters())
