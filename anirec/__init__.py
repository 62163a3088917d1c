"""anirec: two-tower neural recommendation with Cython kernels, for MyAnimeList and beyond."""

__version__ = "0.1.0"

from anirec import datasets
from anirec._config import show_config
from anirec.backend import get_backend, set_backend, use_backend
from anirec.data import MALData, PersonRatings, load_mal, read_mal_list, read_person_ratings
from anirec.data.ratings import RatingData, load_ratings
from anirec.errors import (
    AnirecError,
    AnirecWarning,
    DataError,
    DivergenceError,
    ModelFormatError,
    ModelWriteError,
    NotFittedError,
    OutputError,
    UnknownIdError,
)
from anirec.model import TwoTower
from anirec.recommender import Recommender

__all__ = [
    "__version__",
    "Recommender",
    "TwoTower",
    "load_mal",
    "load_ratings",
    "RatingData",
    "MALData",
    "PersonRatings",
    "read_mal_list",
    "read_person_ratings",
    "datasets",
    "get_backend",
    "set_backend",
    "use_backend",
    "show_config",
    "AnirecError",
    "AnirecWarning",
    "DataError",
    "DivergenceError",
    "ModelFormatError",
    "ModelWriteError",
    "OutputError",
    "NotFittedError",
    "UnknownIdError",
]
