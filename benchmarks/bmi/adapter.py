"""Any mireg MI estimator as a benchmark-mi estimator, so benchmark-mi's own pipeline can run it.

benchmark-mi's protocol (``bmi.interface.IMutualInformationPointEstimator``) is
``estimate(x, y) -> float``, ``estimate_with_info(x, y) -> EstimateResult`` and
``parameters() -> BaseModel``; this class meets it by calling ``mireg.estimate_mi``. It imports
both packages, so it runs in the benchmark-mi environment with mireg installed there too
(``benchmarks/bmi/README.md``)::

    from adapter import MiregEstimator
    import bmi
    result = bmi.benchmark.run_estimator(MiregEstimator("infonce"), "mireg-infonce", "sample.csv", task_id, seed)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bmi.interface import BaseModel, EstimateResult, IMutualInformationPointEstimator
from numpy.typing import ArrayLike

import mireg


class MiregParams(BaseModel):
    """What ``parameters()`` reports: the mireg estimator's name and the settings given to it."""

    estimator: str
    settings: dict[str, Any]


class MiregEstimator(IMutualInformationPointEstimator):
    """``mireg.estimate_mi(x, y, estimator=name, **settings)`` behind benchmark-mi's interface.

    ``x`` is ``[N, dx]`` and ``y`` ``[N, dy]`` (benchmark-mi's shapes); the value is mireg's
    held-out estimate in nats, and its seconds are the ones benchmark-mi records.
    """

    def __init__(self, estimator: str = "infonce", **settings: Any) -> None:
        self._params = MiregParams(estimator=estimator, settings=settings)

    def parameters(self) -> MiregParams:
        return self._params

    def estimate_with_info(self, x: ArrayLike, y: ArrayLike) -> EstimateResult:
        record = mireg.estimate_mi(
            np.asarray(x), np.asarray(y), estimator=self._params.estimator, **self._params.settings
        )
        return EstimateResult(
            mi_estimate=float(record.value),
            time_in_seconds=float(record.seconds),
            additional_information={"stderr": float(record.stderr), "steps": int(record.steps)},
        )

    def estimate(self, x: ArrayLike, y: ArrayLike) -> float:
        return self.estimate_with_info(x, y).mi_estimate
