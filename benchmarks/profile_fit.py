"""Where the time of ``anirec train`` goes, phase by phase.

    python benchmarks/profile_fit.py                       # batch 64, 256, 1024
    python benchmarks/profile_fit.py --batches 64 --perf   # + inside the epoch, with perf

Runs ``anirec train --objective rating`` in this process on a generated MAL data set with a
timer around each phase of the command: loading, split and features, the model's set-up (biases,
leave-one-out targets, tables), the compiled epochs, validation after each epoch, the rest of
the epoch loop (checks, best-weight copies, progress bar), evaluation and saving; the refit on
all training ratings adds its phases to the same rows. With ``--perf`` a second run under ``perf record`` on one thread splits
the epochs' own time by function into GEMM, the layers' bias/ReLU passes, leave-one-out rows,
batch assembly (gathers, embedding rows), the head (normalisation, loss) and the optimizers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import generate  # noqa: E402

from anirec import kernels  # noqa: E402
from anirec import recommender as rec  # noqa: E402
from anirec.model import two_tower as tt  # noqa: E402

#: Timed methods: (owner, name, phase). Inner phases are subtracted from outer ones.
TIMED = (
    (rec.Recommender, "fit", "fit (other)"),
    (tt.TwoTower, "fit", "model set-up (biases, targets, tables)"),
    (tt.TwoTower, "_train", "epoch loop (checks, copies, progress bar)"),
    (kernels.EpochPlan, "run", "compiled epochs"),
    (tt.TwoTower, "_all_items", "validation"),
    (tt.TwoTower, "_pair_scores", "validation"),
    (tt.TwoTower, "_validation_rank_loss", "validation"),
)

#: perf symbols (regular expressions, first match wins) -> phase inside the epochs.
SYMBOLS = (
    (r"gemm|_kernel_|copy_|beta", "GEMM (OpenBLAS)"),
    (r"dense_(forward|backward)", "layers' bias and ReLU passes"),
    (r"loo_", "leave-one-out rows"),
    (r"adam|sgd|table_step|memset", "optimizer steps"),
    (r"normalize|rating_rows|softmax|unit_head|head_rows", "head (normalisation, loss)"),
    (r"scatter|table_add", "the blocks' table gradients"),
    (r"_run|_round|gather|memcpy|memmove", "batch assembly (gathers, embedding rows)"),
)


class PhaseTimer:
    """Exclusive seconds per phase: time in a nested timed call counts for the inner one."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._timed = 0.0  # seconds of every timed call so far, nested ones counted once
        self._saved = []

    def wrap(self, owner, name: str, phase: str) -> None:
        original = getattr(owner, name)
        self._saved.append((owner, name, original))

        def timed(*args, **kwargs):
            started, timed_before = time.perf_counter(), self._timed
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[phase] += elapsed - (self._timed - timed_before)
                self._timed = timed_before + elapsed

        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


def train_args(data, batch: int, epochs: int, out: Path) -> list[str]:
    return ["train", "--anime", data[0], "--scores", data[1], "--out", str(out),
            "--objective", "rating", "--epochs", str(epochs), "--batch-size", str(batch),
            "--quiet"]


def profile(data, batch: int, epochs: int, out: Path) -> tuple[dict, float]:
    from anirec.cli import main

    timer = PhaseTimer()
    for owner, name, phase in TIMED:
        timer.wrap(owner, name, phase)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(train_args(data, batch, epochs, out))
    finally:
        timer.restore()
    total = time.perf_counter() - started
    phases = dict(timer.seconds)
    phases["loading, split, features, evaluation, saving"] = total - sum(phases.values())
    return phases, total


def perf_phases(data, batch: int, epochs: int, out: Path) -> dict:
    """Shares of the epochs' samples by phase, from ``perf record`` on one thread."""
    record = out.with_suffix(".perf")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    subprocess.run(["perf", "record", "-q", "-o", str(record), "--", sys.executable, "-m",
                    "anirec", *train_args(data, batch, epochs, out)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = subprocess.run(["perf", "report", "-i", str(record), "--no-children", "--sort",
                             "symbol", "--stdio"], capture_output=True, text=True, check=True)
    shares = defaultdict(float)
    for line in report.stdout.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+\[.\]\s+(\S+)", line)
        if not match:
            continue
        share, symbol = float(match[1]), match[2]
        phase = next((p for pattern, p in SYMBOLS if re.search(pattern, symbol)), "other")
        shares[phase] += share
    epoch = sum(v for k, v in shares.items() if k != "other")
    return {k: v / epoch for k, v in shares.items() if k != "other"} | {"__epoch__": epoch}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--ratings", type=int, default=450_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--perf", action="store_true", help="also profile inside the epochs")
    args = parser.parse_args(argv)
    if args.perf and shutil.which("perf") is None:
        parser.error("--perf needs the perf command (Debian: linux-perf)")
    with tempfile.TemporaryDirectory(prefix="anirec-profile-") as tmp:
        folder = Path(tmp)
        data = generate(folder / "data", args.ratings)
        results = {b: profile(data, b, args.epochs, folder / "model.npz") for b in args.batches}
        names = list(dict.fromkeys(k for phases, _ in results.values() for k in phases))
        print(f"`anirec train --objective rating --epochs {args.epochs}` (early stopping on, "
              f"refit on), {args.ratings:,} generated ratings; seconds (share of the command)")
        print("| phase | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
        print("| --- |" + " ---: |" * len(args.batches))
        for name in sorted(names, key=lambda n: -results[args.batches[0]][0].get(n, 0)):
            cells = [f"{results[b][0].get(name, 0):.2f} ({results[b][0].get(name, 0) / t:.0%})"
                     for b, (_, t) in ((b, results[b]) for b in args.batches)]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print("| whole command | " + " | ".join(f"{results[b][1]:.2f}" for b in args.batches)
              + " |")
        if args.perf:
            shares = {b: perf_phases(data, b, args.epochs, folder / "model.npz")
                      for b in args.batches}
            print("\ninside the compiled epochs (perf, one thread; share of their samples)")
            print("| phase | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
            print("| --- |" + " ---: |" * len(args.batches))
            phases = sorted({k for s in shares.values() for k in s if k != "__epoch__"},
                            key=lambda k: -shares[args.batches[0]].get(k, 0))
            for name in phases:
                print(f"| {name} | " + " | ".join(f"{shares[b].get(name, 0):.0%}"
                                                  for b in args.batches) + " |")


if __name__ == "__main__":
    main()
