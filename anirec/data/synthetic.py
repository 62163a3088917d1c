"""A seeded generator of MyAnimeList-2023-shaped data from a planted model of tastes.

The real Kaggle "MyAnimeList 2023" files are large downloads; this module writes both files,
``anime-dataset-2023.csv`` and ``users-score-2023.csv``, in exactly their schema (every
column, ``UNKNOWN`` where the real data has it, titles and user names with commas, quotes and
non-ASCII characters) from a generative model whose parameters are returned as ground truth.

The planted model
-----------------
* Anime ``i`` carries each MAL genre ``g`` independently with a probability close to its
  frequency in the real catalogue (a share of anime has no genre at all: ``UNKNOWN``). It has a
  Zipf-like popularity ``pop_i ∝ rank_i^(-popularity_exponent)`` and a latent quality ``q_i``
  that is mildly correlated with popularity.
* User ``u`` has a bias ``b_u``, one to three favourite genres with positive weights and, for
  about half of the users, one disliked genre with a negative weight: the taste vector
  ``t_u`` (length G, mostly zeros).
* Which anime a user rates depends on popularity *and* taste: each rating of ``u`` picks, with
  probability ``taste_share``, one of ``u``'s favourite genres uniformly and then an anime of
  that genre with probability ∝ ``pop_i``; otherwise an anime from the whole catalogue with
  probability ∝ ``pop_i``. Draws that hit a disliked genre are kept with probability
  ``dislike_keep`` only. Pairs are distinct.
* The rating is ``clip(round(mu + b_u + q_i + t_u · x_i + e), 1, 10)`` with
  ``e ~ N(0, noise**2)`` and ``x_i`` the anime's 0/1 genre vector.

:func:`generate_synthetic` returns the two tables and the truth; :func:`write_synthetic`
writes the CSV files; :func:`load_demo` returns what :func:`anirec.data.load_mal` makes of them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anirec._files import atomic_write, check_target

__all__ = [
    "ANIME_COLUMNS",
    "SCORE_COLUMNS",
    "MAL_GENRES",
    "SyntheticData",
    "SyntheticTruth",
    "generate_synthetic",
    "write_synthetic",
    "load_demo",
    "ANIME_FILENAME",
    "SCORES_FILENAME",
]

ANIME_FILENAME = "anime-dataset-2023.csv"
SCORES_FILENAME = "users-score-2023.csv"

#: Columns of ``anime-dataset-2023.csv``, in file order.
ANIME_COLUMNS = (
    "anime_id", "Name", "English name", "Other name", "Score", "Genres", "Synopsis", "Type",
    "Episodes", "Aired", "Premiered", "Status", "Producers", "Licensors", "Studios", "Source",
    "Duration", "Rating", "Rank", "Popularity", "Favorites", "Scored By", "Members",
    "Image URL",
)
#: Columns of ``users-score-2023.csv``, in file order.
SCORE_COLUMNS = ("user_id", "Username", "anime_id", "Anime Title", "rating")

# Approximate number of anime carrying each genre among the 24,905 of the real 2023 catalogue
# (read off the data set's genre counts, rounded); about a fifth of the anime have no genre.
_GENRE_COUNTS = {
    "Action": 5000, "Adventure": 3000, "Avant Garde": 900, "Award Winning": 250,
    "Boys Love": 200, "Comedy": 7200, "Drama": 2900, "Ecchi": 800, "Erotica": 80,
    "Fantasy": 3900, "Girls Love": 150, "Gourmet": 150, "Hentai": 1350, "Horror": 550,
    "Mystery": 900, "Romance": 2000, "Sci-Fi": 3000, "Slice of Life": 1900, "Sports": 800,
    "Supernatural": 1700, "Suspense": 350,
}
_REAL_N_ANIME = 24905
_UNKNOWN_GENRE_SHARE = 0.08

#: The 21 MAL genre names of the 2023 data set, sorted.
MAL_GENRES: tuple[str, ...] = tuple(sorted(_GENRE_COUNTS))

_TYPES = np.array(["TV", "Movie", "OVA", "ONA", "Special", "Music", "UNKNOWN"], dtype=object)
_TYPE_P = np.array([0.31, 0.17, 0.16, 0.15, 0.12, 0.08, 0.01])
_MONTHS = np.array(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                    "Nov", "Dec"], dtype=object)
_SEASONS = np.array(["winter", "spring", "summer", "fall"], dtype=object)
_SYLLABLES = np.array(["ka", "to", "mi", "ra", "shi", "no", "ha", "ru", "ken", "sora", "yume",
                       "tsu", "ki", "gin", "hoshi", "kuro", "ai", "sei", "ryu", "mon"],
                      dtype=object)
_KANA = np.array(list("アイウエオカキクケコサシスセソタチツテトナニヌネノマミムメモラリルレロ"),
                 dtype=object)
_STUDIOS = np.array(["Sunrise", "Madhouse", "Toei Animation", "Bones", "Production I.G",
                     "Kyoto Animation", "A-1 Pictures", "J.C.Staff", "MAPPA", "Shaft"],
                    dtype=object)
_PRODUCERS = np.array(["Aniplex", "Dentsu", "Bandai Visual", "TV Tokyo", "Pony Canyon",
                       "Lantis", "Kadokawa", "Shueisha", "Fuji TV", "Movic"], dtype=object)
_LICENSORS = np.array(["Funimation", "Sentai Filmworks", "VIZ Media", "Aniplex of America",
                       "Crunchyroll"], dtype=object)
_SOURCES = np.array(["Manga", "Original", "Light novel", "Visual novel", "Game", "Novel",
                     "Web manga", "4-koma manga", "Unknown"], dtype=object)
_RATINGS = np.array(["G - All Ages", "PG - Children", "PG-13 - Teens 13 or older",
                     "R - 17+ (violence & profanity)", "R+ - Mild Nudity", "Rx - Hentai"],
                    dtype=object)
_NAME_WORDS = np.array(["takeshi", "yuki", "otaku", "neko", "anime_fan", "kaze", "haru",
                        "shadow", "hikari", "ren"], dtype=object)
_ODD_NAMES = np.array(['Tom, "the cat"', "Jürgen", "Zoë_91", "ゆきこ", 'a,b,"c"', "Ærin",
                       "O'Brien", "naïve, reader"], dtype=object)


@dataclass
class SyntheticTruth:
    """The planted parameters behind a synthetic data set.

    Attributes
    ----------
    genres : tuple of str
        All genre names of the model (the 21 MAL genres, sorted); columns of ``taste`` and
        ``item_genres``.
    user_ids : ndarray of int64
        MAL-style user ids; row ``k`` of the per-user arrays belongs to ``user_ids[k]``.
    anime_ids : ndarray of int64
        MAL-style anime ids; row ``k`` of the per-anime arrays belongs to ``anime_ids[k]``.
    taste : ndarray of float64, shape (n_users, G)
        The sparse taste vectors ``t_u``.
    favourite_genres, disliked_genres : list of tuple of str
        Per user, the genres with a positive (negative) weight.
    user_bias : ndarray of float64
        ``b_u``.
    item_quality : ndarray of float64
        ``q_i``.
    item_genres : ndarray of float64, shape (n_anime, G)
        ``x_i``, 0/1.
    popularity : ndarray of float64
        ``pop_i``, summing to 1.
    mu, noise, taste_share, dislike_keep : float
        Global mean, noise standard deviation, share of taste-driven draws, keep probability of
        draws that hit a disliked genre.
    """

    genres: tuple[str, ...]
    user_ids: np.ndarray
    anime_ids: np.ndarray
    taste: np.ndarray
    favourite_genres: list[tuple[str, ...]]
    disliked_genres: list[tuple[str, ...]]
    user_bias: np.ndarray
    item_quality: np.ndarray
    item_genres: np.ndarray
    popularity: np.ndarray
    mu: float
    noise: float
    taste_share: float
    dislike_keep: float

    def expected_rating(self, user_ids: np.ndarray, anime_ids: np.ndarray) -> np.ndarray:
        """Noise-free planted score ``mu + b_u + q_i + t_u · x_i`` (before rounding/clipping).

        Parameters
        ----------
        user_ids, anime_ids : array_like of int
            MAL ids, broadcast together.

        Returns
        -------
        ndarray of float64
            The broadcast shape of the ids.

        Raises
        ------
        UnknownIdError
            An id the data set does not have (or that is no integer).
        ValueError
            Ids whose shapes do not broadcast together.
        """
        from ._ids import lookup_ids
        from .types import index_of_sorted

        users, anime = lookup_ids(user_ids, "user id"), lookup_ids(anime_ids, "anime id")
        try:
            users, anime = np.broadcast_arrays(users, anime)
        except ValueError:
            raise ValueError(f"user_ids and anime_ids must broadcast together, got shapes "
                             f"{users.shape} and {anime.shape}") from None
        u = index_of_sorted(self.user_ids, users.ravel(), "user id", "the synthetic data")
        i = index_of_sorted(self.anime_ids, anime.ravel(), "anime id", "the synthetic data")
        affinity = np.einsum("ij,ij->i", self.taste[u], self.item_genres[i])
        expected = self.mu + self.user_bias[u] + self.item_quality[i] + affinity
        return expected.reshape(users.shape)[()]  # a number for one pair


@dataclass
class SyntheticData:
    """Output of :func:`generate_synthetic`.

    Attributes
    ----------
    anime : pandas.DataFrame
        The rows of ``anime-dataset-2023.csv``, all columns as strings or numbers exactly as
        they are written (``UNKNOWN`` included).
    scores : pandas.DataFrame
        The rows of ``users-score-2023.csv`` (``Username`` and ``Anime Title`` categorical to
        save memory at full size).
    truth : SyntheticTruth
        The planted model.
    """

    anime: pd.DataFrame
    scores: pd.DataFrame
    truth: SyntheticTruth


def _check_positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _sparse_ids(rng: np.random.Generator, n: int, spread: float, start: int = 1) -> np.ndarray:
    """``n`` sorted distinct ids drawn from ``start .. start + spread*n`` (MAL ids have gaps)."""
    high = max(int(spread * n), n)
    return np.sort(rng.choice(high, size=n, replace=False)).astype(np.int64) + start


def _titles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Romanised titles; some with commas, quotes, colons and non-ASCII, as real ones."""
    k = rng.integers(2, 5, size=n)
    syl = rng.choice(_SYLLABLES, size=(n, 4))
    base = ["".join(row[:m]).capitalize() for row, m in zip(syl, k)]
    kind = rng.random(n)
    second = rng.choice(_SYLLABLES, size=n)
    out = np.empty(n, dtype=object)
    for j in range(n):
        b, s, x = base[j], str(second[j]).capitalize(), kind[j]
        if x < 0.08:
            out[j] = f"{b}, {s} no Monogatari"
        elif x < 0.13:
            out[j] = f'{b} "{s}"'
        elif x < 0.20:
            out[j] = f"{b}: {s} Hen"
        elif x < 0.23:
            out[j] = f"{b} – Zoë's {s}"
        else:
            out[j] = f"{b} {s}"
    # Distinct names: make duplicates unique by a season suffix, as MAL does.
    seen: dict[str, int] = {}
    for j in range(n):
        c = seen.get(out[j], 0)
        seen[out[j]] = c + 1
        if c:
            out[j] = f"{out[j]} Season {c + 1}"
    return out


def _draw_activity(rng: np.random.Generator, n_users: int, n_ratings: int, cap: int) -> np.ndarray:
    """Ratings per user: lognormal activity scaled to sum to ``n_ratings``, within 1..cap."""
    if n_ratings > n_users * cap:
        raise ValueError(f"n_ratings={n_ratings} is more than n_users * {cap} distinct pairs "
                         "this generator can place; lower n_ratings or raise n_anime")
    raw = rng.lognormal(0.0, 1.0, size=n_users)
    n = np.clip(np.floor(raw / raw.sum() * n_ratings), 1, cap).astype(np.int64)
    for _ in range(100):
        diff = n_ratings - int(n.sum())
        if diff == 0:
            break
        if diff > 0:
            room = np.flatnonzero(n < cap)
            picked = rng.choice(room, size=diff, replace=True)
            np.add.at(n, picked, 1)
        else:
            room = np.flatnonzero(n > 1)
            picked = rng.choice(room, size=-diff, replace=True)
            np.subtract.at(n, picked, 1)
        np.clip(n, 1, cap, out=n)
    return n


def _sample_pairs(rng: np.random.Generator, n_per_user: np.ndarray, fav_idx: np.ndarray,
                  n_fav: np.ndarray, dislike_idx: np.ndarray, genre_items: list[np.ndarray],
                  genre_cdfs: list[np.ndarray], cdf_all: np.ndarray, item_genres: np.ndarray,
                  taste_share: float, dislike_keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs, ``n_per_user[u]`` per user, by rounds of draws + dedupe."""
    n_users = n_per_user.shape[0]
    n_items = item_genres.shape[0]
    kept_u = np.empty(0, dtype=np.int64)
    kept_i = np.empty(0, dtype=np.int64)
    need = n_per_user.copy()
    for round_ in range(30):
        active = np.flatnonzero(need > 0)
        if active.size == 0:
            break
        factor = 1.3 if round_ == 0 else 2.0
        n_draw = np.ceil(need[active] * factor).astype(np.int64) + 2
        users = np.repeat(active, n_draw)
        m = users.shape[0]
        items = np.searchsorted(cdf_all, rng.random(m) * cdf_all[-1], side="right")
        by_taste = rng.random(m) < taste_share
        which = (rng.random(m) * n_fav[users]).astype(np.int64)
        genre = fav_idx[users, which]
        by_taste &= genre >= 0
        for g, (its, cdf) in enumerate(zip(genre_items, genre_cdfs)):
            sel = np.flatnonzero(by_taste & (genre == g))
            if sel.size and its.size:
                pos = np.searchsorted(cdf, rng.random(sel.size) * cdf[-1], side="right")
                items[sel] = its[np.minimum(pos, its.size - 1)]
        items = np.minimum(items, n_items - 1)
        dis = dislike_idx[users]
        hit = (dis >= 0) & (item_genres[items, np.maximum(dis, 0)] > 0)
        keep = ~hit | (rng.random(m) < dislike_keep)
        users, items = users[keep], items[keep]
        # Merge with what is kept so far; first occurrence wins, so earlier rounds stay.
        all_u = np.concatenate([kept_u, users])
        all_i = np.concatenate([kept_i, items])
        key = all_u * n_items + all_i
        _, first = np.unique(key, return_index=True)
        first.sort()
        all_u, all_i = all_u[first], all_i[first]
        # Keep at most n_per_user[u] pairs per user, in draw order.
        order = np.argsort(all_u, kind="stable")
        all_u, all_i = all_u[order], all_i[order]
        starts = np.searchsorted(all_u, np.arange(n_users))
        rank = np.arange(all_u.shape[0]) - starts[all_u]
        ok = rank < n_per_user[all_u]
        kept_u, kept_i = all_u[ok], all_i[ok]
        need = n_per_user - np.bincount(kept_u, minlength=n_users)
    return kept_u, kept_i


def generate_synthetic(n_users: int = 2000, n_anime: int = 1500, n_ratings: int = 150_000, *,
                       seed: int = 0, noise: float = 1.0, taste_share: float = 0.5,
                       dislike_keep: float = 0.25, popularity_exponent: float = 0.9,
                       mu: float = 6.0) -> SyntheticData:
    """Generate a MyAnimeList-2023-shaped data set from a planted model of tastes.

    See the module docstring for the model. Everything is vectorised: the default (2,000
    users, 1,500 anime, 150,000 ratings) takes well under a second or two, the full MAL size
    (270,000 users, 25,000 anime, 24 million ratings) a minute or two.

    Parameters
    ----------
    n_users, n_anime : int
        Number of users and anime (anime of every genre, excluded genres included).
    n_ratings : int
        Target number of ratings; the result has exactly this many unless a heavy user's
        distribution runs out of distinct anime (then slightly fewer).
    seed : int
        Seed of the generator; the same arguments give the same data.
    noise : float
        Standard deviation of the rating noise ``e``.
    taste_share : float
        Probability that a rating's anime is drawn from one of the user's favourite genres.
    dislike_keep : float
        Probability of keeping a draw that carries the user's disliked genre.
    popularity_exponent : float
        Zipf exponent of the popularity ``pop_i ∝ rank^(-exponent)``.
    mu : float
        Global offset of the ratings.

    Returns
    -------
    SyntheticData
        ``anime`` and ``scores`` tables in the exact 2023 CSV schema, and the ``truth``.

    Raises
    ------
    ValueError
        On a non-positive size, a probability outside [0, 1] or a negative noise.
    """
    n_users = _check_positive("n_users", n_users)
    n_anime = _check_positive("n_anime", n_anime)
    n_ratings = _check_positive("n_ratings", n_ratings)
    for name, p in (("taste_share", taste_share), ("dislike_keep", dislike_keep)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    genres = MAL_GENRES
    n_genres = len(genres)

    # ---- anime -------------------------------------------------------------------------
    anime_ids = _sparse_ids(rng, n_anime, spread=2.2)
    p_genre = np.array([_GENRE_COUNTS[g] for g in genres]) / (_REAL_N_ANIME * (1 - _UNKNOWN_GENRE_SHARE))
    item_genres = (rng.random((n_anime, n_genres)) < p_genre).astype(np.float64)
    # Adult genres rarely mix with the rest: an anime drawn "Hentai" keeps at most one other.
    hentai = genres.index("Hentai")
    is_h = item_genres[:, hentai] > 0
    item_genres[is_h] *= rng.random((int(is_h.sum()), n_genres)) < 0.15
    item_genres[is_h, hentai] = 1.0
    no_genre = rng.random(n_anime) < _UNKNOWN_GENRE_SHARE
    item_genres[no_genre] = 0.0

    rank = rng.permutation(n_anime) + 1
    popularity = rank.astype(np.float64) ** -popularity_exponent
    popularity /= popularity.sum()
    log_pop = np.log(popularity)
    item_quality = 0.3 * (log_pop - log_pop.mean()) / log_pop.std() + rng.normal(0, 0.6, n_anime)

    # ---- users -------------------------------------------------------------------------
    user_ids = _sparse_ids(rng, n_users, spread=4.5)
    user_bias = rng.normal(0.0, 0.7, n_users)
    genre_p = np.array([_GENRE_COUNTS[g] for g in genres], dtype=np.float64)
    genre_p /= genre_p.sum()
    n_fav = rng.choice([1, 2, 3], size=n_users, p=[0.3, 0.45, 0.25])
    # Favourites: distinct genres drawn by frequency (Gumbel top-k on log-probabilities).
    gumbel = np.log(genre_p) - np.log(-np.log(rng.random((n_users, n_genres))))
    ranked = np.argsort(-gumbel, axis=1)
    fav_idx = np.where(np.arange(3) < n_fav[:, None], ranked[:, :3], -1)
    has_dislike = rng.random(n_users) < 0.5
    dislike_idx = np.where(has_dislike,
                           ranked[np.arange(n_users), -1 - rng.integers(0, 5, n_users)], -1)
    taste = np.zeros((n_users, n_genres))
    rows = np.repeat(np.arange(n_users), 3)
    cols = fav_idx.ravel()
    ok = cols >= 0
    taste[rows[ok], cols[ok]] = rng.uniform(1.0, 2.0, int(ok.sum()))
    du = np.flatnonzero(has_dislike)
    taste[du, dislike_idx[du]] = -rng.uniform(1.5, 2.5, du.size)

    # ---- which anime each user rates -------------------------------------------------
    cap = max(1, n_anime // 4)
    n_per_user = _draw_activity(rng, n_users, n_ratings, cap)
    cdf_all = np.cumsum(popularity)
    genre_items = [np.flatnonzero(item_genres[:, g]) for g in range(n_genres)]
    genre_cdfs = [np.cumsum(popularity[its]) for its in genre_items]
    # A favourite genre that no anime carries falls back to the whole catalogue.
    for g, its in enumerate(genre_items):
        if its.size == 0:
            fav_idx[fav_idx == g] = -1
    n_fav_eff = np.maximum((fav_idx >= 0).sum(axis=1), 1)
    fav_sorted = np.sort(np.where(fav_idx >= 0, fav_idx, n_genres), axis=1)
    fav_sorted[fav_sorted == n_genres] = -1
    u_idx, i_idx = _sample_pairs(rng, n_per_user, fav_sorted, n_fav_eff, dislike_idx,
                                 genre_items, genre_cdfs, cdf_all, item_genres, taste_share,
                                 dislike_keep)

    # ---- ratings -------------------------------------------------------------------------
    n = u_idx.shape[0]
    rating = np.empty(n, dtype=np.int8)
    step = 1 << 21
    for s in range(0, n, step):
        uu, ii = u_idx[s:s + step], i_idx[s:s + step]
        aff = np.einsum("ij,ij->i", taste[uu], item_genres[ii])
        val = mu + user_bias[uu] + item_quality[ii] + aff + rng.normal(0.0, noise, uu.size)
        rating[s:s + step] = np.clip(np.rint(val), 1, 10).astype(np.int8)

    # ---- tables ---------------------------------------------------------------------------
    names = _titles(rng, n_anime)
    anime = _anime_table(rng, anime_ids, names, genres, item_genres, popularity, rank,
                         item_quality, mu, user_bias.mean(), rating, i_idx, n_anime)
    usernames = _usernames(rng, user_ids)
    scores = pd.DataFrame({
        "user_id": user_ids[u_idx],
        "Username": pd.Categorical.from_codes(u_idx, categories=pd.Index(usernames, dtype=object)),
        "anime_id": anime_ids[i_idx],
        "Anime Title": pd.Categorical.from_codes(i_idx, categories=pd.Index(names, dtype=object)),
        "rating": rating,
    })
    fav_names = [tuple(genres[g] for g in row if g >= 0) for row in fav_idx]
    dis_names = [(genres[d],) if d >= 0 else () for d in dislike_idx]
    truth = SyntheticTruth(genres=genres, user_ids=user_ids, anime_ids=anime_ids, taste=taste,
                           favourite_genres=fav_names, disliked_genres=dis_names,
                           user_bias=user_bias, item_quality=item_quality,
                           item_genres=item_genres, popularity=popularity, mu=float(mu),
                           noise=float(noise), taste_share=float(taste_share),
                           dislike_keep=float(dislike_keep))
    return SyntheticData(anime=anime, scores=scores, truth=truth)


def _usernames(rng: np.random.Generator, user_ids: np.ndarray) -> np.ndarray:
    n = user_ids.shape[0]
    words = rng.choice(_NAME_WORDS, size=n)
    odd = rng.random(n) < 0.03
    odd_pick = rng.choice(_ODD_NAMES, size=n)
    out = np.array([f"{w}{uid}" for w, uid in zip(words, user_ids)], dtype=object)
    out[odd] = np.array([f"{o}{uid}" for o, uid in zip(odd_pick[odd], user_ids[odd])],
                        dtype=object)
    return out


def _fmt_float(x: np.ndarray, known: np.ndarray, digits: int = 1) -> np.ndarray:
    out = np.full(x.shape[0], "UNKNOWN", dtype=object)
    out[known] = [f"{v:.{digits}f}" for v in x[known]]
    return out


def _join(rng: np.random.Generator, vocab: np.ndarray, n: int, p_unknown: float) -> np.ndarray:
    k = rng.integers(1, 4, size=n)
    picks = rng.choice(vocab, size=(n, 3))
    out = np.array([", ".join(dict.fromkeys(row[:m])) for row, m in zip(picks, k)], dtype=object)
    out[rng.random(n) < p_unknown] = "UNKNOWN"
    return out


def _anime_table(rng: np.random.Generator, anime_ids: np.ndarray, names: np.ndarray,
                 genres: tuple[str, ...], item_genres: np.ndarray, popularity: np.ndarray,
                 pop_rank: np.ndarray, quality: np.ndarray, mu: float, mean_bias: float,
                 rating: np.ndarray, i_idx: np.ndarray, n_anime: int) -> pd.DataFrame:
    genre_names = np.array(genres, dtype=object)
    genre_str = np.array([", ".join(genre_names[row > 0]) or "UNKNOWN" for row in item_genres],
                         dtype=object)
    typ = rng.choice(_TYPES, size=n_anime, p=_TYPE_P)
    ep_by_type = {"TV": [12, 13, 24, 25, 26, 39, 50, 51], "Movie": [1], "OVA": [1, 2, 3, 4, 6],
                  "ONA": [1, 5, 10, 12, 20], "Special": [1, 2, 3], "Music": [1], "UNKNOWN": [1]}
    episodes = np.array([float(rng.choice(ep_by_type[t])) for t in typ])
    year = np.clip(2023 - np.floor(rng.exponential(12.0, n_anime)), 1960, 2023).astype(int)
    month = rng.integers(0, 12, n_anime)
    day = rng.integers(1, 29, n_anime)
    status_r = rng.random(n_anime)
    status = np.where(status_r < 0.03, "Not yet aired",
                      np.where(status_r < 0.08, "Currently Airing", "Finished Airing")).astype(object)
    end_year = year + (episodes > 13).astype(int)
    aired = np.empty(n_anime, dtype=object)
    for j in range(n_anime):
        start = f"{_MONTHS[month[j]]} {day[j]}, {year[j]}"
        if status[j] == "Not yet aired":
            aired[j] = "UNKNOWN" if status_r[j] < 0.015 else f"{year[j]} to ?"
        elif status[j] == "Currently Airing":
            aired[j] = f"{start} to ?"
        elif episodes[j] <= 1:
            aired[j] = start
        else:
            aired[j] = f"{start} to {_MONTHS[(month[j] + 3) % 12]} {day[j]}, {end_year[j]}"
    ep_known = status != "Not yet aired"
    ep_known &= ~((status == "Currently Airing") & (rng.random(n_anime) < 0.7))
    premiered = np.where(typ == "TV", [f"{_SEASONS[m // 3]} {y}" for m, y in zip(month, year)],
                         "UNKNOWN").astype(object)

    # Members, Scored By and Score count the generated ratings, as MyAnimeList's count every
    # rating of users-score-2023.csv, on top of a much larger population outside the file.
    members_outside = np.maximum(np.rint(popularity * 5.0e7 * (0.5 + rng.random(n_anime))), 1)
    scored_outside = np.rint(members_outside * rng.uniform(0.3, 0.8, n_anime))
    rated = np.bincount(i_idx, minlength=n_anime)
    members = (members_outside + rated).astype(np.int64)
    scored_by = scored_outside + rated
    # About a third of the real catalogue has no Score: the least known anime.
    score_known = (members >= np.quantile(members, 0.33)) & (status != "Not yet aired")
    # Outside the file the mean rating is the planted quality plus the average user, softened
    # towards the mean like a real average of clipped ratings.
    outside_mean = np.clip(mu + mean_bias + 0.9 * quality + rng.normal(0, 0.1, n_anime), 1.85, 9.2)
    rating_sum = np.bincount(i_idx, weights=rating.astype(np.float64), minlength=n_anime)
    score = (outside_mean * scored_outside + rating_sum) / scored_by
    favorites = np.rint(members * rng.uniform(0.0, 0.02, n_anime)).astype(np.int64)
    order_score = np.argsort(-np.where(score_known, score, -np.inf), kind="stable")
    rank_score = np.empty(n_anime)
    rank_score[order_score] = np.arange(1, n_anime + 1)
    rank_known = score_known & (genre_str != "Hentai") & (rng.random(n_anime) > 0.02)
    popularity_rank = np.empty(n_anime, dtype=np.int64)
    popularity_rank[np.argsort(-members, kind="stable")] = np.arange(1, n_anime + 1)

    english = names.copy()
    english[rng.random(n_anime) < 0.55] = "UNKNOWN"
    other = np.array(["".join(rng.choice(_KANA, size=int(k))) for k in rng.integers(3, 9, n_anime)],
                     dtype=object)
    other[rng.random(n_anime) < 0.03] = "UNKNOWN"
    synopsis = np.array([f"{nm} follows a \"hero\", a rival, and {int(k)} friends.\n\n"
                         f"(Source: {src})" for nm, k, src in
                         zip(names, rng.integers(2, 9, n_anime), rng.choice(["ANN", "MAL Rewrite"], n_anime))],
                        dtype=object)
    synopsis[rng.random(n_anime) < 0.05] = "No description available for this anime."
    duration = np.where(typ == "Movie", "1 hr 45 min", "24 min per ep").astype(object)
    frame = pd.DataFrame({
        "anime_id": anime_ids,
        "Name": names,
        "English name": english,
        "Other name": other,
        "Score": _fmt_float(score, score_known, 2),
        "Genres": genre_str,
        "Synopsis": synopsis,
        "Type": typ,
        "Episodes": _fmt_float(episodes, ep_known, 1),
        "Aired": aired,
        "Premiered": premiered,
        "Status": status,
        "Producers": _join(rng, _PRODUCERS, n_anime, 0.2),
        "Licensors": _join(rng, _LICENSORS, n_anime, 0.7),
        "Studios": _join(rng, _STUDIOS, n_anime, 0.1),
        "Source": rng.choice(_SOURCES, size=n_anime),
        "Duration": duration,
        "Rating": np.where(genre_str == "Hentai", "Rx - Hentai",
                           rng.choice(_RATINGS[:5], size=n_anime)).astype(object),
        "Rank": _fmt_float(rank_score, rank_known, 1),
        "Popularity": popularity_rank,
        "Favorites": favorites,
        "Scored By": _fmt_float(scored_by, score_known, 1),
        "Members": members,
        "Image URL": [f"https://cdn.myanimelist.net/images/anime/{a % 13000}/{a}.jpg"
                      for a in anime_ids],
    })
    del pop_rank
    return frame


def _write_scores(scores: pd.DataFrame, fh) -> None:
    """Write the scores table to the binary stream ``fh``; chunked through pyarrow when
    available (fast at 24M rows)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a planned dependency
        scores.to_csv(fh, index=False)
        return
    user = scores["Username"]
    title = scores["Anime Title"]
    user_cats = pa.array(np.asarray(user.cat.categories, dtype=object), type=pa.string())
    title_cats = pa.array(np.asarray(title.cat.categories, dtype=object), type=pa.string())
    user_codes = user.cat.codes.to_numpy()
    title_codes = title.cat.codes.to_numpy()
    uid = scores["user_id"].to_numpy()
    aid = scores["anime_id"].to_numpy()
    rat = scores["rating"].to_numpy()
    schema = pa.schema([(c, t) for c, t in zip(SCORE_COLUMNS, (pa.int64(), pa.string(),
                                                               pa.int64(), pa.string(),
                                                               pa.int64()))])
    fh.write((",".join(SCORE_COLUMNS) + "\n").encode())
    opts = pacsv.WriteOptions(include_header=False, batch_size=1 << 16)
    with pacsv.CSVWriter(fh, schema, write_options=opts) as writer:
        step = 1 << 21
        for s in range(0, len(scores), step):
            sl = slice(s, s + step)
            batch = pa.record_batch([
                pa.array(uid[sl], type=pa.int64()),
                user_cats.take(pa.array(user_codes[sl])),
                pa.array(aid[sl], type=pa.int64()),
                title_cats.take(pa.array(title_codes[sl])),
                pa.array(rat[sl].astype(np.int64)),
            ], schema=schema)
            writer.write_batch(batch)


def write_synthetic(out_dir: str | os.PathLike[str], **kwargs: Any) -> tuple[Path, Path]:
    """Generate a synthetic data set and write it as the two MAL 2023 CSV files.

    Parameters
    ----------
    out_dir : path-like
        Directory to write into (created if missing).
    **kwargs
        Passed to :func:`generate_synthetic`.

    Returns
    -------
    (Path, Path)
        Paths of ``anime-dataset-2023.csv`` and ``users-score-2023.csv``.
    """
    data = generate_synthetic(**kwargs)
    return write_tables(data, out_dir)


def write_tables(data: SyntheticData, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write an already generated :class:`SyntheticData` as the two CSV files.

    Parameters
    ----------
    data : SyntheticData
    out_dir : path-like

    Returns
    -------
    (Path, Path)
        Paths of the anime and the scores file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    anime_path = out / ANIME_FILENAME
    scores_path = out / SCORES_FILENAME
    # Both files or neither, each replacing only a regular file: on a full disk nothing is
    # left half written.
    with atomic_write(anime_path, mode=check_target(anime_path, "the anime file"),
                      what="the anime file") as anime, \
            atomic_write(scores_path, mode=check_target(scores_path, "the scores file"),
                         what="the scores file") as scores:
        data.anime.to_csv(anime, index=False)
        anime.flush()
        _write_scores(data.scores, scores)
    return anime_path, scores_path


def load_demo(*, exclude_genres: Any = None, min_user_ratings: int = 1,
              min_item_ratings: int = 1, **kwargs: Any):
    """The small synthetic data set, loaded exactly as :func:`anirec.data.load_mal` loads it.

    The files are written to a temporary directory, loaded and deleted, so the result is the
    one ``load_mal`` gives on the written CSV files.

    Parameters
    ----------
    exclude_genres : iterable of str, optional
        Passed to ``load_mal`` (default: :data:`anirec.data.DEFAULT_EXCLUDED_GENRES`).
    min_user_ratings, min_item_ratings : int
        Passed to ``load_mal``.
    **kwargs
        Passed to :func:`generate_synthetic` (``n_users``, ``n_anime``, ``n_ratings``,
        ``seed``, ...).

    Returns
    -------
    MALData
    """
    from .mal import load_mal
    from .types import DEFAULT_EXCLUDED_GENRES

    if exclude_genres is None:
        exclude_genres = DEFAULT_EXCLUDED_GENRES
    with tempfile.TemporaryDirectory(prefix="anirec-demo-") as tmp:
        anime_path, scores_path = write_synthetic(tmp, **kwargs)
        return load_mal(anime_path, scores_path, exclude_genres=exclude_genres,
                        min_user_ratings=min_user_ratings, min_item_ratings=min_item_ratings)
