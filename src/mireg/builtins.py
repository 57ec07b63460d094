"""The estimators mireg ships itself, registered through the same hooks as any plugin."""

from __future__ import annotations

from mireg.hookspecs import Register, hookimpl


@hookimpl
def register_mi_gradient_estimators(register: Register) -> None:
    from mireg.mige import MIGE

    register(MIGE)


@hookimpl
def register_tasks(register: Register) -> None:
    from mireg.tasks import DIM, IB

    register(IB)
    register(DIM)
