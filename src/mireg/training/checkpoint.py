"""Checkpoints: written atomically, readable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain containers only::

    {"format": "mireg-checkpoint", "version": 1, "config": {...}, "epoch": int, "step": int,
     "running": {metric: [sum, count]}, "history": [per-epoch metrics], "module": state_dict,
     "optimizers": {group: state_dict}, "rng": {"torch", "cuda", "numpy", "python"}}

``epoch`` counts finished epochs and ``step`` the batches done in the next one (0 at an epoch
boundary; > 0 when a run was stopped by a signal mid-epoch).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mireg.errors import CheckpointError
from mireg.training.output import write_atomically

FORMAT = "mireg-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, numpy and Python RNG states as tensors and plain lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    version, words, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "words": list(words), "gauss": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states recorded by :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["words"]), p["gauss"]))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    write_atomically(path, lambda handle: torch.save({"format": FORMAT, "version": VERSION, **payload}, handle))


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a corrupt or foreign file raises :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; start the run without --resume")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{path} is corrupt or not a checkpoint ({type(error).__name__}: {detail[:200]}); "
            "remove it to start over, or restore a copy"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mireg checkpoint (it has no 'format': {FORMAT!r} entry)")
    if payload.get("version") != VERSION:
        found = payload.get("version")
        raise CheckpointError(f"{path} has checkpoint version {found!r}; this mireg reads version {VERSION}")
    for field, kind in _FIELDS.items():
        _check_field(path, payload, field, kind)
    return payload


#: What each field of a checkpoint holds: a type, or a dict of the fields of a nested table.
_Kind = type | tuple[type, ...] | dict[str, Any]
_FIELDS: dict[str, _Kind] = {
    "config": dict,
    "epoch": int,
    "step": int,
    "running": dict,
    "history": list,
    "module": dict,
    "optimizers": dict,
    "rng": {
        "torch": torch.Tensor,
        "cuda": list,
        "numpy": {"kind": str, "keys": torch.Tensor, "pos": int, "has_gauss": int, "gauss": float},
        "python": {"version": int, "words": list, "gauss": (float, type(None))},
    },
}


def _check_field(path: Path, table: dict[str, Any], field: str, kind: _Kind, prefix: str = "") -> None:
    """Raise :class:`CheckpointError` naming ``path`` and the field unless ``table[field]`` is a ``kind``."""
    name = f"{prefix}{field}"
    if field not in table:
        raise CheckpointError(f"{path} is damaged: the field {name!r} is missing; remove the file to start over")
    value = table[field]
    expected: tuple[type, ...] = (dict,) if isinstance(kind, dict) else kind if isinstance(kind, tuple) else (kind,)
    if expected == (int,):  # a count: bool is an int to isinstance, and negative counts are damage too
        valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        valid = isinstance(value, expected)
    if not valid:
        names = " or ".join("a table" if t is dict else "an int >= 0" if t is int else t.__name__ for t in expected)
        raise CheckpointError(
            f"{path} is damaged: the field {name!r} must be {names}, got {type(value).__name__} "
            f"{str(value)[:80]!r}; remove the file to start over"
        )
    if isinstance(kind, dict):
        for key, inner in kind.items():
            _check_field(path, value, key, inner, prefix=f"{name}.")
