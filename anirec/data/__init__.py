"""MyAnimeList data: loading and cleaning, splitting, features, and the synthetic data set.

One module per job: :mod:`.types` (catalogue, ratings, load summary, id lookup), :mod:`.anime`
(the anime file), :mod:`.scores` (the scores file), :mod:`.mal` (``load_mal``, orchestration
only), :mod:`.person` (one person's ratings: a table or a MyAnimeList list export),
:mod:`.bayes`, :mod:`.split`, :mod:`.features`, :mod:`.synthetic`.
pandas/NumPy/SciPy/pyarrow only: this package knows nothing of the kernels or the model.
"""

from .anime import load_catalogue
from .bayes import OutsideStatistics, bayesian_average, outside_statistics
from .mal import load_mal
from .person import PersonRatings, read_mal_list, read_person_ratings
from .types import (
    ANIME_TYPES,
    DEFAULT_EXCLUDED_GENRES,
    Catalogue,
    LoadSummary,
    MALData,
    Ratings,
    index_of_sorted,
)
from .features import (WEIGHTINGS, ColdStart, Features, FeatureScales, UserStats,
                       build_features)
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
    "OutsideStatistics",
    "outside_statistics",
    "index_of_sorted",
    "load_catalogue",
    "load_mal",
    "PersonRatings",
    "read_mal_list",
    "read_person_ratings",
    "WEIGHTINGS",
    "Features",
    "FeatureScales",
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
