"""The rating scale: what ``(low, high)`` means, in one place.

Every rule that depends on the scale lives here: how it is written (``1..10``, ``0.5..5``),
which ratings belong to it, and which held-out ratings count as relevant when ranking. The
loaders record the scale of the data, the model saves it, and the recommender, the load
summaries, the evaluation and the command line read it from here.

>>> scale = RatingScale(0.5, 5)
>>> str(scale), scale.relevance_threshold()
('0.5..5', 3.875)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _validate

__all__ = ["RatingScale", "MAL_SCALE", "RELEVANT_FRACTION"]

#: Relevant ratings are at least this far up the scale: ``low + 0.75 (high - low)``, "4 of 5
#: stars and up" on any scale. On whole ratings of 1..5 that is 4 and up, on 1..10 (7.75) and
#: 2..10 (8) it is 8 and up, on half stars 0.5..5 (3.875) it is 4 and up.
RELEVANT_FRACTION = 0.75


class RatingScale(NamedTuple):
    """The lowest and highest possible rating. A tuple: ``RatingScale(1, 10) == (1.0, 10.0)``.

    Attributes
    ----------
    low, high : float
        The ends of the scale, ``low < high``, both finite.
    """

    low: float
    high: float

    @classmethod
    def of(cls, value, name: str = "rating_scale") -> "RatingScale":
        """``value`` (a pair ``(low, high)`` or a RatingScale) as a checked RatingScale.

        Raises
        ------
        TypeError, ValueError
            Naming ``name``: not a pair of finite numbers with ``low < high``.
        """
        return cls(*_validate.number_pair(name, value))

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g}"

    @property
    def span(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def contains(self, values) -> np.ndarray:
        """Whether each value is a rating of this scale (finite, within ``low..high``)."""
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.isfinite(values) & (values >= self.low) & (values <= self.high)

    def relevance_threshold(self) -> float:
        """The default relevance threshold: held-out ratings at least this high are relevant
        when ranking (:data:`RELEVANT_FRACTION` of the way up the scale)."""
        return self.low + RELEVANT_FRACTION * self.span


#: The MyAnimeList scale.
MAL_SCALE = RatingScale(1.0, 10.0)
