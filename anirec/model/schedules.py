"""Learning-rate schedules: the learning rate of each epoch (counted from 0).

Each schedule is a small frozen dataclass: callable with an epoch, and saved with a model as its
``to_dict()``. :func:`make_schedule` builds one from a name or returns a schedule as it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def _check_lr(lr: float) -> float:
    lr = float(lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    return lr


def _check_non_negative(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {value}")
    return value


@dataclass(frozen=True)
class Constant:
    """``lr(epoch) = lr``."""

    lr: float

    def __post_init__(self):
        _check_lr(self.lr)

    def __call__(self, epoch: int) -> float:
        return self.lr

    def to_dict(self) -> dict:
        return {"name": "constant", **asdict(self)}


@dataclass(frozen=True)
class InverseTimeDecay:
    """``lr(epoch) = lr / (1 + decay_rate * epoch)``."""

    lr: float
    decay_rate: float = 0.1

    def __post_init__(self):
        _check_lr(self.lr)
        _check_non_negative("decay_rate", self.decay_rate)

    def __call__(self, epoch: int) -> float:
        return self.lr / (1.0 + self.decay_rate * epoch)

    def to_dict(self) -> dict:
        return {"name": "inverse_time", **asdict(self)}


@dataclass(frozen=True)
class ExponentialDecay:
    """``lr(epoch) = lr * gamma ** epoch``."""

    lr: float
    gamma: float = 0.9

    def __post_init__(self):
        _check_lr(self.lr)
        if not 0 < float(self.gamma) <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")

    def __call__(self, epoch: int) -> float:
        return self.lr * self.gamma**epoch

    def to_dict(self) -> dict:
        return {"name": "exponential", **asdict(self)}


@dataclass(frozen=True)
class StepDecay:
    """``lr(epoch) = lr * drop ** (epoch // every)``."""

    lr: float
    drop: float = 0.5
    every: int = 10

    def __post_init__(self):
        _check_lr(self.lr)
        if not 0 < float(self.drop) <= 1:
            raise ValueError(f"drop must be in (0, 1], got {self.drop}")
        if int(self.every) < 1:
            raise ValueError(f"every must be at least 1, got {self.every}")

    def __call__(self, epoch: int) -> float:
        return self.lr * self.drop ** (epoch // int(self.every))

    def to_dict(self) -> dict:
        return {"name": "step", **asdict(self)}


SCHEDULES = {
    "constant": Constant,
    "inverse_time": InverseTimeDecay,
    "exponential": ExponentialDecay,
    "step": StepDecay,
}


def make_schedule(schedule, lr: float | None = None, **options):
    """A schedule from a name (``"constant"``, ``"inverse_time"``, ``"exponential"``,
    ``"step"``) and its options, from a ``to_dict()`` mapping, or a schedule object as is."""
    if isinstance(schedule, tuple(SCHEDULES.values())):
        return schedule
    if isinstance(schedule, dict):
        options = {key: value for key, value in schedule.items() if key != "name"}
        schedule = schedule.get("name")
        lr = options.pop("lr", lr)
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
    if lr is None:
        raise ValueError("a learning rate is required")
    try:
        return SCHEDULES[schedule](lr, **options)
    except TypeError as error:
        raise ValueError(f"bad options for the {schedule!r} schedule: {error}") from None
