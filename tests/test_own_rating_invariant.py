"""No input of a training or validation example depends on that example's own rating.

The invariant as such, not column by column: for sampled training and validation examples the
example's rating is replaced by another value, with the catalogue's Score moved as
MyAnimeList's would be (it counts every loaded rating), and the inputs of both towers are
rebuilt through the code training runs: the recommender's split, the catalogue's outside
statistics and the features, then the model's epoch plan and its gather of every input block
(features with their leave-one-out statistics, ID embeddings, pooled history) under each
backend; a validation example's inputs through the model's serving path. Nothing may move.

The constants fitted with the features (:class:`anirec.data.FeatureScales`: the mean rating,
the Bayesian prior, the z-score scalers) are one value per column, shared by every example;
any rating moves them by O(1 / number of ratings), so the rebuild holds them fixed, and a
separate test bounds how far they move.
"""

import copy
import tempfile

import numpy as np
import pytest

import anirec
from anirec import Recommender
from anirec.data import generate_synthetic, load_mal
from anirec.data.synthetic import write_tables

OPTIONS = dict(layers=(8,), epochs=1, dtype="float64", refit=False, seed=3, embedding_dim=3,
               history_dim=2)
#: Equal but for rounding: the Score moved and its ratings taken out again cancel to ~1e-13.
TOLERANCE = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def data():
    synthetic = generate_synthetic(300, 120, 9_000, seed=11)
    with tempfile.TemporaryDirectory() as tmp:
        data = load_mal(*write_tables(synthetic, tmp))
    assert data.catalogue.attributes["score"].notna().sum() > 50  # Scores counting ratings
    return data


def _position(data, user, item) -> int:
    r = data.ratings
    return int(np.flatnonzero((r.users == user) & (r.items == item))[0])


def with_rating(data, position: int, value: float):
    """A copy of ``data`` whose rating at ``position`` is ``value``, the catalogue's Score
    moved with it."""
    changed = copy.deepcopy(data)
    ratings = changed.ratings.ratings
    item = int(changed.ratings.items[position])
    delta = float(value) - float(ratings[position])
    ratings[position] = value
    attributes = changed.catalogue.attributes
    attributes.loc[item, "score"] += delta / attributes.loc[item, "scored_by"]
    return changed


def other_rating(value) -> float:
    return 1.0 if value != 1 else 10.0


class Inputs:
    """The tower inputs a recommender's training gives the examples of ``data``."""

    def __init__(self, rec: Recommender, data, scales=None):
        self.split = rec._split_of(data)
        self.features = f = rec._features(data, self.split.train, rec._outside(data), scales)
        self.model = model = copy.deepcopy(rec.model)
        self.plan = model.epoch_plan(self.split.train, f.user_x, f.item_x, loo=f.user_stats,
                                     item_loo=f.item_stats)
        train = self.split.train
        self.position = {(int(u), int(i)): k for k, (u, i) in
                         enumerate(zip(train.users, train.items))}

    def training(self, user, item, rating):
        """The rows the epoch gathers for the training example (its rating is the data's)."""
        k = [self.position[user, item]]
        return self.plan.inputs("user", k), self.plan.inputs("item", k)

    def held_out(self, user, item):
        """The rows a validation (or test, or served) example reads."""
        f, model = self.features, self.model
        return (model._with_blocks(f.user_x[[user]], "user", [user], "user_x"),
                model._with_blocks(f.item_x[[item]], "item", [item], "item_x"))


def _examples(part, n, rng):
    """``n`` examples of a split part, those of the rarest items first (where a leak through
    an item statistic is largest)."""
    counts = np.bincount(part.items)
    order = np.lexsort((rng.random(len(part)), counts[part.items]))
    return [(int(part.users[k]), int(part.items[k]), float(part.ratings[k]))
            for k in order[:n]]


@pytest.mark.parametrize("weighting", ["bayesian", "rating", "centered"])
def test_no_input_of_an_example_depends_on_its_own_rating(each_backend, data, weighting):
    rec = Recommender(weighting=weighting, **OPTIONS)
    reference = Inputs(rec, data)
    scales = reference.features.scales
    rng = np.random.default_rng(0)
    checked = 0
    for user, item, rating in _examples(reference.split.train, 12, rng):
        changed = Inputs(rec, with_rating(data, _position(data, user, item),
                                          other_rating(rating)), scales)
        assert changed.split.train.items.tolist() == reference.split.train.items.tolist()
        for got, expected in zip(changed.training(user, item, other_rating(rating)),
                                 reference.training(user, item, rating)):
            np.testing.assert_allclose(got, expected, **TOLERANCE)
        checked += 1
    for user, item, rating in _examples(reference.split.valid, 8, rng):
        changed = Inputs(rec, with_rating(data, _position(data, user, item),
                                          other_rating(rating)), scales)
        for got, expected in zip(changed.held_out(user, item),
                                 reference.held_out(user, item)):
            np.testing.assert_allclose(got, expected, **TOLERANCE)
        checked += 1
    assert checked == 20


def test_another_rating_of_the_same_anime_moves_the_inputs(each_backend, data):
    """The control: the rebuild sees a rating that may be read (another user's, of the same
    anime), so the test above would see a leak."""
    rec = Recommender(**OPTIONS)
    reference = Inputs(rec, data)
    train = reference.split.train
    user, item, rating = _examples(train, 1, np.random.default_rng(1))[0]
    others = np.flatnonzero((train.items == item) & (train.users != user))
    assert others.size
    other_user = int(train.users[others[0]])
    position = _position(data, other_user, item)
    changed = Inputs(rec, with_rating(data, position, other_rating(data.ratings.ratings[position])),
                     reference.features.scales)
    _, item_row = changed.training(user, item, rating)
    assert not np.allclose(item_row, reference.training(user, item, rating)[1], **TOLERANCE)


def test_the_shared_constants_move_by_one_rating_in_all(data):
    """What the rebuild holds fixed moves like a mean over every rating, not like a statistic
    of one user or anime: at most |change| / (training ratings) in the mean rating, and the
    scalers by a small fraction of their spread."""
    rec = Recommender(**OPTIONS)
    reference = Inputs(rec, data)
    user, item, rating = _examples(reference.split.train, 1, np.random.default_rng(2))[0]
    changed = Inputs(rec, with_rating(data, _position(data, user, item), other_rating(rating)))
    before, after = reference.features.scales, changed.features.scales
    n = len(reference.split.train)
    assert abs(after.global_mean - before.global_mean) <= 9.0 / n * (1 + 1e-9)
    for name in ("item_mean", "user_mean"):
        spread = getattr(before, name.replace("mean", "std"))
        moved = np.abs(getattr(after, name) - getattr(before, name)) / spread
        assert moved.max() < 0.02, name
