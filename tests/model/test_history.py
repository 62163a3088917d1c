"""The pooled history of the user tower, in a model: what it reads, its file, its serving."""

import numpy as np
import pytest

from anirec import TwoTower
from anirec.errors import ModelFormatError

from ..conftest import planted


@pytest.fixture(scope="module")
def data():
    users, items, ratings, user_x, item_x = planted(seed=4, n_users=80, n_items=60,
                                                   n_examples=2000)
    _, first = np.unique(users * 60 + items, return_index=True)  # each pair rated once
    keep = np.sort(first)
    return (users[keep], items[keep], ratings[keep]), user_x, item_x


def _model(**options):
    return TwoTower(layers=(16, 8), epochs=2, batch_size=64, seed=1, history_dim=4,
                    dtype="float64", **options)


def test_a_training_example_pools_its_users_other_anime(each_backend, data):
    train, user_x, item_x = data
    users, items, _ = train
    model = _model()
    plan = model.epoch_plan(train, user_x, item_x)
    indptr, indices, table = model.pooled_history_
    np.testing.assert_array_equal(np.diff(indptr), np.bincount(users, minlength=80))
    for k in (0, 7, users.shape[0] - 1):
        rated = {int(i) for u, i in zip(users, items) if u == users[k]}
        assert set(indices[indptr[users[k]]:indptr[users[k] + 1]].tolist()) == rated
        others = sorted(rated - {int(items[k])})
        expected = table[others].mean(axis=0) if others else np.zeros(4)
        np.testing.assert_allclose(plan.inputs("user", [k])[0, -4:], expected, rtol=1e-12)


def test_serving_pools_the_training_history_or_the_one_given(data):
    train, user_x, item_x = data
    model = _model().fit(train, user_x, item_x)
    indptr, indices, table = model.pooled_history_
    rows = np.array([3, 5])
    known = model._with_blocks(user_x[rows], "user", rows, "user_x")
    for r, row in zip(rows, known):
        np.testing.assert_allclose(row[-4:], table[indices[indptr[r]:indptr[r + 1]]].mean(0),
                                   rtol=1e-12)
    given = model._with_blocks(user_x[rows], "user", None, "user_x", history=[[1, 2], []])
    np.testing.assert_allclose(given[0, -4:], table[[1, 2]].mean(0), rtol=1e-12)
    np.testing.assert_array_equal(given[1, -4:], 0)
    assert not np.allclose(model.user_embeddings(user_x[rows], rows),
                           model.user_embeddings(user_x[rows], rows, history=[[1], [2]]))
    with pytest.raises(ValueError, match="2 rows but 1 histories"):
        model.user_embeddings(user_x[rows], history=[[1]])
    with pytest.raises(Exception, match="history 0"):
        model.user_embeddings(user_x[rows], history=[[60], []])


def test_the_history_is_saved_and_loaded(tmp_path, data):
    train, user_x, item_x = data
    model = _model().fit(train, user_x, item_x)
    model.save(tmp_path / "m.anirec")
    loaded = TwoTower.load(tmp_path / "m.anirec")
    for got, expected in zip(loaded.pooled_history_, model.pooled_history_):
        np.testing.assert_array_equal(got, expected)
    rows = np.arange(10)
    np.testing.assert_array_equal(loaded.user_embeddings(user_x[rows], rows),
                                  model.user_embeddings(user_x[rows], rows))
    header, arrays = model.to_state()
    arrays = dict(arrays)
    del arrays["history_table"]
    with pytest.raises(ModelFormatError, match="pooled history is missing"):
        TwoTower.from_state(header, arrays)
    plain = TwoTower(layers=(16, 8), epochs=1, seed=1, dtype="float64").fit(train, user_x,
                                                                          item_x)
    header, arrays = plain.to_state()
    with pytest.raises(ModelFormatError, match="history_table.*history_dim > 0"):
        TwoTower.from_state(header, {**arrays, "history_table": model.pooled_history_[2]})
