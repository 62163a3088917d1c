"""Training speed where users train: ``anirec train`` end to end against the same network in
PyTorch, on a quiet machine and with a CPU-burning process pinned to one core.

    python benchmarks/train_speed.py                    # batch 64 and 1024, quiet and busy
    python benchmarks/train_speed.py --batches 64 256 1024 --repeats 3 --ratings 450000

Everything runs in one go, so the ratios compare runs of the same minute. Per batch size:

- ``cli``: ``python -m anirec train --objective rating --no-refit`` on a generated MAL data set,
  timed for 3 epochs minus 1 epoch, so loading, features, evaluation and saving cancel and what
  is left is two epochs as the command line runs them (validation included).
- ``kernel``: the compiled epoch alone (``kernels.EpochPlan.run``) on the very arrays that
  command trains on (captured from an in-process run): its leave-one-out rows, item statistics
  and ID embeddings; ``2 thr`` and ``1 thr`` force the thread count, ``chosen`` is the default,
  which measures and picks.
- ``torch``: the same towers, initial weights, embeddings (``SparseAdam``), examples and
  targets in PyTorch eager (``_reference.TorchTrainer``), fed the plain user rows: it skips the
  leave-one-out work anirec does, which favours it.

Rates are training examples per second: the median over ``--repeats``. The ratios are the
median of each repeat's own ratio: the runs of one repeat follow each other within a minute or
two, so a slow spell of the machine mostly hits both sides of a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _reference as R  # noqa: E402

from anirec import kernels as K  # noqa: E402
from anirec import backend  # noqa: E402
from anirec.model.two_tower import TwoTower  # noqa: E402


def generate(folder: Path, ratings: int) -> tuple[str, str]:
    """A synthetic MAL 2023 data set of ``ratings`` rows (``anirec generate``)."""
    users, anime = max(100, ratings // 75), max(50, ratings // 150)
    subprocess.run([sys.executable, "-m", "anirec", "generate", "--out", str(folder),
                    "--users", str(users), "--anime", str(anime), "--ratings", str(ratings)],
                   check=True, stdout=subprocess.DEVNULL)
    return str(folder / "anime-dataset-2023.csv"), str(folder / "users-score-2023.csv")


def train_args(data, batch: int, epochs: int, out: Path) -> list[str]:
    return ["train", "--anime", data[0], "--scores", data[1], "--out", str(out),
            "--objective", "rating", "--no-refit", "--quiet", "--epochs", str(epochs),
            "--batch-size", str(batch)]


def cli_seconds(data, batch: int, epochs: int, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "anirec", *train_args(data, batch, epochs, out)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


class Captured:
    """What ``anirec train`` hands the compiled epoch, and the plain features for PyTorch."""

    def __init__(self, data, batch: int, out: Path):
        from anirec.cli import main

        seen = {}
        fit, init = TwoTower.fit, K.EpochPlan.__init__

        def spy_fit(model, *args, **kwargs):
            bound = inspect.signature(fit).bind(model, *args, **kwargs)
            seen.update(user_x=bound.arguments["user_features"],
                        item_x=bound.arguments["item_features"])
            return fit(model, *args, **kwargs)

        def spy_init(plan, examples, user, item, params, config, threads=1):
            seen.update(examples=examples, user=user, item=item, config=config,
                        params=params.params.copy(),
                        tables=[[b.table.copy() for b in tower.blocks if b.trained]
                                for tower in (user, item)])
            init(plan, examples, user, item, params, config, threads)

        TwoTower.fit, K.EpochPlan.__init__ = spy_fit, spy_init
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                main(train_args(data, batch, 1, out))
        finally:
            TwoTower.fit, K.EpochPlan.__init__ = fit, init
        self.__dict__.update(seen)
        self.n = self.examples.targets.shape[0]

    def epochs(self, threads: int | None = None) -> K.EpochPlan:
        """A fresh training problem from the captured initial weights and tables, on up to
        ``threads`` threads (default: every core)."""
        towers = []
        for tower, tables in zip((self.user, self.item), self.tables):
            fresh = iter(tables)
            towers.append(tower._replace(blocks=tuple(
                dataclasses.replace(b, table=next(fresh).copy(), grad=None, m=None, v=None)
                if b.trained else b for b in tower.blocks)))
        params = K.Params(self.params.copy(), *(np.zeros_like(self.params) for _ in range(3)))
        return K.EpochPlan(self.examples, *towers, params, self.config,
                           threads=threads or backend.available_cores())

    def torch_trainer(self, batch: int) -> R.TorchTrainer:
        e = self.examples
        empty = np.zeros(0, dtype=np.int64)
        dtype = e.targets.dtype
        problem = R.Problem(e.users, e.items, e.targets, self.user_x.astype(dtype),
                            self.item_x.astype(dtype), empty, empty, np.zeros(0, dtype=dtype))
        tables = []  # each ID embedding's row of every feature row
        for tower, copies in zip((self.user, self.item), self.tables):
            trained = [b for b in tower.blocks if b.trained]
            embedding, table = next((b, t) for b, t in zip(trained, copies)
                                    if isinstance(b, K.Embedding))
            tables.append(table[embedding.index])
        return R.TorchTrainer(problem, self.params, batch, tables,
                              sizes=(self.user.sizes, self.item.sizes))


def two_epoch_rate(run_epoch, n: int, seed: int = 0) -> float:
    """Examples per second of epochs 2 and 3 (the first warms up)."""
    orders = R.orders(n, 3, seed)
    run_epoch(orders[0])
    started = time.perf_counter()
    for order in orders[1:]:
        run_epoch(order)
    return 2 * n / (time.perf_counter() - started)


def kernel_rate(captured: Captured, threads: int | None) -> float:
    """The compiled epoch alone on the captured arrays; ``threads`` forces a count."""
    plan = captured.epochs(threads)
    if threads is None:
        return two_epoch_rate(lambda order: plan.run(order, lr=1e-3), captured.n)
    impl = backend.implementation()
    return two_epoch_rate(lambda order: impl.train_epoch(plan, order, 1e-3, 0, threads),
                          captured.n)


@contextlib.contextmanager
def burner(busy: bool):
    """A process spinning on core 0 while the block runs (nothing when not ``busy``)."""
    if not busy:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                               preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def measure(data, batch: int, repeats: int, folder: Path, with_torch: bool) -> dict:
    out = folder / "model.npz"
    captured = Captured(data, batch, out)
    rates = {name: [] for name in ("cli", "chosen", "2 thr", "1 thr", "torch")}
    for _ in range(repeats):
        one, three = cli_seconds(data, batch, 1, out), cli_seconds(data, batch, 3, out)
        # Two epochs' time is a difference of two runs: on a busy machine the noise of the
        # shorter one can swallow it, which gives no rate rather than a negative one.
        rates["cli"].append(2 * captured.n / (three - one) if three > one else float("nan"))
        for name, threads in (("chosen", None), ("2 thr", 2), ("1 thr", 1)):
            rates[name].append(kernel_rate(captured, threads))
        if with_torch:
            trainer = captured.torch_trainer(batch)
            rates["torch"].append(two_epoch_rate(trainer.epoch, captured.n))
    ratios = {"cli / chosen": np.divide(rates["cli"], rates["chosen"]),
              "cli / torch": np.divide(rates["cli"], rates["torch"]) if with_torch else []}
    spread = (f" ({min(ratios['cli / torch']):.2f}-{max(ratios['cli / torch']):.2f})"
              if repeats > 1 and with_torch else "")
    return {name: statistics.median(values) if len(values) else float("nan")
            for name, values in (rates | ratios).items()} | {"n": captured.n, "spread": spread}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--ratings", type=int, default=450_000,
                        help="rows of the generated scores file (~80%% train)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-busy", action="store_true", help="quiet machine only")
    args = parser.parse_args(argv)
    with_torch = R.torch_available()
    conditions = [False] if args.no_busy else [False, True]
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; "
          f"{'torch ' + __import__('torch').__version__ if with_torch else 'no torch'}")
    with tempfile.TemporaryDirectory(prefix="anirec-train-speed-") as tmp:
        folder = Path(tmp)
        data = generate(folder / "data", args.ratings)
        print("| machine | batch | cli | kernel chosen | kernel 2 thr | kernel 1 thr | torch "
              "| cli / kernel chosen | cli / torch |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for busy in conditions:
            with burner(busy):
                for batch in args.batches:
                    r = measure(data, batch, args.repeats, folder, with_torch)
                    print(f"| {'busy' if busy else 'quiet'} | {batch} | {r['cli']:,.0f} | "
                          f"{r['chosen']:,.0f} | {r['2 thr']:,.0f} | {r['1 thr']:,.0f} | "
                          f"{r['torch']:,.0f} | {r['cli / chosen']:.2f} | "
                          f"{r['cli / torch']:.2f}x{r['spread']} |", flush=True)
        print(f"examples per epoch: {r['n']:,}")


if __name__ == "__main__":
    main()
