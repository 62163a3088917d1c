"""Shared test configuration: which backends to run the behavioural suites under, and a
deterministic hypothesis profile."""

import os

import numpy as np
import pytest
from hypothesis import settings

import anirec

# Property tests draw the same examples on every run, so a CI failure reproduces locally.
# ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples when hunting for new failures.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

BACKENDS = ["cython", "numpy"] if anirec.backend.cython_available() else ["numpy"]


@pytest.fixture(params=BACKENDS)
def each_backend(request):
    """Run a test once per available backend, with that backend active."""
    with anirec.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pairs_recommend_excludes(data, options: dict) -> set[tuple[int, int]]:
    """The ``(user_id, anime_id)`` pairs ``Recommender.recommend`` must leave out, computed
    from the data given to ``fit`` without looking at the fitted recommender: every rated
    pair, the test split's included (``options`` is kept for the callers' symmetry)."""
    ratings = data.ratings
    user_ids = np.asarray(ratings.user_ids)[ratings.users]
    anime_ids = np.asarray(data.catalogue.anime_ids)[ratings.items]
    return set(zip(user_ids.tolist(), anime_ids.tolist()))


def planted(seed=0, n_users=300, n_items=250, n_examples=20000, dim=6, noise=0.5):
    """Features from known latent tastes; ratings = 5.5 + 3.6 cos(taste, traits) + noise.

    Returns ``users, items, ratings, user_x, item_x``.
    """
    rng = np.random.default_rng(seed)
    tastes, traits = rng.standard_normal((n_users, dim)), rng.standard_normal((n_items, dim))
    user_x = np.hstack([tastes, rng.standard_normal((n_users, 2))])
    item_x = np.hstack([traits, rng.standard_normal((n_items, 3))])
    users = rng.integers(0, n_users, n_examples)
    items = rng.integers(0, n_items, n_examples)
    cos = np.einsum("ij,ij->i", tastes[users], traits[items])
    cos /= np.linalg.norm(tastes[users], axis=1) * np.linalg.norm(traits[items], axis=1)
    ratings = np.clip(5.5 + 3.6 * cos + rng.normal(0, noise, n_examples), 1, 10)
    return users, items, ratings, user_x, item_x


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``anirec ARGV`` in this process: ``(status, stdout, stderr)``, the option parser's
    refusals included."""
    from anirec.cli import main

    try:
        status = main([str(a) for a in argv])
    except SystemExit as done:
        status = done.code
    out, err = capsys.readouterr()
    return status, out, err
