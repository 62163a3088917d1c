"""What a saved :class:`~anirec.Recommender` file must hold, checked before it is trusted.

:data:`MEMBERS` lists the arrays a loader reads (nothing else in the file is inflated) with
their dtype kinds and shapes, dimensions named alike agreeing across arrays, so that
inconsistent files are refused from the ``.npy`` headers alone; :func:`check_header` and
:func:`check_arrays` then check every header field and the values that index other arrays.
Every error is a :class:`~anirec.errors.ModelFormatError` naming the file and the field.
"""

from __future__ import annotations

import numpy as np

from anirec.baselines import BASELINES
from anirec.errors import ModelFormatError
from anirec.model import TwoTower
from anirec.model.persistence import Member, header_field, string_list

MEMBERS = {
    **TwoTower.file_members("model."),
    "cold.mean": Member("f", ("user features",)),
    "cold.std": Member("f", ("user features",)),
    "baseline.GlobalMean.mean": Member("f", (1,)),
    "baseline.BayesianAverage.item_scores": Member("f", ("items",)),
    "baseline.BiasModel.mean": Member("f", (1,)),
    "baseline.BiasModel.user_bias": Member("f", ("users",)),
    "baseline.BiasModel.item_scores": Member("f", ("items",)),
    "baseline.Popularity.item_scores": Member("f", ("items",)),
    "anime_ids": Member("i", ("items",)),
    "anime_names": Member("U", ("items",)),
    "genre_matrix": Member("f", ("items", "genres")),
    "user_ids": Member("i", ("users",)),
    "excluded_anime_ids": Member("i", (None,), required=False),
    "user_x": Member("f", ("users", "user features")),
    "item_x": Member("f", ("items", None)),
    "seen_indptr": Member("i", (("users", 1),)),
    "seen_indices": Member("i", (None,)),
    "rated_indptr": Member("i", (("users", 1),)),
    "rated_indices": Member("i", (None,)),
    "test_users": Member("i", ("test pairs",)),
    "test_items": Member("i", ("test pairs",)),
    "test_ratings": Member("f", ("test pairs",)),
}

_WEIGHTINGS = ("bayesian", "rating", "centered")


def check_header(header: dict, source: str) -> None:
    """Every field of a Recommender header other than the model's, by type and range."""
    options = header_field(header, "options", dict, source)
    for name, types in (("weighting", str), ("valid", (int, float)), ("test", (int, float)),
                        ("min_ratings", int), ("leave_one_out", bool),
                        ("item_attributes", bool), ("seed", int)):
        header_field(options, name, types, source, where="options")
    header_field(options, "refit", bool, source, where="options", required=False)
    names = string_list(header, "baselines", source)
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise ModelFormatError(f"{source}: header field 'baselines' names {unknown[0]!r:.40}, "
                               f"expected some of {sorted(BASELINES)}")
    if options["weighting"] not in _WEIGHTINGS:
        raise ModelFormatError(f"{source}: header field 'options.weighting' is "
                               f"{options['weighting']!r:.40}, expected one of {_WEIGHTINGS}")
    for name in ("valid", "test"):
        if not 0 <= options[name] < 1:
            raise ModelFormatError(f"{source}: header field 'options.{name}' is "
                                   f"{options[name]}, expected a fraction in [0, 1)")
    header_field(header, "model", dict, source)
    genres = string_list(header, "genres", source)
    string_list(header, "excluded_genres", source)
    header_field(header, "summary", dict, source, required=False)
    cold = header_field(header, "cold_start", dict, source)
    if string_list(cold, "genres", source, where="cold_start") != genres:
        raise ModelFormatError(f"{source}: header field 'cold_start.genres' differs from "
                               "'genres'")
    mode = header_field(cold, "mode", int, source, where="cold_start")
    if mode not in (0, 1, 2):
        raise ModelFormatError(f"{source}: header field 'cold_start.mode' is {mode}, "
                               "expected 0, 1 or 2")
    header_field(cold, "global_mean", (int, float), source, where="cold_start")
    count = header_field(cold, "typical_count", (int, float), source, where="cold_start")
    if count < 0:
        raise ModelFormatError(f"{source}: header field 'cold_start.typical_count' is "
                               f"{count}, expected a count (>= 0)")


def _strictly_increasing(name: str, ids: np.ndarray, source: str) -> None:
    if ids.size > 1 and not (np.diff(ids) > 0).all():
        raise ModelFormatError(f"{source}: {name} must be sorted and distinct (the id lookup "
                               "relies on it)")


def _within(name: str, index: np.ndarray, n: int, what: str, source: str) -> None:
    if index.size and (index.min() < 0 or index.max() >= n):
        raise ModelFormatError(f"{source}: {name} refers to {what} outside [0, {n})")


def check_arrays(header: dict, arrays: dict, model: TwoTower, source: str) -> None:
    """Values of the arrays that the header and the model depend on (their shapes and dtypes
    were checked before reading by :data:`MEMBERS`)."""
    n_users, n_items = arrays["user_ids"].shape[0], arrays["anime_ids"].shape[0]
    _strictly_increasing("user_ids", arrays["user_ids"], source)
    _strictly_increasing("anime_ids", arrays["anime_ids"], source)
    if arrays["genre_matrix"].shape[1] != len(header["genres"]):
        raise ModelFormatError(f"{source}: genre_matrix has {arrays['genre_matrix'].shape[1]} "
                               f"columns for {len(header['genres'])} genres")
    if arrays["cold.mean"].shape[0] != len(header["genres"]) + 2 or \
            not (arrays["cold.std"] > 0).all():
        raise ModelFormatError(f"{source}: cold.mean and cold.std must hold one value per "
                               "genre plus two, the deviations positive")
    for name, side in (("user_x", "user"), ("item_x", "item")):
        width = model.feature_width(side)
        if arrays[name].shape[1] != width:
            raise ModelFormatError(f"{source}: {name} has {arrays[name].shape[1]} columns, but "
                                   f"the model's {side} tower takes {width} features")
    if model.item_log_prior_ is not None and model.item_log_prior_.shape[0] != n_items:
        raise ModelFormatError(f"{source}: model.item_log_prior has "
                               f"{model.item_log_prior_.shape[0]} entries for {n_items} anime")
    for name in ("seen", "rated"):
        indptr, indices = arrays[f"{name}_indptr"], arrays[f"{name}_indices"]
        if indptr[0] != 0 or indptr[-1] != indices.shape[0] or (np.diff(indptr) < 0).any():
            raise ModelFormatError(f"{source}: {name}_indptr must start at 0, never decrease "
                                   f"and end at the {indices.shape[0]} entries of "
                                   f"{name}_indices")
        _within(f"{name}_indices", indices, n_items, "anime rows", source)
    _within("test_users", arrays["test_users"], n_users, "user rows", source)
    _within("test_items", arrays["test_items"], n_items, "anime rows", source)
    low, high = model.rating_range
    ratings = arrays["test_ratings"]
    if ratings.size and (ratings.min() < low or ratings.max() > high):
        raise ModelFormatError(f"{source}: test_ratings fall outside the rating range "
                               f"[{low:g}, {high:g}]")
