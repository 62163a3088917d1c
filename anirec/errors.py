"""Exceptions raised by anirec.

Every error anirec raises on purpose derives from :class:`AnirecError`, and each also derives
from the built-in exception a caller would naturally catch (``ValueError``, ``KeyError``, ...).
"""


class AnirecError(Exception):
    """Base class of every error raised by anirec on purpose."""


class DataError(AnirecError, ValueError):
    """An input file or table is missing, malformed or inconsistent.

    The message names the file, the column and, where it applies, the row.
    """


class ModelFormatError(AnirecError, ValueError):
    """A saved model file is truncated, corrupted, foreign or of a newer format."""


class OutputError(AnirecError, OSError):
    """An output (a model or a CSV file) cannot be written where asked: a symbolic link, a
    device, a FIFO, a folder, one of the command's inputs, a folder without room or
    permission. Nothing is written and nothing is left behind."""


class ModelWriteError(OutputError):
    """A model cannot be saved where asked: a symbolic link, a device, a folder, a missing
    folder or no permission. Nothing is written."""


class DivergenceError(AnirecError, FloatingPointError):
    """Training diverged: a non-finite loss or weight, or exploded weights with a validation
    error no better than that of predicting the mean rating (for a ranking model: of ranking
    by popularity alone). A diverged model can be neither used nor saved."""


class NotFittedError(AnirecError, RuntimeError):
    """A model or recommender was used before it was fitted or loaded."""


class UnknownIdError(AnirecError, KeyError):
    """A user or anime id is not known to the model."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0]) if self.args else ""


class AnirecWarning(UserWarning):
    """Something the caller should know about a result that anirec still returns: pairs of
    unknown ids skipped, held-out ratings the model was trained on."""
