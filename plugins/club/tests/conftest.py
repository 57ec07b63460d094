"""One thread for the club tests (the problems and training loop are in mireg.testing)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Bit-for-bit reproducible and fair on a shared machine."""
    torch.set_num_threads(1)
