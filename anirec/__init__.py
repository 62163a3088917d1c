"""anirec: two-tower neural recommendation with Cython kernels, for MyAnimeList and beyond."""

__version__ = "0.1.0"

from anirec.backend import get_backend, set_backend, use_backend
from anirec._config import show_config
from anirec.errors import (
    AnirecError,
    DataError,
    DivergenceError,
    ModelFormatError,
    NotFittedError,
    UnknownIdError,
)

__all__ = [
    "__version__",
    "get_backend",
    "set_backend",
    "use_backend",
    "show_config",
    "AnirecError",
    "DataError",
    "DivergenceError",
    "ModelFormatError",
    "NotFittedError",
    "UnknownIdError",
]
