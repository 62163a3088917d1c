"""No recommendation path returns an anime the user rated in any split, nor one excluded.

The rated set is read straight from the scores file with pandas, independently of the
loader, the split and the recommender's own bookkeeping.
"""

import numpy as np
import pandas as pd
import pytest

from anirec import Recommender
from anirec.cli import main
from anirec.data import load_mal, write_synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exclusions")
    anime, scores = write_synthetic(folder, n_users=250, n_anime=150, n_ratings=8_000, seed=4)
    return folder, anime, scores


@pytest.fixture(scope="module")
def rated(files):
    """Every (user_id, anime_id) pair of the scores file."""
    frame = pd.read_csv(files[2], usecols=["user_id", "anime_id"])
    return set(zip(frame["user_id"].astype(int), frame["anime_id"].astype(int)))


@pytest.fixture(scope="module")
def fitted(files):
    # The hybrid objective adds a popularity prior, which pulls popular (often rated) anime up:
    # the case where a missed exclusion shows. A large test split makes the test split matter.
    data = load_mal(files[1], files[2], progress=False)
    return Recommender(layers=(16,), epochs=2, seed=0, valid=0.2, test=0.3).fit(data)


def _pairs(frame: pd.DataFrame) -> set:
    return set(zip(frame["user_id"].astype(int), frame["anime_id"].astype(int)))


def _rated_test_pairs(fitted) -> set:
    test = fitted.test
    return set(zip(fitted.user_ids[test.users].tolist(), fitted.anime_ids[test.items].tolist()))


def test_test_split_anime_would_be_recommended_without_the_exclusion(fitted):
    # Guards the tests below: without exclusions, test-split anime do come up.
    recs = fitted.recommend(fitted.user_ids, n=20, exclude_rated=False)
    assert _pairs(recs) & _rated_test_pairs(fitted)


def test_single_user(fitted, rated):
    for user_id in fitted.user_ids[:40]:
        recs = fitted.recommend(int(user_id), n=20)
        assert len(recs) == 20
        assert not _pairs(recs) & rated


def test_batch_and_arrays(fitted, rated):
    users = fitted.user_ids
    recs = fitted.recommend(users, n=20)
    assert len(recs) == 20 * len(users) and not _pairs(recs) & rated
    ids, _ = fitted.recommend_arrays(users, n=20)
    pairs = {(int(u), int(a)) for u, row in zip(users, ids) for a in row if a >= 0}
    assert pairs and not pairs & rated


def test_all_users_in_blocks(fitted, rated):
    frames = list(fitted.iter_recommend_all(n=15, block=64))
    assert len(frames) == -(-len(fitted.user_ids) // 64)
    recs = pd.concat(frames)
    assert set(recs["user_id"]) == set(fitted.user_ids.tolist())
    assert not _pairs(recs) & rated


def test_exclude_list_for_every_path(fitted, rated):
    users = fitted.user_ids[:30]
    top = fitted.recommend(users, n=5)
    banned = sorted(set(top["anime_id"].astype(int)))
    ids_to_ban = banned + [987654321]  # an id not in the catalogue is ignored
    for recs in (fitted.recommend(users, n=10, exclude=ids_to_ban),
                 pd.concat(fitted.iter_recommend_all(n=10, exclude=ids_to_ban)),
                 fitted.recommend_for_genres({"Action": 9}, n=10, exclude=ids_to_ban)):
        assert not set(recs["anime_id"].astype(int)) & set(banned)
    assert not _pairs(fitted.recommend(users, n=10, exclude=ids_to_ban)) & rated
    ids, _ = fitted.recommend_arrays(users, n=10, exclude=ids_to_ban)
    assert not set(ids.ravel().tolist()) & set(banned)
    cold = fitted.recommend_for_genres({"Action": 9}, n=10)
    cold_banned = fitted.recommend_for_genres({"Action": 9}, n=10,
                                              exclude=cold["anime_id"][:3].tolist())
    assert list(cold_banned["anime_id"][:7]) == list(cold["anime_id"][3:])


def test_saved_and_loaded_model_keeps_the_exclusions(fitted, rated, tmp_path):
    fitted.save(tmp_path / "m.anirec")
    loaded = Recommender.load(tmp_path / "m.anirec")
    recs = loaded.recommend(loaded.user_ids, n=20)
    assert not _pairs(recs) & rated
    pd.testing.assert_frame_equal(recs, fitted.recommend(fitted.user_ids, n=20))


def test_command_line_paths(files, rated, tmp_path, capsys):
    folder, anime, scores = files
    model = tmp_path / "m.anirec"
    assert main(["train", "--anime", str(anime), "--scores", str(scores), "--out", str(model),
                 "--layers", "16", "--epochs", "2", "--test", "0.3", "--quiet"]) == 0
    capsys.readouterr()
    rec = Recommender.load(model)
    users = [str(u) for u in rec.user_ids[:25]]
    assert main(["recommend", "--model", str(model), "--user-id", *users, "--n", "20",
                 "--out", str(tmp_path / "some.csv")]) == 0
    some = pd.read_csv(tmp_path / "some.csv")
    assert len(some) == 25 * 20 and not _pairs(some) & rated
    assert main(["recommend", "--model", str(model), "--all-users", "--n", "20",
                 "--out", str(tmp_path / "all.csv")]) == 0
    everyone = pd.read_csv(tmp_path / "all.csv")
    assert everyone["user_id"].nunique() == len(rec.user_ids)
    assert not _pairs(everyone) & rated
    banned = everyone["anime_id"].value_counts().index[:3].astype(int).tolist()
    assert main(["recommend", "--model", str(model), "--all-users", "--n", "20",
                 "--exclude", *map(str, banned), "--out", str(tmp_path / "ex.csv")]) == 0
    assert not set(pd.read_csv(tmp_path / "ex.csv")["anime_id"]) & set(banned)
    assert main(["recommend", "--model", str(model), "--genres", "Action=9",
                 "--exclude", *map(str, banned), "--out", str(tmp_path / "g.csv")]) == 0
    assert not set(pd.read_csv(tmp_path / "g.csv")["anime_id"]) & set(banned)


def test_columns_put_what_ranks_first(fitted):
    recs = fitted.recommend(fitted.user_ids[:3], n=10)
    assert list(recs.columns) == ["user_id", "rank", "score", "predicted_rating", "anime_id",
                                  "name", "genres"]
    for _, group in recs.groupby("user_id"):
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
    cold = fitted.recommend_for_genres({"Drama": 8})
    assert list(cold.columns) == ["rank", "score", "predicted_rating", "anime_id", "name",
                                  "genres"]
