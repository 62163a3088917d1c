"""Print the comparison tables in one go: anirec (Cython, NumPy) vs PyTorch vs faiss.

    python benchmarks/compare.py                      # training table, top-k, accuracy
    python benchmarks/compare.py --batches 64 1024 --repeats 3
    python benchmarks/compare.py --full               # + one epoch over 24M ratings
    python benchmarks/compare.py --scaling 1 2 4 8 16 # anirec on 1..16 threads vs PyTorch

Everything runs in this one process, side by side, with every thread pool capped at
``--threads`` (BLAS, OpenMP, PyTorch, faiss): on a shared machine only ratios measured in one
run mean anything. Frameworks take turns within each repeat (cython, numpy, torch, cython, ...)
and the table shows the median over repeats of samples per second and, for the ratios, the
median [and range] of the ratio within each repeat. The efficiency column is
``FLOPs per sample x samples/s`` as a share of a 2048^3 sgemm measured in the same run (the
best of the measurements before the training runs and after each batch size). Its ceiling
follows the table: the share of a one-thread sgemm that the network's products alone reach on
one thread, issued as the epoch issues them with no other work between them. PyTorch and faiss
are optional: their columns read ``-`` when they are not installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _reference as R  # noqa: E402

import anirec  # noqa: E402

TARGET_TORCH = {64: 4.0, 256: 2.5, 1024: 1.7, 4096: 1.2}
TARGET_NUMPY = {64: 2.0, 1024: 1.3}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min) {five:.2f} (5 min)"


def frameworks() -> list[str]:
    names = ["cython"] if anirec.backend.cython_available() else []
    names.append("numpy")
    if R.torch_available():
        names.append("torch")
    return names


def samples_for(batch: int, base: int) -> int:
    """Examples per timed run: at least ``base`` and at least 32 batches."""
    return max(base, 32 * batch)


def training_table(batches, *, base_samples: int, repeats: int, names,
                   embedding_dim: int = 0, threads: int = 1) -> dict:
    """``{batch: {framework: [samples/s per repeat]}}``, with ID embeddings of
    ``embedding_dim`` (0: none). A name ``cython:T`` is anirec's compiled epoch on ``T``
    threads; plain ``cython`` and ``numpy`` run on ``threads``."""
    results = {}
    for batch in batches:
        n = samples_for(batch, base_samples)
        problem = R.make_problem(n, n_validation=1)
        params = R.init_params(sizes=R.tower_sizes(embedding_dim))
        tables = R.init_tables(problem, embedding_dim)
        trainers = {}
        for name in names:
            framework, _, count = name.partition(":")
            trainers[name] = R.make_trainer(framework, problem, params, batch, tables,
                                            int(count or threads))
        warm = R.orders(min(n, 8 * batch), 1, seed=99)[0]
        for trainer in trainers.values():
            trainer.epoch(warm)
        rates = {name: [] for name in names}
        for order in R.orders(n, repeats, seed=batch):
            for name, trainer in trainers.items():
                R.settle()
                seconds, _ = R.time_epochs(trainer, [order])
                rates[name].append(n / seconds)
        results[batch] = rates
        print(f"  batch {batch}: " + ", ".join(
            f"{name} {statistics.median(r):,.0f}/s" for name, r in rates.items()), flush=True)
    return results


def topk_table(n_queries: int, repeats: int) -> dict:
    """``{name: [queries/s per repeat]}`` for top-10 over 25,000 items x 32."""
    r = R.make_retrieval(n_queries=n_queries)
    runs = {"anirec cython, exclusions": lambda: R.anirec_topk(r)}
    if R.faiss_available():
        index = R.FaissFlatIP(r)
        runs["faiss IndexFlatIP, no exclusions"] = index.search
    runs["numpy bare GEMM, no selection"] = lambda: R.numpy_scores(r)
    if not anirec.backend.cython_available():
        runs["anirec numpy, exclusions"] = lambda: R.anirec_topk(r, backend="numpy")
        del runs["anirec cython, exclusions"]
    rates = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in runs.items():
            R.settle()
            start = time.perf_counter()
            run()
            rates[name].append(n_queries / (time.perf_counter() - start))
    return rates


def accuracy(names, *, n: int, batch: int, epochs: int, seeds: int = 3) -> dict:
    """Validation MSE after ``epochs`` epochs from the same initial weights and batches, and
    the spread of anirec's own validation MSE over ``seeds`` shuffles (the noise)."""
    problem = R.make_problem(n, n_validation=20_000, seed=5)
    params = R.init_params(seed=5)
    out = {"initial": R.anirec_validation_loss(params, problem)}
    epoch_orders = R.orders(n, epochs, seed=11)
    for name in names:
        trainer = R.make_trainer(name, problem, params, batch)
        R.time_epochs(trainer, epoch_orders)
        out[name] = trainer.validation_loss()
    spread = []
    for seed in range(seeds):
        trainer = R.make_trainer(names[0], problem, params, batch)
        R.time_epochs(trainer, R.orders(n, epochs, seed=100 + seed))
        spread.append(trainer.validation_loss())
    out["noise"] = float(np.std(spread, ddof=1)) if seeds > 1 else float("nan")
    return out


def full_epoch(batch: int = 1024, embedding_dim: int = 0, threads: int = 1) -> dict:
    """One compiled epoch over a MyAnimeList-sized set (270k users, 25k items, 24M ratings)
    generated in memory, with ID embeddings of ``embedding_dim`` (0: none); reports seconds
    and the growth of the peak resident memory."""
    rng = np.random.default_rng(0)
    n, n_users, n_items = 24_000_000, 270_000, 25_000
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    targets = rng.uniform(-1, 1, n).astype(R.DTYPE)
    user_x = rng.standard_normal((n_users, 19)).astype(R.DTYPE)
    item_x = rng.standard_normal((n_items, 19)).astype(R.DTYPE)
    order = rng.permutation(n)
    sizes = R.tower_sizes(embedding_dim)
    params = R.init_params(sizes=sizes)
    grads, m, v = (np.zeros_like(params) for _ in range(3))
    tables = [(rng.standard_normal((rows, embedding_dim)) * 0.1).astype(R.DTYPE)
              for rows in (n_users, n_items)] if embedding_dim else []
    before = _peak_rss_mib()
    start = time.perf_counter()
    run = R.anirec_epochs(users, items, targets, user_x, item_x, params, grads, m, v, batch,
                          tables, threads)
    loss, _ = run.run(order, lr=R.ADAM["lr"])
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, samples_per_s=n / seconds, loss=loss / n,
                flops=R.flops_per_sample(sizes), embedding_dim=embedding_dim,
                peak_growth_mib=_peak_rss_mib() - before,
                data_mib=sum(a.nbytes for a in (users, items, targets, order)) / 2**20)


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _ratio(rates, a, b):
    """Median over repeats of the ratio of two frameworks' rates within the same repeat (they
    ran back to back, so a change of load between repeats cancels), with its range."""
    if a not in rates or b not in rates:
        return "-"
    ratios = sorted(x / y for x, y in zip(rates[a], rates[b]))
    return f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]"


def scaling(args) -> None:
    """anirec's compiled epoch on each thread count of ``--scaling`` against PyTorch on
    ``--threads`` (by default every core), batch by batch, interleaved."""
    counts = args.scaling
    names = [f"cython:{t}" for t in counts] + (["torch"] if R.torch_available() else [])
    print(f"anirec scaling: threads {counts}, PyTorch on {args.threads}, load {_load()}")
    with R.set_threads(args.threads):
        gflops = R.sgemm_gflops()
        train = training_table(args.batches, base_samples=args.samples, repeats=args.repeats,
                               names=names, threads=args.threads)
    flops = R.flops_per_sample()
    print(f"\nload after: {_load()}; sgemm on {args.threads} threads {gflops:.1f} GFLOP/s; "
          f"{flops / 1e3:.0f} kFLOP per sample")
    print("\n| batch | " + " | ".join(f"{t} thr samples/s" for t in counts)
          + f" | torch ({args.threads} thr) | {counts[-1]} thr / 1 thr | "
          f"{counts[-1]} thr / torch |")
    print("|---" * (len(counts) + 4) + "|")
    for batch, rates in train.items():
        med = {name: statistics.median(r) for name, r in rates.items()}
        torch = f"{med['torch']:,.0f}" if "torch" in med else "-"
        print(f"| {batch} | " + " | ".join(f"{med[f'cython:{t}']:,.0f}" for t in counts)
              + f" | {torch} | {_ratio(rates, f'cython:{counts[-1]}', f'cython:{counts[0]}')} | "
              f"{_ratio(rates, f'cython:{counts[-1]}', 'torch')} |")


def report(args) -> None:
    if args.scaling:
        scaling(args)
        return
    names = frameworks()
    print(f"anirec comparison: threads={args.threads}, frameworks={names}, load {_load()}")
    with R.set_threads(args.threads):
        from threadpoolctl import threadpool_info

        pools = sorted({(p["internal_api"], p.get("architecture") or "-", p["num_threads"])
                        for p in threadpool_info()})
        print("thread pools:", pools)
        gflops = [R.sgemm_gflops()]
        print(f"sgemm 2048^3: {gflops[0]:.1f} GFLOP/s", flush=True)
        print("training (Adam, float32, towers 19-256-128-64-32):", flush=True)
        train = {}
        for batch in args.batches:
            train.update(training_table([batch], base_samples=args.samples,
                                        repeats=args.repeats, names=names,
                                        threads=args.threads))
            gflops.append(R.sgemm_gflops())  # the reference is the best of all of these
        embedded = {}
        if args.embedding_dim:
            print(f"training with {args.embedding_dim}-d ID embeddings (sparse Adam):",
                  flush=True)
            embedded = training_table(args.embedding_batches, base_samples=args.samples,
                                      repeats=args.repeats, names=names,
                                      embedding_dim=args.embedding_dim, threads=args.threads)
        peak = max(gflops) * 1e9
        topk = topk_table(args.queries, args.repeats) if args.queries else {}
        acc = (accuracy(names, n=args.accuracy_samples, batch=256, epochs=args.accuracy_epochs)
               if args.accuracy_samples else None)
        full = full_epoch(embedding_dim=args.embedding_dim, threads=args.threads) \
            if args.full else None
        gflops.append(R.sgemm_gflops())
        peak = max(gflops) * 1e9
    ceiling = {}
    if "cython" in names:
        with R.set_threads(1):  # the ceiling of the efficiency column, on one thread
            one_thread = max(R.sgemm_gflops() for _ in range(2))
            ceiling = {batch: R.products_gflops(batch) / one_thread for batch in train}
    flops = R.flops_per_sample()

    print(f"\nload after: {_load()}; sgemm {', '.join(f'{g:.1f}' for g in gflops)} GFLOP/s; "
          f"{flops / 1e3:.0f} kFLOP per sample")
    print("\n| batch | " + " | ".join(f"{n} samples/s" for n in names)
          + " | cython/torch (target) | cython/numpy (target) | cython % of sgemm |")
    print("|---" * (len(names) + 4) + "|")
    for batch, rates in train.items():
        med = {name: statistics.median(r) for name, r in rates.items()}
        c = med.get("cython")
        tt = f" ({TARGET_TORCH[batch]}x)" if batch in TARGET_TORCH else ""
        tn = f" ({TARGET_NUMPY[batch]}x)" if batch in TARGET_NUMPY else ""
        eff = "-" if c is None else f"{100 * c * flops / peak:.0f}%"
        print(f"| {batch} | " + " | ".join(f"{med[n]:,.0f}" for n in names)
              + f" | {_ratio(rates, 'cython', 'torch')}{tt} | "
              f"{_ratio(rates, 'cython', 'numpy')}{tn} | {eff} |")
    if ceiling:
        print(f"\nthe products alone (one thread, issued as the epoch issues them), % of a "
              f"one-thread sgemm ({one_thread:.1f} GFLOP/s): "
              + ", ".join(f"{share:.0%} at batch {batch}" for batch, share in ceiling.items()))
    if embedded:
        print(f"\nwith {args.embedding_dim}-d user and item ID embeddings (anirec: lazy Adam on "
              "the touched rows; PyTorch: nn.Embedding(sparse=True) + SparseAdam):")
        print("\n| batch | " + " | ".join(f"{n} samples/s" for n in names)
              + " | cython/torch |")
        print("|---" * (len(names) + 2) + "|")
        for batch, rates in embedded.items():
            print(f"| {batch} | " + " | ".join(f"{statistics.median(rates[n]):,.0f}"
                                               for n in names)
                  + f" | {_ratio(rates, 'cython', 'torch')} |")
    if topk:
        print(f"\ntop-10 over 25,000 items x 32, {args.queries} users (users/s, median):")
        base = statistics.median(next(iter(topk.values())))
        for name, r in topk.items():
            print(f"  {name:36s} {statistics.median(r):>10,.0f}   ratio to first "
                  f"{base / statistics.median(r):.2f}x")
    if acc is not None:
        print(f"\naccuracy: validation MSE after {args.accuracy_epochs} epochs, batch 256, "
              f"{args.accuracy_samples} samples, same initial weights and batches")
        print(f"  initial {acc['initial']:.5f}; " + "; ".join(
            f"{n} {acc[n]:.5f}" for n in names)
              + f"; anirec spread over shuffles (std) {acc['noise']:.5f}")
        if "torch" in acc:
            print(f"  |{names[0]} - torch| = {abs(acc[names[0]] - acc['torch']):.5f}")
    if full is not None:
        share = full["samples_per_s"] * full["flops"] / peak
        print(f"\nfull-size epoch (24M ratings, batch 1024, {full['embedding_dim']}-d ID "
              f"embeddings, cython): {full['seconds']:.1f} s, {full['samples_per_s']:,.0f} "
              f"samples/s ({share:.0%} of sgemm), mean loss {full['loss']:.4f}, peak RSS "
              f"grew {full['peak_growth_mib']:.0f} MiB (the triplets and order are "
              f"{full['data_mib']:.0f} MiB)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--samples", type=int, default=131_072,
                        help="examples per timed epoch (at least 32 batches)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of every framework (default: the cores this process "
                             "may use)")
    parser.add_argument("--scaling", type=int, nargs="+", default=None,
                        help="instead of the comparison: anirec on each of these thread "
                             "counts against PyTorch on --threads")
    parser.add_argument("--queries", type=int, default=20_000,
                        help="users for the top-k comparison (0 skips it)")
    parser.add_argument("--accuracy-samples", type=int, default=100_000,
                        help="training examples of the accuracy check (0 skips it)")
    parser.add_argument("--accuracy-epochs", type=int, default=3)
    parser.add_argument("--embedding-dim", type=int, default=32,
                        help="width of the ID embeddings of the second table (0 skips it)")
    parser.add_argument("--embedding-batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--full", action="store_true",
                        help="also time one epoch over 24M ratings at batch 1024")
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = anirec.backend.available_cores()
    report(args)


if __name__ == "__main__":
    main()
