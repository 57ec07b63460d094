"""What a run leaves behind besides checkpoints: metrics lines, the curve plot, results and the table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mireg.tasks.base import Task
from mireg.training.output import write_atomically

#: The metrics of the information plane's axes: I(x; z) across, I(z; y) up.
PLANE = ("mi_xz", "mi_zy")


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    _write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_metrics(path: Path, history: Sequence[dict[str, Any]]) -> None:
    """Rewrite the JSON-lines metrics file from the per-epoch history (one object per epoch)."""
    _write_text(path, "".join(json.dumps(row) + "\n" for row in history))


def plot_curves(path: Path, history: Sequence[dict[str, Any]]) -> None:
    """Training loss (left) and every ``*_error`` and ``*_acc*`` metric (middle) against the epoch, and,
    when the history holds ``mi_xz`` and ``mi_zy``, the information plane (right): I(x; z) against
    I(z; y), coloured by epoch. A PNG, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    plane = [(row["epoch"], row[PLANE[0]], row[PLANE[1]]) for row in history if all(k in row for k in PLANE)]
    figure = Figure(figsize=(13.5 if plane else 9, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 3 if plane else 2)
    loss_axes, error_axes = panels[0], panels[1]
    if plane:
        epochs_, across, up = zip(*plane, strict=True)
        plane_axes = panels[2]
        plane_axes.plot(across, up, color="0.7", zorder=1)
        points = plane_axes.scatter(across, up, c=epochs_, cmap="viridis", zorder=2)
        figure.colorbar(points, ax=plane_axes, label="epoch")
        plane_axes.set(xlabel="I(x; z) [nats]", ylabel="I(z; y) [nats]", title="information plane")
    epochs = [row["epoch"] for row in history]
    for key in ("train_loss", "train_ce"):
        if history and key in history[0]:
            loss_axes.plot(epochs, [row[key] for row in history], label=key)
    loss_axes.set(xlabel="epoch", ylabel="loss", title="training loss")
    loss_axes.legend()
    keys = dict.fromkeys(k for row in history for k in row if k.endswith("_error") or "_acc" in k)
    for key in keys:  # validation may run every few epochs only: plot the epochs that have it
        points = [(row["epoch"], 100 * row[key]) for row in history if key in row]
        error_axes.plot(*zip(*points, strict=True), marker=".", label=key)
    error_axes.set(xlabel="epoch", ylabel="%", title="error / accuracy")
    if keys:
        error_axes.legend()
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=100))


def _format(key: str, value: Any) -> str:
    if isinstance(value, float) and key.endswith("_error"):
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_table(results: dict[str, Any], task: Task[Any, Any, Any]) -> str:
    """A short markdown table of the run: what ran (with the facts ``task`` describes), then the final
    metrics, the task's headline first and then those ending in one of its ``reported`` suffixes."""
    keys = ("task", *task.describe(), "estimator", "dataset", "seed", "epochs")
    facts = {k: results[k] for k in keys if results.get(k) is not None}
    metrics = results["metrics"]
    headline = task.headline
    order = [headline, *sorted(k for k in metrics if k != headline and k.endswith(task.reported))]
    rows = [f"| {key} | {_format(key, value)} |" for key, value in facts.items()]
    rows += [f"| {key} | {_format(key, metrics[key])} |" for key in order if key in metrics]
    rows.append(f"| runtime | {results['runtime_s']:.1f} s |")
    return "\n".join(["| | |", "|---|---|", *rows])
