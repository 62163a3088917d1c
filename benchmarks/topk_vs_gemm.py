"""Top-10 retrieval against the bare NumPy GEMM over the same vectors, interleaved.

```bash
python benchmarks/topk_vs_gemm.py --rounds 9
python benchmarks/topk_vs_gemm.py --variants topk_before topk_after   # standalone builds
```

Alternates ``numpy_scores`` (``Q @ V.T`` in blocks of 1024, no selection) with the compiled
top-k (~90 exclusions per user) in one process, at each thread count, and prints the median
users/s and its ratio to the GEMM of the same round. ``--variants`` names importable modules
built from copies of ``anirec/_kernels/_topk.pyx`` (e.g. the code before and after a change,
built with ``cythonize``), called directly; every variant must give the same arrays.
"""

import argparse
import importlib
import statistics
import time

import numpy as np

import _reference as R


def _runner(r, name, k):
    if name is None:
        return lambda: R.anirec_topk(r, k=k)
    module = importlib.import_module(name)
    index = np.empty((r.Q.shape[0], k), dtype=np.int64)
    score = np.empty((r.Q.shape[0], k), dtype=np.float32)

    def run():
        module.topk(r.Q, r.V, k, r.indptr, r.indices, 1024, index, score)
        return index, score

    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variants", nargs="+", default=None)
    args = parser.parse_args(argv)
    r = R.make_retrieval(n_queries=args.queries)
    runs = {"numpy bare GEMM": lambda: R.numpy_scores(r)}
    for name in args.variants or [None]:
        runs[name or "anirec cython"] = _runner(r, name, 10)
    first = None
    for name, run in list(runs.items())[1:]:
        index, score = run()
        if first is None:
            first = index.copy(), score.copy()
        elif not (np.array_equal(first[0], index) and np.array_equal(first[1], score)):
            raise SystemExit(f"{name} gives other results than the first variant")
    for threads in args.threads:
        rates = {name: [] for name in runs}
        with R.set_threads(threads):
            for run in runs.values():
                run()  # warm-up
            for _ in range(args.rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run()
                    rates[name].append(args.queries / (time.perf_counter() - start))
        gemm = statistics.median(rates["numpy bare GEMM"])
        print(f"{threads} thread(s): " + "; ".join(
            f"{name} {statistics.median(x):,.0f}/s ({statistics.median(x) / gemm:.2f}x GEMM)"
            for name, x in rates.items()), flush=True)


if __name__ == "__main__":
    main()
