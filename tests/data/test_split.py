"""The per-user split: fractions, disjointness, determinism, small users in train."""

from __future__ import annotations

import numpy as np
import pytest

from anirec.data import Ratings, Triplets, split_ratings


def make_ratings(per_user: list[int], n_items: int = 50, seed: int = 0) -> Ratings:
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u, n in enumerate(per_user):
        users.append(np.full(n, u))
        items.append(np.sort(rng.choice(n_items, n, replace=False)))
    users = np.concatenate(users).astype(np.int32)
    items = np.concatenate(items).astype(np.int32)
    return Ratings(user_ids=np.arange(len(per_user), dtype=np.int64) * 10 + 3, users=users,
                   items=items, ratings=rng.integers(1, 11, users.size).astype(np.int8))


def keys(t: Triplets) -> set[tuple[int, int]]:
    return set(zip(t.users.tolist(), t.items.tolist()))


def test_partition_and_fractions_per_user():
    r = make_ratings([20, 10, 4, 1, 30, 5])
    s = split_ratings(r, valid=0.1, test=0.2, min_ratings=5, seed=1)
    all_keys = set(zip(r.users.tolist(), r.items.tolist()))
    tr, va, te = keys(s.train), keys(s.valid), keys(s.test)
    assert tr | va | te == all_keys and not (tr & va) and not (tr & te) and not (va & te)
    assert len(s.train) + len(s.valid) + len(s.test) == r.n_ratings
    for u, n in enumerate([20, 10, 4, 1, 30, 5]):
        n_te = int(np.sum(s.test.users == u))
        n_va = int(np.sum(s.valid.users == u))
        if n < 5:
            assert n_te == n_va == 0
        else:
            assert n_te == round(0.2 * n) and n_va == round(0.1 * n)
        assert np.sum(s.train.users == u) >= 1
    assert s.train.ratings.dtype == np.float32 and s.train.users.dtype == np.int32


def test_same_seed_same_split_other_seed_other_split():
    r = make_ratings([40] * 20)
    a = split_ratings(r, seed=7)
    b = split_ratings(r, seed=7)
    c = split_ratings(r, seed=8)
    assert keys(a.test) == keys(b.test) and keys(a.valid) == keys(b.valid)
    assert keys(a.test) != keys(c.test)


def test_always_one_train_rating():
    r = make_ratings([2, 3])
    s = split_ratings(r, valid=0.45, test=0.45, min_ratings=1)
    for u in (0, 1):
        assert np.sum(s.train.users == u) >= 1


def test_ratings_are_kept_with_their_pair():
    r = make_ratings([25, 25])
    s = split_ratings(r)
    lookup = {(u, i): v for u, i, v in zip(r.users.tolist(), r.items.tolist(), r.ratings.tolist())}
    for part in (s.train, s.valid, s.test):
        for u, i, v in zip(part.users.tolist(), part.items.tolist(), part.ratings.tolist()):
            assert lookup[(u, i)] == v


@pytest.mark.parametrize("kw", [dict(valid=-0.1), dict(test=1.0), dict(valid=0.5, test=0.5),
                                dict(min_ratings=0)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        split_ratings(make_ratings([10]), **kw)


def test_split_of_loaded_data(small_data):
    s = split_ratings(small_data.ratings, seed=0)
    assert len(s.train) + len(s.valid) + len(s.test) == small_data.ratings.n_ratings
    assert 0.07 < len(s.test) / small_data.ratings.n_ratings < 0.13
