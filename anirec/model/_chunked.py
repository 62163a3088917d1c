"""Passes over the training examples a chunk of rows at a time.

At full MyAnimeList size (24M ratings) a float64 value per example is 190 MB, and
``np.bincount`` copies int32 indices to a 24M-row int64 array before counting. These helpers
keep every temporary to :data:`CHUNK` rows, whatever the index and rating dtypes. Their sums
are those of one ``np.bincount`` over the whole array bit for bit: ``np.add.at`` adds the
weights one after the other in example order, as ``np.bincount`` does.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

#: Rows per chunk: 2 MiB per float64 temporary.
CHUNK = 1 << 18


def spans(n: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of the chunks of ``n`` rows, in order."""
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


def counts(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """``np.bincount(rows, minlength=n_rows)`` (int64) without widening ``rows`` whole."""
    total = np.zeros(n_rows, dtype=np.int64)
    for start, stop in spans(rows.shape[0]):
        total += np.bincount(rows[start:stop], minlength=n_rows)[:n_rows]
    return total


def sums(rows: np.ndarray, n_rows: int,
         weights: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """``np.bincount(rows, w, n_rows)`` of the float64 weights ``w``, bit for bit, where
    ``weights(start, stop)`` gives ``w[start:stop]``: ``w`` is never built whole."""
    total = np.zeros(n_rows, dtype=np.float64)
    for start, stop in spans(rows.shape[0]):
        np.add.at(total, rows[start:stop], weights(start, stop))
    return total
