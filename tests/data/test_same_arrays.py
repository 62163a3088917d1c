"""The data layer gives exactly the arrays it gave before its reader was rewritten.

Generated files with odd rows appended (repeated pairs, unknown and excluded anime, ratings out
of range or not integers, quoted names, users and anime below the minimum counts) are loaded
and split; digests of the arrays are compared with those the code before the rewrite gave
(commit da63dcc). The catalogue's Bayesian rating is not in them: it now takes the loaded
ratings out of the catalogue's Score, a change of formula, not of reading (the digests were
recomputed without it on bdaba30, which gave da63dcc's arrays).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from anirec.backend import use_backend
from anirec.data import generate_synthetic, load_mal, split_ratings
from anirec.data.synthetic import write_tables

# {(variant, min_user, min_item): digest} from the code before the rewrite.
EXPECTED = {
    ("compiled", 1, 1): "996b5acae5d6253f9becd9f05b28179ab05767833ee1419d874aea752befdf89",
    ("compiled", 3, 2): "9c2aa06c420c0789e73634467d0653675774fad7cadcaf6648bb6e637c6e1fb9",
    ("pyarrow", 1, 1): "4779ec038004ca1e40ecd76bb16c34ba3b0054f1b80b6be6e6d673e02e195806",
    ("pyarrow", 3, 2): "a35ac752ddba9bab1239b2e3bdf1d49d448c3bf89fa4b43464aca2b01448ae46",
}


def odd_files(tmp_path, variant: str):
    data = generate_synthetic(n_users=400, n_anime=300, n_ratings=15_000, seed=5)
    anime, scores = write_tables(data, tmp_path)
    excluded = int(data.anime.loc[data.anime["Genres"].str.contains("Hentai"), "anime_id"].iloc[0])
    known = data.anime["anime_id"].tolist()
    first_user = int(data.scores["user_id"].iloc[0])
    rows = [
        f"{first_user},x,{known[0]},t,3",          # repeated pair: this last row is kept
        f"{first_user},x,{known[0]},t,9",
        f"{first_user},x,999999,Nowhere,5",        # unknown anime
        f'{first_user},"a, b",{excluded},"x, ""y""",8',   # excluded anime, quoted fields
        f"{first_user},x,{known[1]},t,0",          # ratings out of range
        f"{first_user},x,{known[2]},t,11",
        "123456789,lonely,%d,t,7" % known[3],      # a user with one rating
        "5,zero,%d,t,10" % known[4],
    ]
    if variant == "pyarrow":
        rows.append(f"5,x,{known[5]},t,10.")      # the compiled reader declines: pyarrow reads
        rows.append(f"5,x,{known[6]},t,7.5")      # not an integer rating: dropped, counted
    with open(scores, "a", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    return anime, scores


def digest(anime, scores, min_user: int, min_item: int) -> str:
    data = load_mal(anime, scores, min_user_ratings=min_user, min_item_ratings=min_item)
    r = data.ratings
    split = split_ratings(r, seed=3)
    h = hashlib.sha256()
    indptr = np.zeros(r.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(r.users, minlength=r.n_users), out=indptr[1:])
    arrays = [r.user_ids, r.users, r.items, r.ratings, indptr, data.catalogue.anime_ids,
              data.catalogue.genre_matrix]
    for part in (split.train, split.valid, split.test):
        arrays += [part.users, part.items, part.ratings]
    for a in arrays:
        h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    summary = data.summary.as_dict()
    # Names, and what the summary recorded since, are not arrays of the rewrite.
    for key in ("anime_file", "scores_file", "anime_disagreeing", "rating_scale"):
        summary.pop(key)
    h.update(repr(sorted(summary.items())).encode())
    return h.hexdigest()


CASES = [(v, mu, mi) for v in ("compiled", "pyarrow") for mu, mi in ((1, 1), (3, 2))]


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("variant,min_user,min_item", CASES)
def test_same_arrays_as_before_the_rewrite(tmp_path, backend, variant, min_user, min_item):
    anime, scores = odd_files(tmp_path, variant)
    with use_backend(backend):
        got = digest(anime, scores, min_user, min_item)
    assert got == EXPECTED[(variant, min_user, min_item)]


def test_row_pointer_from_load(tmp_path):
    data = load_mal(*odd_files(tmp_path, "compiled"), min_user_ratings=2)
    r = data.ratings
    assert r.indptr.dtype == np.int64 and r.indptr.shape == (r.n_users + 1,)
    for u in (0, 1, r.n_users // 2, r.n_users - 1):
        assert np.all(r.users[r.indptr[u]:r.indptr[u + 1]] == u)
    assert r.indptr[-1] == r.n_ratings
    split = split_ratings(r, seed=1)
    for part in (split.train, split.valid, split.test):
        assert part.indptr[-1] == len(part)
        np.testing.assert_array_equal(np.diff(part.indptr),
                                      np.bincount(part.users, minlength=r.n_users))
    np.testing.assert_array_equal(split.train.indptr + split.valid.indptr + split.test.indptr,
                                  r.indptr)
