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


class MiregPluginWarning(UserWarning):
    """A plugin failed to load and is skipped; the others keep working."""


class ConfigError(MiregError, ValueError):
    """A configuration file is invalid; the message names the path of the bad key."""


class NonFiniteError(MiregError, ValueError):
    """A tensor holds NaN or Inf values; the message names the tensor and counts them."""


class ScoreOutputError(MiregError, ValueError):
    """A score estimator returned a tensor of the wrong shape, dtype or device; the message names the estimator."""


class CalibrationError(MiregError, ValueError):
    """A score estimate cannot be calibrated (it is not positively correlated with the samples)."""


class CalibrationWarning(UserWarning):
    """MIGE skipped the calibration of a score estimate that could not be calibrated (warned once per estimator)."""


class OutputError(MiregError):
    """A run's output folder cannot be used: not writable, a file, locked by a running run, or
    holding another run's results; the message names the folder and what would be right."""


class CheckpointError(MiregError):
    """A checkpoint is missing, corrupt, foreign, or from another configuration."""


class TrainingError(MiregError):
    """Training diverged (a non-finite loss, gradient or estimator input); the last checkpoint is kept."""


class Interrupted(MiregError):
    """The run was stopped by a signal after writing a checkpoint; ``signal`` is its number."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signal = signum
