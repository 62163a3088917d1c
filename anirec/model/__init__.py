"""The two-tower network, its learning-rate schedules and its file format."""

from anirec.model.plot import plot_history, plot_validation
from anirec.model.schedules import (
    Constant,
    ExponentialDecay,
    InverseTimeDecay,
    StepDecay,
    make_schedule,
)
from anirec.model.two_tower import TwoTower

__all__ = [
    "TwoTower",
    "Constant",
    "InverseTimeDecay",
    "ExponentialDecay",
    "StepDecay",
    "make_schedule",
    "plot_history",
    "plot_validation",
]
