"""The generic trainer (:class:`Trainer`), its checkpoints and its reports."""

from mireg.training.checkpoint import CheckpointError, load_checkpoint
from mireg.training.reports import results_table
from mireg.training.trainer import Interrupted, Trainer, TrainingError, resolve_device

__all__ = [
    "CheckpointError",
    "Interrupted",
    "Trainer",
    "TrainingError",
    "load_checkpoint",
    "resolve_device",
    "results_table",
]
