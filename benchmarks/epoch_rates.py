"""The compiled epoch's rate over consecutive epochs, and how many optimizer states are subnormal.

    python benchmarks/epoch_rates.py --batch 64 --epochs 8 --threads 2

Trains the benchmark network (``_reference.py``) epoch after epoch from the same initial
weights and prints each epoch's examples per second, then the count of Adam moments below the
smallest normal float32. A rate that falls from epoch to epoch points at state the training
accumulates: subnormal moments, on which every x86 operation takes a microcode assist, did
that. Under ``ab.py`` it compares two installations epoch by epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _reference as R  # noqa: E402

import anirec  # noqa: E402


def subnormal(state: np.ndarray) -> int:
    """How many elements of ``state`` are non-zero and below the smallest normal number."""
    magnitude = np.abs(state)
    return int(np.count_nonzero((magnitude > 0) & (magnitude < np.finfo(state.dtype).tiny)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=131_072, help="examples per epoch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    backend = "cython" if anirec.backend.cython_available() else "numpy"
    with R.set_threads(args.threads):
        problem = R.make_problem(args.samples, n_validation=1)
        params = R.init_params(sizes=R.tower_sizes(0))
        trainer = R.make_trainer(backend, problem, params, args.batch, (), args.threads)
        orders = R.orders(args.samples, args.epochs, seed=args.batch)
        print(f"anirec epoch rates: batch {args.batch}, {args.threads} threads, "
              f"{args.samples:,} examples per epoch, {backend}")
        print("| epoch | examples/s |\n|---|---|")
        R.settle()
        for epoch, order in enumerate(orders, 1):
            started = time.perf_counter()
            trainer.epoch(order)
            print(f"| {epoch} | {args.samples / (time.perf_counter() - started):,.0f} |",
                  flush=True)
    n = trainer.m.size
    print(f"\nsubnormal optimizer states after {args.epochs} epochs: first moments "
          f"{subnormal(trainer.m):,} of {n:,}, second moments {subnormal(trainer.v):,} of {n:,}")


if __name__ == "__main__":
    main()
