"""Peak memory of ``TwoTower.fit`` (one epoch) on generated triplets.

    python benchmarks/fit_memory.py --n 3000000
    python benchmarks/fit_memory.py --n 3000000 --before DIR   # DIR: another build's site dir

Generates ``n`` (user row, item row, rating) triplets as the data layer delivers them (int32,
int32, float32) with small feature matrices, and fits a default ``TwoTower`` for one epoch on
them, with a separate validation set (as ``Recommender`` passes it) and once with the int64 /
float64 triplets of the same values. Each case runs in its own child process, which reports the
``tracemalloc`` peak of the fit (NumPy reports its buffers to ``tracemalloc``) and the growth
of the peak RSS (``VmHWM``, reset before the fit through ``/proc/self/clear_refs``) over the
RSS before it, both in MiB, and the trained parameters' checksum. With ``--before`` every case
also runs against that build (``pip install --target DIR``), interleaved with this one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import hashlib, json, sys, time, tracemalloc
import numpy as np
from anirec.model.two_tower import TwoTower

n, wide, layers = int(sys.argv[1]), sys.argv[2] == "wide", json.loads(sys.argv[3])
rng = np.random.default_rng(0)
n_users, n_items = max(n // 90, 10), max(n // 1000, 10)
users = rng.integers(0, n_users, n, dtype=np.int32)
items = rng.integers(0, n_items, n, dtype=np.int32)
ratings = rng.integers(1, 11, n, dtype=np.int8).astype(np.float32)
valid = tuple(a[: n // 20].copy() for a in (users, items, ratings))
user_x = rng.normal(size=(n_users, 12)).astype(np.float32)
item_x = rng.normal(size=(n_items, 19)).astype(np.float32)
if wide:
    users, items, ratings = users.astype(np.int64), items.astype(np.int64), \
        ratings.astype(np.float64)
model = TwoTower(layers=layers, epochs=1, seed=0, validation_fraction=0.0)


def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
except OSError:
    pass
before = rss("VmRSS:")
tracemalloc.start()
started = time.perf_counter()
model.fit((users, items, ratings), user_x, item_x, validation=valid)
seconds = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
print(json.dumps({"tracemalloc_peak_mib": round(peak, 1),
                  "rss_growth_mib": round(rss("VmHWM:") - before, 1),
                  "seconds": round(seconds, 1),
                  "params": hashlib.sha256(model.params_.tobytes()).hexdigest()[:16]}))
"""


def run(n: int, case: str, layers, site: str | None) -> dict:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), case, json.dumps(layers)],
                          capture_output=True, text=True, env=env, cwd="/")
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3_000_000, help="training triplets")
    parser.add_argument("--layers", type=int, nargs="+", default=[256, 128, 64, 32])
    parser.add_argument("--before", help="site directory of the build to compare with")
    args = parser.parse_args()
    builds = [("this", None)] + ([("before", args.before)] if args.before else [])
    print(f"n = {args.n:,}, layers {args.layers}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| build | triplets | tracemalloc peak MiB | peak RSS growth MiB | fit s | params |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for case in ("narrow", "wide"):
        for name, site in builds:
            result = run(args.n, case, args.layers, site)
            kind = "int32/float32" if case == "narrow" else "int64/float64"
            print(f"| {name} | {kind} | {result['tracemalloc_peak_mib']} | "
                  f"{result['rss_growth_mib']} | {result['seconds']} | {result['params']} |",
                  flush=True)


if __name__ == "__main__":
    main()
