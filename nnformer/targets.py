"""What a predictor learns: labels turned into training targets and predictions turned back into labels.

* ``accuracy``: labels times a factor (``0.01`` for percentages, so the network sees accuracies in [0, 1] as in the
  paper; the released head adds 0.5 to its output).
* ``latency``: the standardised log of the latency, ``(log y - mean) / std``: latencies span two decades and more,
  and a ranking or a relative error is what matters, so errors are measured in log space. Labels must be positive.
* ``score``: labels already on the scale the network learns (HELP's few-shot protocol z-scores each device's log
  latencies by its reference architectures), used as they are.

The transform is fitted on the training labels and saved with the predictor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import CheckpointError, DataError

TASKS = ("accuracy", "latency", "score")
FRACTION_MAX = 1.5  # accuracy labels no larger than this are fractions (NAS-Bench-101), larger ones percentages


def as_percent(*labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Accuracy labels in percent, so that spaces compare on one scale: labels that are all fractions (at most
    :data:`FRACTION_MAX`, judged over every array given) times 100, percentages as they are."""
    arrays = [np.asarray(y, dtype=np.float64) for y in labels]
    factor = 100.0 if max(float(np.abs(y).max()) for y in arrays) <= FRACTION_MAX else 1.0
    return tuple(factor * y for y in arrays)


@dataclass(frozen=True)
class Target:
    kind: str  # "scale" (accuracy) | "log" (latency)
    factor: float = 1.0
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def for_labels(cls, task: str, y: np.ndarray, scale: float | str = "auto") -> "Target":
        """The transform for ``task`` fitted on training labels ``y``."""
        if task == "accuracy":
            factor = (0.01 if np.abs(y).max() > FRACTION_MAX else 1.0) if scale == "auto" else float(scale)
            return cls("scale", factor=factor)
        if task == "score":
            return cls("scale", factor=1.0)
        if task == "latency":
            bad = np.flatnonzero(y <= 0)
            if len(bad):
                raise DataError(f"latency label {bad[0]} is {y[bad[0]]}: latencies must be positive")
            logs = np.log(y)
            return cls("log", mean=float(logs.mean()), std=float(logs.std()) or 1.0)
        raise DataError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")

    def forward(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "scale":
            return y * self.factor
        if (y <= 0).any():
            raise DataError("latency labels must be positive")
        return (np.log(y) - self.mean) / self.std

    def inverse(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return p / self.factor if self.kind == "scale" else np.exp(p * self.std + self.mean)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d, where: str = "checkpoint") -> "Target":
        try:
            t = cls(**d)
        except TypeError:
            raise CheckpointError(f"{where}: invalid target transform {d!r}") from None
        if t.kind not in ("scale", "log") or not (t.factor and t.std > 0):
            raise CheckpointError(f"{where}: invalid target transform {d!r}")
        return t
