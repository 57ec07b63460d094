"""The DIM task: encoder shapes, every objective trains, probes report per-layer accuracies, configs check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mireg.cli import main
from mireg.config import Resolved, parse_config, resolve
from mireg.data import Split, Splits
from mireg.registry import default_registry
from mireg.tasks.dim import DIM, DIMEvalOptions, DIMModelOptions, DIMNetwork
from mireg.tasks.dim_models import Encoder, Variant, image_shape
from mireg.training import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_MODEL = {"channels": [4, 8, 8], "fc_dim": 16, "y_dim": 4}
TINY_EVAL = {"hidden": 16, "epochs": 2, "batch_size": 32}

#: label -> (estimator block, task options)
OBJECTIVES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "jsd": ({"name": "jsd", "options": {"hidden": 16, "layers": 1, "embed_dim": 8}}, {"pair": "conv"}),
    "jsd+pm": (
        {"name": "jsd", "options": {"hidden": 16, "layers": 1, "embed_dim": 8}},
        {"pair": "conv", "prior_matching": True},
    ),
    "infonce": ({"name": "infonce", "options": {"hidden": 16, "layers": 1, "embed_dim": 8}}, {"pair": "conv"}),
    "infonce+pm": (
        {"name": "infonce", "options": {"hidden": 16, "layers": 1, "embed_dim": 8}},
        {"pair": "conv", "prior_matching": True},
    ),
    "mige": ({"name": "mige", "options": {"score": "ssge", "projection_dim": 16}}, {"pair": "input"}),
    "mige-conv": ({"name": "mige", "options": {"score": "ssge", "projection_dim": 16}}, {"pair": "conv"}),
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small convolutions on a shared 2-core machine are many times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_images(n: int, shape: tuple[int, int, int], classes: int = 3, seed: int = 0) -> Split:
    """``n`` flattened images whose mean brightness depends on the label (so probes can learn)."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.rand(n, *shape, generator=generator) * 0.5 + y.view(-1, 1, 1, 1) / (2 * classes)
    return Split(x.flatten(1), y)


def tiny_splits(shape: tuple[int, int, int] = (1, 8, 8)) -> Splits:
    return Splits(tiny_images(64, shape), tiny_images(30, shape, seed=1), tiny_images(30, shape, seed=2), classes=3)


def resolved(label: str, epochs: int = 1) -> Resolved:
    estimator, options = OBJECTIVES[label]
    raw: dict[str, Any] = {
        "task": {"name": "dim", "options": options},
        "data": {"name": "digits"},
        "model": TINY_MODEL,
        "estimator": estimator,
        "train": {"epochs": epochs, "batch_size": 32, "seed": 1},
        "eval": TINY_EVAL,
    }
    return resolve(parse_config(raw))


@pytest.mark.parametrize(
    ("shape", "option", "variant", "conv_dim"),
    [
        ((3, 32, 32), "auto", "dcgan", 256 * 4 * 4),
        ((1, 8, 8), "auto", "small", 256 * 2 * 2),
        ((3, 32, 32), "small", "small", 256 * 8 * 8),
    ],
)
def test_encoder_shapes(shape: tuple[int, int, int], option: Variant, variant: str, conv_dim: int) -> None:
    encoder = Encoder(shape, (64, 128, 256), 1024, 64, option)
    assert encoder.variant == variant and encoder.conv_dim == conv_dim
    features = encoder(torch.rand(5, *shape))
    assert features.conv.shape == (5, conv_dim)
    assert features.fc.shape == (5, 1024) and features.y.shape == (5, 64)
    assert encoder(torch.rand(5, shape[0] * shape[1] * shape[2])).y.shape == (5, 64)  # flattened rows work too


def test_image_shape_from_width() -> None:
    assert image_shape(3072) == (3, 32, 32) and image_shape(64) == (1, 8, 8) and image_shape(784) == (1, 28, 28)
    with pytest.raises(ValueError, match="square images"):
        image_shape(100 * 3 + 1)


def test_bad_options_are_clear() -> None:
    with pytest.raises(ValueError, match="3 positive integers"):
        DIMModelOptions(channels=[8, 8])
    with pytest.raises(ValueError, match="pair"):
        DIM(pair="labels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dropout"):
        DIMEvalOptions(dropout=1.0)


@pytest.mark.parametrize("label", list(OBJECTIVES))
def test_each_objective_trains(label: str) -> None:
    pytest.importorskip("mireg_ssge" if label.startswith("mige") else "mireg_infonce")
    estimator_block, options = OBJECTIVES[label]
    torch.manual_seed(0)
    task = DIM(**options)
    estimator = default_registry().create("mi_gradient", estimator_block["name"], estimator_block["options"])
    data = tiny_splits()
    net = task.build(data, DIMModelOptions(**TINY_MODEL), estimator, device=torch.device("cpu"), dtype=torch.float32)
    groups = task.parameter_groups(net)
    assert ("critic" in groups) == (not label.startswith("mige"))
    assert ("prior" in groups) == label.endswith("+pm")
    before = {name: [p.detach().clone() for p in params] for name, params in groups.items()}
    optimizers = {name: torch.optim.Adam(params, lr=1e-2) for name, params in groups.items()}
    for step in range(2):
        x = data.train.x[step * 32 : (step + 1) * 32]
        out = task.step(net, x, data.train.y[:32])
        assert set(out.losses) == set(groups)
        for name, loss in out.losses.items():
            assert torch.isfinite(loss), (name, loss)
            grads = torch.autograd.grad(loss, groups[name], retain_graph=True, allow_unused=True)
            for param, grad in zip(groups[name], grads, strict=True):
                param.grad = grad
        for optimizer in optimizers.values():
            optimizer.step()
    for name, params in groups.items():
        assert any(not torch.equal(p, b) for p, b in zip(params, before[name], strict=True)), name


def test_mige_pair_input_leaves_conv_to_the_y_path() -> None:
    """Circumstance I: the image needs no gradient, so only the H(Y) and H(x, Y) terms drive the encoder."""
    pytest.importorskip("mireg_ssge")
    estimator = default_registry().create("mi_gradient", "mige", {"score": "ssge"})
    task = DIM(pair="input")
    data = tiny_splits()
    net = task.build(data, DIMModelOptions(**TINY_MODEL), estimator, device=torch.device("cpu"), dtype=torch.float32)
    loss = task.step(net, data.train.x[:32], data.train.y[:32]).losses["model"]
    loss.backward()
    first_conv = net.encoder.conv[0].weight
    assert first_conv.grad is not None and bool(first_conv.grad.abs().sum() > 0)


def test_probes_report_each_layer_and_split_from_one_call() -> None:
    estimator = default_registry().create("mi_gradient", "mige", {"score": "ssge"})
    task = DIM(pair="input")
    data = tiny_splits((3, 32, 32))
    model = DIMModelOptions(variant="dcgan", channels=[4, 8, 8], fc_dim=16, y_dim=4)
    net = task.build(data, model, estimator, device=torch.device("cpu"), dtype=torch.float32)
    net.eval()
    options = DIMEvalOptions(**TINY_EVAL)
    val = task.evaluate(net, data, ("val",), options)
    assert set(val) == {"val_acc_conv", "val_acc_fc", "val_acc_y"}
    assert all(0.0 <= value <= 1.0 for value in val.values())
    both = task.evaluate(net, data, ("val", "test"), options)
    assert {key: both[key] for key in val} == val  # the probes are seeded: the same weights, the same accuracies
    assert {f"test_acc_{layer}" for layer in ("conv", "fc", "y")} <= set(both)
    assert all(1 <= both[f"probe_epoch_{layer}"] <= options.epochs for layer in ("conv", "fc", "y"))


def test_end_to_end_run_through_the_trainer(tmp_path: Path) -> None:
    pytest.importorskip("mireg_infonce")
    results = Trainer(resolved("jsd+pm", epochs=2), tmp_path, progress=False).run()
    metrics = results["metrics"]
    for layer in ("conv", "fc", "y"):
        assert 0.0 <= metrics[f"test_acc_{layer}"] <= 1.0 and 0.0 <= metrics[f"val_acc_{layer}"] <= 1.0
    assert metrics["test_acc_conv"] > 0.3  # digits: far above chance (0.1) even after 2 epochs
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert results["task"] == "dim" and results["estimator"] == "jsd" and results["prior_matching"] is True
    assert (tmp_path / "checkpoint.pt").exists()


def test_network_holds_every_part_in_its_state_dict() -> None:
    pytest.importorskip("mireg_infonce")
    run = resolved("infonce+pm")
    estimator = default_registry().create("mi_gradient", "infonce", OBJECTIVES["infonce+pm"][0]["options"])
    net = run.task.build(run.dataset.load(), run.model, estimator, device=torch.device("cpu"), dtype=torch.float32)
    assert isinstance(net, DIMNetwork)
    keys = net.state_dict().keys()
    assert any(k.startswith("encoder.") for k in keys) and any(k.startswith("prior.") for k in keys)
    assert any(k.startswith("estimator.critic_net") for k in keys)


@pytest.mark.parametrize("name", ["dim-digits.toml", "dim-cifar10.toml", "dim-cifar100.toml"])
def test_shipped_configs_pass_check(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CONFIGS / name)]) == 0
    assert "ok" in capsys.readouterr().out
