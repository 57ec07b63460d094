"""The ssm tests train small MLPs on batches of a few hundred rows: one intra-op thread is faster
than several (and far faster on a shared, loaded machine), so the suite pins it."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))  # closed_form.py, shared by the tests
