"""Training tasks selected by ``[task] name``: the contract (:class:`Task`) and the built-in IB and DIM tasks."""

from mireg.tasks.base import NoOptions, StepOutput, Task
from mireg.tasks.dim import DIM
from mireg.tasks.ib import IB

__all__ = ["DIM", "IB", "NoOptions", "StepOutput", "Task"]
