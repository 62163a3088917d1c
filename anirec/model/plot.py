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
