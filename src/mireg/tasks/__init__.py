"""Training tasks selected by ``[task] name``: the contract (:class:`Task`) and the built-in IB and DIM tasks.

This module is one of mireg's default plugins (:data:`mireg.registry.DEFAULT_PLUGINS`): it
registers its tasks through the same hook as any third-party plugin.
"""

from mireg.hookspecs import Register, hookimpl
from mireg.tasks.base import NoOptions, StepOutput, Task, materialise
from mireg.tasks.dim import DIM
from mireg.tasks.ib import IB

__all__ = ["DIM", "IB", "NoOptions", "StepOutput", "Task", "materialise"]


@hookimpl
def register_tasks(register: Register) -> None:
    """Register the information-bottleneck and Deep InfoMax tasks."""
    register(IB)
    register(DIM)
