"""ID embeddings in the model: which ids own a row, the unknown row for rare and new ids, and
persistence of the tables."""

import numpy as np
import pytest

from anirec.errors import ModelFormatError
from anirec.model import TwoTower


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    users = np.concatenate([rng.integers(0, 20, 800), [20]])  # user 20 rates once
    items = np.concatenate([rng.integers(0, 15, 800), [15]])  # item 15 is rated once
    ratings = rng.integers(1, 11, users.shape[0]).astype(float)
    user_x, item_x = rng.normal(size=(22, 4)), rng.normal(size=(16, 3))  # user 21: no rating
    model = TwoTower((8, 4), epochs=2, embedding_dim=3, min_id_count=2, seed=1,
                     validation_fraction=0.0)
    return model.fit((users, items, ratings), user_x, item_x), user_x, item_x


def test_frequent_ids_own_a_row_and_rare_ones_share_the_unknown_row(fitted):
    model, _, _ = fitted
    index, table = model.tables_["user"]
    assert table.shape == (21, 3)  # users 0..19 and the unknown row
    np.testing.assert_array_equal(index[:20], np.arange(20))
    assert index[20] == index[21] == 20
    item_index, item_table = model.tables_["item"]
    assert item_table.shape == (16, 3) and item_index[15] == 15
    assert model.user_sizes_[0] == 4 + 3 and model.item_sizes_[0] == 3 + 3


def test_new_and_rare_ids_embed_like_the_unknown_row(fitted):
    model, user_x, _ = fitted
    rare = model.user_embeddings(user_x[[20, 21]], [20, 21])
    new = model.user_embeddings(user_x[[20, 21]])  # no rows: new users
    np.testing.assert_array_equal(rare, new)
    known = model.user_embeddings(user_x[[3]], [3])
    assert not np.allclose(known, model.user_embeddings(user_x[[3]]))
    with pytest.raises(Exception, match="refers to user row 22"):
        model.user_embeddings(user_x[[0]], [22])


def test_embeddings_learn_what_the_features_do_not_say():
    """Ratings planted from latent user and item factors, features of pure noise: only the
    ID embeddings can fit them."""
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    users, items = rng.integers(0, 40, 4000), rng.integers(0, 30, 4000)
    ratings = np.clip(5.5 + 1.5 * np.einsum("ij,ij->i", p[users], q[items]), 1, 10)
    user_x, item_x = rng.normal(size=(40, 3)), rng.normal(size=(30, 3))
    errors = {}
    for dim in (0, 4):
        model = TwoTower((16, 8), epochs=15, lr=1e-2, lr_schedule="constant",
                         lr_schedule_options={}, embedding_dim=dim, biases=False, seed=0,
                         validation_fraction=0.0)
        model.fit((users, items, ratings), user_x, item_x)
        predicted = model.predict(user_x[users], item_x[items], users, items)
        errors[dim] = float(np.sqrt(np.mean((predicted - ratings) ** 2)))
    assert errors[4] < 0.5 * errors[0], errors


def test_save_load_keeps_the_tables(fitted, tmp_path):
    model, user_x, item_x = fitted
    model.save(tmp_path / "m.anirec")
    loaded = TwoTower.load(tmp_path / "m.anirec")
    for side in ("user", "item"):
        for got, want in zip(loaded.tables_[side], model.tables_[side]):
            np.testing.assert_array_equal(got, want)
    rows = np.arange(15)
    np.testing.assert_array_equal(loaded.predict(user_x[rows], item_x[rows], rows, rows),
                                  model.predict(user_x[rows], item_x[rows], rows, rows))


def test_a_corrupted_table_is_refused(fitted, tmp_path):
    model, _, _ = fitted
    header, arrays = model.to_state()
    bad = dict(arrays, user_index=np.full(22, 99, np.int64))
    with pytest.raises(ModelFormatError, match="user_index must be int64 rows"):
        TwoTower.from_state(header, bad)
    bad = dict(arrays, item_table=arrays["item_table"][:, :2].copy())
    with pytest.raises(ModelFormatError, match="item_table must be a finite"):
        TwoTower.from_state(header, bad)
    missing = {key: value for key, value in arrays.items() if key != "user_table"}
    with pytest.raises(ModelFormatError, match="the user embedding table is missing"):
        TwoTower.from_state(header, missing)


def _fit_keeping_the_last_epochs_tables(model, *args):
    """Fit, and return the tables as the last epoch left them (before fit's last steps)."""
    last = {}

    def keep(epoch, logs):
        last.update({side: table.copy() for side, (_, table) in model.tables_.items()})

    model.fit(*args, callback=keep)
    return last


@pytest.mark.parametrize("rare_user", [False, True])
def test_the_unknown_row_becomes_the_mean_row_of_the_ids_trained_on(rare_user):
    rng = np.random.default_rng(5)
    users = rng.permutation(np.repeat(np.arange(10), 30))  # ten users of 30 ratings each
    items = rng.integers(0, 12, users.shape[0])
    if rare_user:  # user 10 rates once and shares the unknown row
        users, items = np.append(users, 10), np.append(items, 0)
    ratings = rng.integers(1, 11, users.shape[0]).astype(float)
    user_x, item_x = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))  # user 11: never
    model = TwoTower((6, 4), epochs=2, embedding_dim=3, seed=2, validation_fraction=0.0)
    trained = _fit_keeping_the_last_epochs_tables(model, (users, items, ratings), user_x,
                                                  item_x)["user"]
    index, table = model.tables_["user"]
    assert table.shape == (11, 3) and index[11] == 10
    np.testing.assert_array_equal(table[:10], trained[:10])  # the ids' own rows stay
    # By hand: the mean over the ids trained on, one row per id (a rare one: the shared row).
    rows_of_ids = [trained[u] for u in range(10)] + ([trained[10]] if rare_user else [])
    np.testing.assert_allclose(table[10], np.mean(rows_of_ids, axis=0), rtol=1e-5, atol=1e-7)
    assert not np.allclose(trained[10], table[10])


def test_with_id_dropout_the_unknown_row_stays_as_trained():
    rng = np.random.default_rng(5)
    users, items = rng.integers(0, 10, 400), rng.integers(0, 12, 400)
    ratings = rng.integers(1, 11, 400).astype(float)
    model = TwoTower((6, 4), epochs=2, embedding_dim=3, seed=2, validation_fraction=0.0,
                     id_dropout=0.3)
    trained = _fit_keeping_the_last_epochs_tables(
        model, (users, items, ratings), rng.normal(size=(10, 3)), rng.normal(size=(12, 2)))
    for side in ("user", "item"):
        np.testing.assert_array_equal(model.tables_[side][1], trained[side])
