"""Training tasks selected by ``[task] name``: the contract (:class:`Task`) and the built-in IB task."""

from mireg.tasks.base import NoOptions, StepOutput, Task
from mireg.tasks.ib import IB

__all__ = ["IB", "NoOptions", "StepOutput", "Task"]
