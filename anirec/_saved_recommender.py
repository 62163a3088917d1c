"""What a saved :class:`~anirec.Recommender` file must hold, checked before it is trusted.

:data:`MEMBERS` lists the arrays a loader reads (nothing else in the file is inflated) with
their dtype kinds and shapes, every dimension named; :func:`file_dims` gives each name's size
from the header (``dims``: users, anime, genres, feature widths, rated, seen and test pairs,
the longest name and type; the model's own), checked to agree with each other, so that a file
whose arrays are larger than its header says is refused from the ``.npy`` headers alone, before
anything is inflated. :func:`check_header` and :func:`check_arrays` then check every header
field (one validator, :func:`anirec.model.persistence.header_field`) and the values: those
that index other arrays, and those in rating units, which must be what training can produce.
Every error is a :class:`~anirec.errors.ModelFormatError` naming the file and the field.
"""

from __future__ import annotations

import numpy as np

from anirec import _filters
from anirec.baselines import BASELINES
from anirec.errors import ModelFormatError
from anirec.model import TwoTower
from anirec.model.persistence import (Member, declared_dims, header_field, known_fields,
                                      string_list)
from anirec.options import RECOMMENDER, SAVED_OWN

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
    "anime_names": Member("U", ("items",), chars="name length"),
    "genre_matrix": Member("f", ("items", "genres")),
    "anime_types": Member("U", ("items",), chars="type length"),
    "start_years": Member("i", ("items",)),
    "item_weight": Member("f", ("items",)),
    "user_ids": Member("i", ("users",)),
    "excluded_anime_ids": Member("i", ("excluded anime",), required=False),
    "user_x": Member("f", ("users", "user features")),
    "item_x": Member("f", ("items", "item features")),
    "seen_indptr": Member("i", (("users", 1),)),
    "seen_indices": Member("i", ("seen",)),
    "rated_indptr": Member("i", (("users", 1),)),
    "rated_indices": Member("i", ("rated",)),
    "test_users": Member("i", ("test pairs",)),
    "test_items": Member("i", ("test pairs",)),
    "test_ratings": Member("f", ("test pairs",)),
}

#: The dimensions a Recommender header declares (``dims``), besides its model's.
DIMS = ("users", "items", "genres", "user features", "item features", "seen", "rated",
        "test pairs", "name length", "type length")
#: Dimensions a header may leave out (with the members that use them).
OPTIONAL_DIMS = ("excluded anime",)
#: Anime names are saved cut to this many characters (the longest real one has ~150), so
#: that no file needs a wider string type than this.
MAX_NAME_LENGTH = 4096


def file_names(names: np.ndarray) -> np.ndarray:
    """Anime names as saved: a unicode array, names cut to :data:`MAX_NAME_LENGTH`."""
    names = np.asarray(names, dtype=str)
    return names.astype(f"<U{MAX_NAME_LENGTH}") if names.dtype.itemsize // 4 > \
        MAX_NAME_LENGTH else names


def dims_of(arrays: dict[str, np.ndarray], genres) -> dict[str, int]:
    """The ``dims`` header field of a Recommender saved with ``arrays``."""
    return {"users": int(arrays["user_ids"].shape[0]), "items": int(arrays["anime_ids"].shape[0]),
            "genres": len(genres), "user features": int(arrays["user_x"].shape[1]),
            "item features": int(arrays["item_x"].shape[1]),
            "seen": int(arrays["seen_indices"].shape[0]),
            "rated": int(arrays["rated_indices"].shape[0]),
            "test pairs": int(arrays["test_users"].shape[0]),
            "name length": int(arrays["anime_names"].dtype.itemsize // 4),
            "type length": int(arrays["anime_types"].dtype.itemsize // 4),
            "excluded anime": int(arrays["excluded_anime_ids"].shape[0])}


def file_dims(header: dict, source: str) -> dict[str, int]:
    """The size of every dimension of :data:`MEMBERS`, from the header, checked to agree:
    pairs no more than users x anime, seen and test pairs no more than the rated ones, the
    model's rows and tower inputs those of the recommender (its features plus the ID
    embedding), names no longer than :data:`MAX_NAME_LENGTH`."""
    model = TwoTower.file_dims(header_field(header, "model", dict, source), source, "model")
    dims = declared_dims(header, DIMS + OPTIONAL_DIMS, source)
    missing = [name for name in DIMS if name not in dims]
    if missing:
        raise ModelFormatError(f"{source}: header field 'dims.{missing[0]}' is missing")
    users, items = dims["users"], dims["items"]
    checks = [
        ("users", users >= 1, "at least 1"), ("items", items >= 1, "at least 1"),
        ("genres", dims["genres"] == len(string_list(header, "genres", source)),
         "the number of 'genres'"),
        ("rated", dims["rated"] <= users * items, f"at most users x anime ({users * items})"),
        ("seen", dims["seen"] <= dims["rated"], f"at most the rated pairs ({dims['rated']})"),
        ("test pairs", dims["test pairs"] <= dims["rated"],
         f"at most the rated pairs ({dims['rated']})"),
        ("name length", dims["name length"] <= MAX_NAME_LENGTH, f"at most {MAX_NAME_LENGTH}"),
        ("type length", dims["type length"] <= MAX_NAME_LENGTH, f"at most {MAX_NAME_LENGTH}"),
    ]
    for name, holds, expected in checks:
        if not holds:
            raise ModelFormatError(f"{source}: header field 'dims.{name}' is {dims[name]}, "
                                   f"expected {expected}")
    agree = {"users": users, "items": items,
             "user inputs": dims["user features"] + model["embedding"] + model.get("history", 0),
             "item inputs": dims["item features"] + model["embedding"]}
    for name, value in agree.items():
        if name in model and model[name] != value:
            raise ModelFormatError(f"{source}: header field 'model.dims.{name}' is "
                                   f"{model[name]}, but the recommender's dims make it {value}")
    return {**model, **dims}


#: The least standard deviation of a z-score scaler (a smaller one is replaced by 1).
MIN_STD = 1e-12

#: Options of a saved Recommender: its own (``Recommender.options``).
OPTIONS = SAVED_OWN
#: Header fields of a saved Recommender, and those of its file.
FIELDS = ("options", "model", "cold_start", "baselines", "genres", "excluded_genres", "summary",
          "dims", "format", "format_version", "kind")


def check_header(header: dict, source: str) -> None:
    """Every field of a Recommender header other than the model's, by type and range; no
    field, option or cold-start entry that is not known."""
    known_fields(header, FIELDS, source)
    options = header_field(header, "options", dict, source)
    known_fields(options, OPTIONS, source, where="options")
    for name in OPTIONS:  # the JSON type, then the value as the constructor checks it
        option = RECOMMENDER[name]
        value = header_field(options, name, option.kind.json_types, source, where="options")
        try:
            option.check(value)
        except (TypeError, ValueError) as error:
            raise ModelFormatError(f"{source}: header field 'options.{name}' is invalid: "
                                   f"{error}") from None
    names = string_list(header, "baselines", source)
    unknown = [name for name in names if name not in BASELINES]
    if unknown or sorted(names) != sorted(BASELINES):
        raise ModelFormatError(f"{source}: header field 'baselines' is {names!r:.80}, expected "
                               f"each of {sorted(BASELINES)} once")
    header_field(header, "model", dict, source)
    genres = string_list(header, "genres", source)
    string_list(header, "excluded_genres", source)
    header_field(header, "summary", dict, source, required=False)
    cold = header_field(header, "cold_start", dict, source)
    known_fields(cold, ("genres", "mode", "global_mean", "typical_count"), source,
                 where="cold_start")
    if string_list(cold, "genres", source, where="cold_start") != genres:
        raise ModelFormatError(f"{source}: header field 'cold_start.genres' differs from "
                               "'genres'")
    header_field(cold, "mode", int, source, where="cold_start", choices=(0, 1, 2))
    header_field(cold, "global_mean", (int, float), source, where="cold_start")
    header_field(cold, "typical_count", (int, float), source, where="cold_start", low=0,
                 high=2.0**63)


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
            not (arrays["cold.std"] >= MIN_STD).all():
        raise ModelFormatError(f"{source}: cold.mean and cold.std must hold one value per "
                               f"genre plus two, the deviations at least {MIN_STD:g} (the "
                               "z-score scaler's floor)")
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
    years = arrays["start_years"]
    if years.size and ((years < 0) | (years > _filters.YEARS[1])).any():
        raise ModelFormatError(f"{source}: start_years must hold years 1..{_filters.YEARS[1]}, "
                               f"or {_filters.UNKNOWN_YEAR} for an unknown year")
    _within("test_users", arrays["test_users"], n_users, "user rows", source)
    _within("test_items", arrays["test_items"], n_items, "anime rows", source)
    _check_rating_units(header, arrays, model, source)


def _check_rating_units(header: dict, arrays: dict, model: TwoTower, source: str) -> None:
    """Values in rating units are what training can produce from ratings in the model's
    rating range ``[lo, hi]``: means and held-out ratings within it, biases within 100 widths
    of it, Bayesian averages (which mix in the catalogue's 1..10 scores) within the range
    spanning both, counts of training pairs whole and at most the rated pairs."""
    from anirec.model.two_tower import _MAX_BIAS_WIDTHS

    lo, hi = model.rating_range
    limit = _MAX_BIAS_WIDTHS * (hi - lo)
    levels = (lo, hi)
    checks = {
        "test_ratings": levels,
        "baseline.GlobalMean.mean": levels,
        "baseline.BiasModel.mean": levels,
        "baseline.BiasModel.user_bias": (-limit, limit),
        "baseline.BiasModel.item_scores": (-limit, limit),
        "baseline.BayesianAverage.item_scores": (min(lo, 1.0), max(hi, 10.0)),
        "item_weight": (min(lo, 1.0), max(hi, 10.0)),
        "baseline.Popularity.item_scores": (0.0, float(arrays["rated_indices"].shape[0])),
    }
    for name, (low, high) in checks.items():
        values = arrays[name]
        if values.size and (values.min() < low or values.max() > high):
            raise ModelFormatError(f"{source}: {name} holds values outside [{low:g}, {high:g}]"
                                   f", which no model trained on ratings in [{lo:g}, {hi:g}] "
                                   "has")
    counts = arrays["baseline.Popularity.item_scores"]
    if (counts != np.round(counts)).any():
        raise ModelFormatError(f"{source}: baseline.Popularity.item_scores must count training "
                               "pairs (whole numbers)")
    mean = header["cold_start"]["global_mean"]
    if not lo <= mean <= hi:
        raise ModelFormatError(f"{source}: header field 'cold_start.global_mean' is {mean}, "
                               f"outside the rating range [{lo:g}, {hi:g}]")


def check_usable(rec, source: str) -> None:
    """Compute once what queries compute (the embeddings of every saved user and anime, the
    retrieval rows, a new user who rates every genre lowest, highest or not at all) and mark
    ``rec`` fitted; refuse the file if any of it overflows, naming the fields involved.

    Finite numbers can still be too large to use (weights of 1e30 overflow the towers'
    float32 products); the stages are exactly what every later query repeats, so a file that
    passes here never fails inside a kernel later.
    """
    stages = [
        ("embedding the saved anime and users",
         "model.params, the ID tables (model.*_table), item_x and user_x", rec._prepare),
        ("embedding a new user from genre ratings",
         "model.params, cold.mean, cold.std and cold_start", lambda: _new_users(rec)),
        ("folding in a person from their ratings",
         "model.params, cold.mean, cold.std, cold_start, genre_matrix and item_weight",
         lambda: _people(rec)),
    ]
    for stage, fields, run in stages:
        try:
            with np.errstate(all="ignore"):
                run()
        except (ValueError, FloatingPointError):
            raise ModelFormatError(f"{source}: the model overflows when {stage}: {fields} hold "
                                   "numbers too large to compute with (no training produces "
                                   "them)") from None
    rec.fitted = True


def _people(rec) -> None:
    """Fold in the extreme people of :meth:`Recommender.recommend_for_ratings`: one who rated
    one anime lowest, one who rated every anime highest, and one who rated none."""
    from anirec import foldin
    from anirec.data.person import PersonRatings

    lo, hi = rec.model.rating_range
    ids = rec.anime_ids
    people = [(ids[:1], np.array([lo])), (ids, np.full(ids.shape[0], hi)),
              (ids[:0], np.zeros(0))]
    for anime_ids, ratings in people:
        folded = foldin.fold_in_person(rec, PersonRatings(anime_ids.copy(), ratings,
                                                          anime_ids.copy(), "the check"))
        scores = rec._retrieval_queries(folded.vector).astype(np.float64) @ \
            rec.retrieval_items.astype(np.float64).T
        if not (np.isfinite(scores).all() and np.isfinite(folded.bias)):
            raise FloatingPointError("non-finite retrieval scores")


def _new_users(rec) -> None:
    """Embed the extreme new users of :meth:`Recommender.recommend_for_genres`."""
    lo, hi = 1.0, 10.0
    rows = [rec.cold_start.row({}, scale=(lo, hi))]
    for rating in (lo, hi):
        rows.append(rec.cold_start.row({genre: rating for genre in rec.genres}, scale=(lo, hi)))
    vectors = rec.model.user_embeddings(np.vstack(rows))
    scores = rec._retrieval_queries(vectors).astype(np.float64) @ \
        rec.retrieval_items.astype(np.float64).T
    if not np.isfinite(scores).all():
        raise FloatingPointError("non-finite retrieval scores")
