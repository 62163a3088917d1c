"""anirec's direct float32 products against OpenBLAS, one product at a time, on one thread.

    python benchmarks/direct_gemm.py
    python benchmarks/direct_gemm.py --rows 64 256 1024 --calls 500

The compiled epoch runs its float32 products ``A B`` (forward) and ``A^T B`` (weight gradients)
on anirec's own AVX-512 kernel where the CPU has one (``anirec._kernels._blas``), and on
OpenBLAS otherwise or with ``ANIREC_DIRECT_GEMM=0``. This times both on the shapes of the
default towers' widest layer (256 -> 128) for mini-batches of ``--rows`` rows, through the
kernels' own row-major entry point with BLAS on one thread, as the epoch calls it. Each time is
the best of ``--calls`` calls, the two kernels alternating in four rounds, so a slow spell of
a shared machine rarely decides it. The products are the same sums in another order: the
results differ in rounding only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from anirec._kernels import _blas


def best_seconds(trans_a: bool, A, B, C, calls: int) -> float:
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        _blas.gemm_rowmajor(trans_a, False, 1.0, A, B, 0.0, C)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    if not _blas.direct_gemm_available():
        raise SystemExit("this CPU or build has no direct kernel (it needs AVX-512F on x86-64)")
    rng = np.random.default_rng(0)
    print("| product | OpenBLAS us | direct us | direct / OpenBLAS |")
    print("| --- | ---: | ---: | ---: |")
    previous = _blas.direct_gemm_in_use()
    try:
        with threadpool_limits(1):
            for rows in args.rows:
                X = rng.standard_normal((rows, 256), dtype=np.float32)
                for name, trans_a, B, shape in (
                        (f"forward {rows} x 256 @ 256 x 128", False,
                         rng.standard_normal((256, 128), dtype=np.float32), (rows, 128)),
                        (f"weight gradient 256 x {rows} @ {rows} x 128", True,
                         rng.standard_normal((rows, 128), dtype=np.float32), (256, 128))):
                    C = np.zeros(shape, dtype=np.float32)
                    best = {False: float("inf"), True: float("inf")}
                    for direct in (False, True) * 2:
                        _blas.set_direct_gemm(direct)
                        best[direct] = min(best[direct],
                                           best_seconds(trans_a, X, B, C, args.calls))
                    print(f"| {name} | {best[False] * 1e6:.0f} | {best[True] * 1e6:.0f} | "
                          f"{best[True] / best[False]:.2f} |", flush=True)
    finally:
        _blas.set_direct_gemm(previous)


if __name__ == "__main__":
    main()
