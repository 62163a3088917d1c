"""``anirec demo``: the whole job on the embedded synthetic data set.

Generates the MAL-shaped files from a planted model, loads them, trains one recommender per
training objective (rating MSE, ranking, hybrid) on the same split, prints their evaluation side
by side with the baselines, shows the hybrid model's recommendations beside each user's planted
favourite genres, a cold-start user and similar anime, and saves the model and its loss curves.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: The objectives the demo trains, in table order, with their options.
OBJECTIVES = {"rating": {}, "hybrid": {}, "ranking": {}}


def _show(title: str, frame) -> None:
    print(f"\n{title}")
    print(frame.to_string(index=False, float_format=lambda value: f"{value:.3f}",
                          max_colwidth=40))


def run_demo(out_dir="anirec-demo", *, n_users: int = 2000, n_anime: int = 1500,
             n_ratings: int = 150_000, epochs: int = 15, seed: int = 0,
             verbose: bool = True, objectives=tuple(OBJECTIVES)) -> dict:
    """Run the demo; returns the recommenders (``recommenders``, by objective; ``recommender``
    is the hybrid one, or the last), the evaluation table and the paths it wrote."""
    from anirec import Recommender, backend
    from anirec.data import generate_synthetic, load_mal
    from anirec.data.synthetic import write_tables
    from anirec.metrics import format_evaluation

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    synthetic = generate_synthetic(n_users, n_anime, n_ratings, seed=seed)
    with tempfile.TemporaryDirectory(prefix="anirec-demo-") as tmp:
        data = load_mal(*write_tables(synthetic, tmp))
    print(f"anirec demo: synthetic MyAnimeList data, {data.ratings.n_users} users, "
          f"{data.catalogue.n_items} anime, {data.ratings.n_ratings} ratings "
          f"(kernels: {backend.get_backend()})")
    print(data.summary)

    # Predictions and recommendations below never include an anime the user rated (any split).
    recommenders, rows = {}, []
    for objective in objectives:
        options = OBJECTIVES.get(objective, {})
        rec = Recommender(seed=seed, epochs=epochs, verbose=verbose, objective=objective,
                          **options).fit(data)
        recommenders[objective] = rec
        model = rec.model
        history = model.history_
        kept = history[model.best_epoch_ - 1] if model.best_epoch_ else history[-1]
        detail = ", ".join(f"validation {name} {kept[key]:.3f}" for key, name in
                           (("val_rmse", "RMSE"), ("val_rank", "ranking loss")) if key in kept)
        print(f"\n{objective} objective: trained {len(history)} epoch"
              f"{'' if len(history) == 1 else 's'} in "
              f"{sum(entry['seconds'] for entry in history):.1f} s, kept epoch "
              f"{model.best_epoch_} ({detail or 'no validation'})")
        report = rec.evaluate(k=10)
        rows.append(report.loc[["two-tower"]].rename(
            index={"two-tower": f"two-tower ({objective})"}))
    report = pd.concat(rows + [report.drop(index="two-tower")])
    report.attrs.update(rows[-1].attrs)
    print("\nevery model and baseline on the same test split ('anirec demo --help' explains "
          "the columns)")
    print(format_evaluation(report))
    rec = recommenders.get("hybrid", rec)
    print(f"\nrecommendations below: the {rec.model.objective} model")

    truth = synthetic.truth
    favourites = dict(zip(truth.user_ids.tolist(), truth.favourite_genres))
    active = rec.user_ids[np.argsort(-np.diff(rec.seen[0]), kind="stable")[:3]]
    for user_id in active:
        recs = rec.recommend(int(user_id), n=5)
        _show(f"user {user_id}: planted favourite genres {', '.join(favourites[int(user_id)])}",
              recs[["rank", "score", "predicted_rating", "anime_id", "name", "genres"]])

    tastes = {"Action": 10, "Sci-Fi": 9, "Romance": 2}
    cold = rec.recommend_for_genres(tastes, n=5)
    _show(f"a new user who rates genres {tastes} (scale {rec.rating_scale})",
          cold[["rank", "score", "predicted_rating", "anime_id", "name", "genres"]])

    popular = int(rec.anime_ids[np.argmax(rec.baselines[3].item_scores)])
    similar = rec.similar(popular, n=5)
    _show(f"anime similar to {str(rec.anime_names[rec.anime_rows(popular)[0]])!r} "
          f"({', '.join(rec.anime_genres(popular))})",
          similar[["rank", "similarity", "anime_id", "name", "genres"]])

    paths = {"model": out / "model.anirec"}
    rec.save(paths["model"])
    from anirec.model import plot_validation

    paths["loss_curves"] = plot_validation(
        {name: r.model.history_ for name, r in recommenders.items()}, out / "loss.png",
        best_epochs={name: r.model.best_epoch_ for name, r in recommenders.items()},
        rating_scale=rec.rating_scale,
        title="Validation curves of the demo's models (the recommendations: hybrid)")
    print("\nwrote " + ", ".join(str(path) for path in paths.values()))
    print(f"demo finished in {time.perf_counter() - started:.1f} s")
    return {"recommender": rec, "recommenders": recommenders, "report": report, "paths": paths}
