"""Loss curves of a training run as a PNG (needs the optional ``matplotlib``)."""

from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], path, *, title: str = "Two-tower training",
                 ylabel: str = "loss (the training objective)") -> Path:
    """Save the train and validation loss per epoch as a PNG.

    Parameters
    ----------
    history : list of dict
        ``TwoTower.history_`` (entries with ``epoch``, ``train_loss`` and maybe ``val_loss``).
    path : path-like
        Where to write the PNG.
    title, ylabel : str
        Labels of the figure (the loss is the model's objective: the MSE of the scaled
        ratings for ``objective="rating"``).

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "anirec[plot]"``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "anirec[plot]"') from None
    if not history:
        raise ValueError("history is empty: train a model first")
    epochs = [entry["epoch"] for entry in history]
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.plot(epochs, [entry["train_loss"] for entry in history], marker="o", label="train")
    if "val_loss" in history[0]:
        axes.plot(epochs, [entry["val_loss"] for entry in history], marker="o",
                  label="validation")
    axes.set(xlabel="epoch", ylabel=ylabel, title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_validation(histories: dict, path, *, best_epochs: dict | None = None,
                    rating_scale: tuple[float, float] = (1.0, 10.0),
                    title: str = "Two-tower training") -> Path:
    """Save the validation curves of several trained models (one per objective) as a PNG.

    The left panel is the validation RMSE on the rating scale (what a person reads: "off by
    1.1 stars out of 10"), for every model that predicts ratings; the right one, when a model
    was trained to rank, its validation ranking loss. The epoch whose weights were kept is
    marked with a star.

    Parameters
    ----------
    histories : dict of str to list of dict
        Label (e.g. the objective) -> ``TwoTower.history_``.
    path : path-like
        Where to write the PNG.
    best_epochs : dict of str to int, optional
        Label -> ``TwoTower.best_epoch_`` (the kept epoch).
    rating_scale : (low, high)
        The rating scale, for the axis label.
    title : str
        Title of the figure.

    Raises
    ------
    ImportError
        If matplotlib cannot be imported.
    ValueError
        If no history has validation entries.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best_epochs = best_epochs or {}
    panels = [("val_rmse", f"validation RMSE (ratings {rating_scale[0]:g}..{rating_scale[1]:g})"),
              ("val_rank", "validation ranking loss (softmax cross-entropy)")]
    panels = [(key, label) for key, label in panels
              if any(key in entry for history in histories.values() for entry in history)]
    if not panels:
        raise ValueError("no validation entries in the histories: train with validation data")
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), dpi=100,
                                squeeze=False)
    colours = {name: f"C{number}" for number, name in enumerate(histories)}  # same in panels
    for (key, label), ax in zip(panels, axes[0]):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for name, history in histories.items():
            points = [(entry["epoch"], entry[key]) for entry in history if key in entry]
            if not points:
                continue
            epochs, values = zip(*points)
            line, = ax.plot(epochs, values, marker="o", markersize=3, label=name,
                            color=colours[name])
            kept = best_epochs.get(name)
            if kept in epochs:
                ax.plot([kept], [values[epochs.index(kept)]], marker="*", markersize=14,
                        color=line.get_color(), linestyle="none")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(title="objective (star: kept epoch)")
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
