"""MyAnimeList data: loading and cleaning, splitting, features, and the synthetic data set.

pandas/NumPy/SciPy only: this package knows nothing of the kernels or the model.
"""

from .mal import (
    ANIME_TYPES,
    DEFAULT_EXCLUDED_GENRES,
    Catalogue,
    LoadSummary,
    MALData,
    Ratings,
    bayesian_average,
    load_catalogue,
    load_mal,
)
from .features import WEIGHTINGS, ColdStart, Features, UserStats, build_features
from .split import Split, Triplets, split_ratings
from .synthetic import (
    MAL_GENRES,
    SyntheticData,
    SyntheticTruth,
    generate_synthetic,
    load_demo,
    write_synthetic,
)

__all__ = [
    "ANIME_TYPES",
    "DEFAULT_EXCLUDED_GENRES",
    "Catalogue",
    "LoadSummary",
    "MALData",
    "Ratings",
    "bayesian_average",
    "load_catalogue",
    "load_mal",
    "WEIGHTINGS",
    "Features",
    "ColdStart",
    "UserStats",
    "build_features",
    "Split",
    "Triplets",
    "split_ratings",
    "MAL_GENRES",
    "SyntheticData",
    "SyntheticTruth",
    "generate_synthetic",
    "load_demo",
    "write_synthetic",
]
