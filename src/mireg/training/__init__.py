"""The generic trainer (:class:`Trainer`), its output folder, its checkpoints and its reports."""

from mireg.config import resolve_device
from mireg.training.checkpoint import load_checkpoint
from mireg.training.reports import results_table
from mireg.training.trainer import Trainer

__all__ = ["Trainer", "load_checkpoint", "resolve_device", "results_table"]
