"""Shared pieces of the fold-in tests: a generated MyAnimeList data set whose catalogue holds
the anime of the hand-written list export ``tests/data/animelist.xml`` (under their real ids
and titles, all but one), small recommenders trained on it, and a training user's own ratings.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anirec import Recommender, load_mal
from anirec.data import generate_synthetic
from anirec.data.synthetic import write_tables

EXPORT = Path(__file__).resolve().parents[1] / "data" / "animelist.xml"
#: The anime of the export the generated catalogue holds, with their titles; its Plan to
#: Watch entry (52991) is left out of the catalogue, to be reported as unknown.
KNOWN = {1: "Cowboy Bebop", 6: "Trigun", 20: "Naruto", 21: "One Piece",
         30: "Neon Genesis Evangelion", 2001: "Tengen Toppa Gurren Lagann",
         5114: "Fullmetal Alchemist: Brotherhood", 9253: "Steins;Gate",
         32281: "Kimi no Na wa."}
MISSING = 52991
#: Generated ids are moved above every id of the export.
SHIFT = 100_000
#: Anime of the catalogue without any rating.
UNRATED = 3


@pytest.fixture(scope="session")
def fan_files(tmp_path_factory):
    """``(anime csv, scores csv)``: generated data whose most rated anime, outside the
    excluded genres, carry the ids and titles of :data:`KNOWN`, and whose :data:`UNRATED`
    least rated anime have no rating."""
    data = generate_synthetic(n_users=400, n_anime=300, n_ratings=24_000, seed=3)
    anime, scores = data.anime.copy(), data.scores.copy()
    clean = ~anime["Genres"].str.contains("Hentai|Ecchi|Erotica", regex=True)
    counts = scores["anime_id"].value_counts()
    kept = [a for a in counts.index if clean[anime["anime_id"] == a].all()]
    popular, unrated = kept[:len(KNOWN)], [a + SHIFT for a in kept[-UNRATED:]]
    mapping = {a: a + SHIFT for a in anime["anime_id"]}
    mapping.update({a: known for a, known in zip(popular, KNOWN)})
    titles = dict(zip(KNOWN, KNOWN.values()))
    anime["anime_id"] = anime["anime_id"].map(mapping)
    anime["Name"] = [titles.get(a, name) for a, name in zip(anime["anime_id"], anime["Name"])]
    scores["anime_id"] = scores["anime_id"].map(mapping)
    scores["Anime Title"] = scores["anime_id"].map(dict(zip(anime["anime_id"], anime["Name"]))
                                                   ).astype("category")
    # The least rated anime lose their ratings: a catalogue holds anime nobody rated.
    scores = scores[~scores["anime_id"].isin(unrated)]
    data.anime, data.scores = anime.sort_values("anime_id"), scores
    return write_tables(data, tmp_path_factory.mktemp("fan"))


@pytest.fixture(scope="session")
def fan_data(fan_files):
    return load_mal(*fan_files)


def fit(data, **options) -> Recommender:
    """A small, short model: fold-in must hold for any trained model."""
    options = {"layers": (32, 16), "epochs": 3, "seed": 0, **options}
    return Recommender(**options).fit(data)


@pytest.fixture(scope="session")
def fan_rec(fan_data):
    """The defaults (hybrid, biases, ID embeddings), small."""
    return fit(fan_data)


@pytest.fixture(scope="session")
def fan_model(fan_rec, tmp_path_factory):
    """:func:`fan_rec` saved: its path."""
    path = tmp_path_factory.mktemp("fan-model") / "model.anirec"
    fan_rec.save(path)
    return path


def training_ratings(rec, user_id) -> dict:
    """What ``rec`` trained the user row of ``user_id`` on: their training ratings, and their
    validation ratings too when training was run again on both (``refit``)."""
    frames = rec.split_frames()
    parts = [frames["train"]]
    if rec.options["refit"] and rec.model.best_epoch_ is not None:
        parts.append(frames["validation"])
    mine = pd.concat(parts)
    mine = mine[mine["user_id"] == user_id]
    return dict(zip(mine["anime_id"].tolist(), mine["rating"].tolist()))


def heldout_ids(rec, user_id) -> np.ndarray:
    """The anime of ``user_id``'s test split."""
    test = rec.split_frames()["test"]
    return test.loc[test["user_id"] == user_id, "anime_id"].to_numpy()
