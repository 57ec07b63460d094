"""Exceptions raised by mireg, each naming what was wrong and what would be right."""

from __future__ import annotations


class MiregError(Exception):
    """Base class of every error mireg raises on purpose."""


class UnknownEstimatorError(MiregError, KeyError):
    """No estimator of that name is registered; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class AmbiguousEstimatorError(UnknownEstimatorError):
    """Two plugins registered the same name; the message names both qualified names."""


class OptionError(MiregError, ValueError):
    """An unknown or ill-typed estimator option; the message lists the valid options."""


class PluginError(MiregError):
    """A plugin broke a rule of the hook contract (misspelled hook, bad registration)."""


class ConfigError(MiregError, ValueError):
    """A configuration file is invalid; the message names the path of the bad key."""


class NonFiniteError(MiregError, ValueError):
    """A tensor holds NaN or Inf values; the message names the tensor and counts them."""


class OutputError(MiregError):
    """A run's output folder cannot be used: not writable, a file, locked by a running run, or
    holding another run's results; the message names the folder and what would be right."""
