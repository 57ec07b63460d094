"""The hooks a mireg plugin implements (pluggy project name ``"mireg"``).

A plugin is a module named by an entry point in the group ``mireg.plugins``::

    [project.entry-points."mireg.plugins"]
    ssge = "mireg_ssge"

and implements any of the hooks below with the :data:`hookimpl` marker. mireg's own estimators and
tasks are registered the same way, by the modules named in :data:`mireg.registry.DEFAULT_PLUGINS`.
The registry dispatches each hook through pluggy, one plugin at a time (see docs/architecture.md). Each hook receives a
``register`` callable; call it once per class, with optional aliases::

    @mireg.hookimpl
    def register_score_estimators(register):
        register(SSGE)                       # SSGE.name == "ssge"
        register(Other, aliases=["other2"])
"""

from __future__ import annotations

from typing import Protocol

import pluggy

PROJECT = "mireg"
ENTRY_POINT_GROUP = "mireg.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The ``register`` argument of every hook: ``register(cls, aliases=())``."""

    def __call__(self, cls: type, aliases: tuple[str, ...] | list[str] = ()) -> None: ...


@hookspec
def register_score_estimators(register: Register) -> None:
    """Register :class:`mireg.ScoreEstimator` subclasses with ``register(cls)``.

    ``cls.name`` is the name users select; ``aliases`` adds more. A name already used by another
    plugin stays reachable as ``"<distribution>/<name>"``; the bare name then raises an error
    naming both.
    """


@hookspec
def register_mi_gradient_estimators(register: Register) -> None:
    """Register :class:`mireg.MIGradientEstimator` subclasses with ``register(cls)``."""


@hookspec
def register_tasks(register: Register) -> None:
    """Register training tasks (used by ``mireg run``) with ``register(cls)``; ``cls.name``
    is what a config's ``[task] name`` selects."""


#: Hook name -> the kind of object it registers.
HOOK_KINDS: dict[str, str] = {
    "register_score_estimators": "score",
    "register_mi_gradient_estimators": "mi_gradient",
    "register_tasks": "task",
}
