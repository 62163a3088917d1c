"""anirec against PyTorch, NumPy and faiss on the same two-tower network.

Run with ``pytest benchmarks/test_bench_compare.py --benchmark-group-by=group``. Each group
holds one workload with the frameworks side by side as ids:

- ``train batch B``: one epoch of Adam training, ids ``cython``, ``numpy``, ``torch``; each
  framework starts from the same flat parameter buffer and visits the same batches;
- ``top-10 retrieval``: ``cython`` (with every user's rated items excluded), ``faiss``
  (``IndexFlatIP``, no exclusions) and ``numpy-gemm`` (the bare scoring GEMM, no selection);
- ``sgemm 2048^3``: the dense limit of the machine, for the efficiency ratio.

PyTorch and faiss are optional (skipped when not installed). Every thread pool is capped at
``ANIREC_BENCH_THREADS`` (default 2). ``benchmark.extra_info`` carries samples (or users) per
second; ``python benchmarks/compare.py`` prints the ratios and targets in one table. The
full-size epoch (24M ratings) runs with ``--anirec-full``.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _reference as R  # noqa: E402

import anirec  # noqa: E402

THREADS = int(os.environ.get("ANIREC_BENCH_THREADS", "2"))
BATCHES = [64, 256, 1024, 4096]
SAMPLES = 65_536
FRAMEWORKS = ["cython", "numpy", "torch"]


@pytest.fixture(autouse=True)
def _threads():
    with R.set_threads(THREADS):
        yield


def _skip_unavailable(framework):
    if framework == "cython" and not anirec.backend.cython_available():
        pytest.skip("compiled kernels not built")
    if framework == "torch" and not R.torch_available():
        pytest.skip("torch not installed (pip install torch==2.13.0)")
    if framework == "faiss" and not R.faiss_available():
        pytest.skip("faiss not installed (pip install faiss-cpu)")


def _median(benchmark):
    """Median seconds of the benchmark's rounds (None with ``--benchmark-disable``)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None else None


@pytest.fixture(scope="module")
def problems():
    return {}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("batch", BATCHES)
def test_train_epoch(benchmark, problems, framework, batch):
    _skip_unavailable(framework)
    benchmark.group = f"train batch {batch}"
    n = max(SAMPLES, 32 * batch)
    if n not in problems:
        problems[n] = R.make_problem(n, n_validation=1)
    trainer = R.make_trainer(framework, problems[n], R.init_params(), batch)
    order = R.orders(n, 1)[0]
    trainer.epoch(order[:8 * batch])  # warm-up
    benchmark.pedantic(trainer.epoch, args=(order,), rounds=2, iterations=1)
    if _median(benchmark):
        benchmark.extra_info["samples_per_s"] = n / _median(benchmark)
    benchmark.extra_info["flops_per_sample"] = R.flops_per_sample()


@pytest.fixture(scope="module")
def retrieval():
    return R.make_retrieval()


@pytest.mark.parametrize("framework", ["cython", "faiss", "numpy-gemm"])
def test_topk(benchmark, retrieval, framework):
    _skip_unavailable(framework)
    benchmark.group = "top-10 retrieval, 20000 users x 25000 items x 32"
    if framework == "cython":
        run = lambda: R.anirec_topk(retrieval)  # noqa: E731
    elif framework == "faiss":
        run = R.FaissFlatIP(retrieval).search
    else:
        run = lambda: R.numpy_scores(retrieval)  # noqa: E731
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    if _median(benchmark):
        benchmark.extra_info["users_per_s"] = retrieval.Q.shape[0] / _median(benchmark)


def test_topk_cython_matches_faiss(retrieval):
    """Without exclusions both return the same items (the data are tie-free)."""
    _skip_unavailable("cython")
    _skip_unavailable("faiss")
    sub = R.RetrievalProblem(retrieval.Q[:500], retrieval.V, None, None)
    index, _ = R.anirec_topk(sub, exclude=False)
    _, faiss_index = R.FaissFlatIP(sub).search()
    assert np.mean(index == faiss_index) > 0.999


def test_sgemm(benchmark):
    benchmark.group = "sgemm 2048^3"
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    c = np.empty_like(a)
    benchmark.pedantic(np.matmul, args=(a, b), kwargs=dict(out=c), rounds=5, iterations=1,
                       warmup_rounds=1)
    if _median(benchmark):
        benchmark.extra_info["gflops"] = 2 * 2048**3 / benchmark.stats.stats.min / 1e9


@pytest.mark.skipif(not R.torch_available(), reason="torch not installed")
def test_same_validation_loss_as_torch():
    """Same initial weights, same batches, 2 epochs: validation MSE within 2% of PyTorch's."""
    problem = R.make_problem(30_000, n_validation=10_000, seed=5)
    params = R.init_params(seed=5)
    epoch_orders = R.orders(problem.n, 2, seed=11)
    losses = {}
    for framework in ["cython" if anirec.backend.cython_available() else "numpy", "torch"]:
        trainer = R.make_trainer(framework, problem, params, 256)
        R.time_epochs(trainer, epoch_orders)
        losses[framework] = trainer.validation_loss()
    initial = R.anirec_validation_loss(params, problem)
    ours, theirs = losses.values()
    assert ours < 0.5 * initial
    assert abs(ours - theirs) <= 0.02 * theirs


@pytest.mark.full
def test_full_size_epoch(benchmark):
    """One compiled epoch over 24M ratings at batch 1024 (bounded memory; time reported)."""
    _skip_unavailable("cython")
    from compare import full_epoch

    result = benchmark.pedantic(full_epoch, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["peak_growth_mib"] < 3 * result["data_mib"] + 512
