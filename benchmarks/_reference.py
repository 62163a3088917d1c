"""The same two-tower network in anirec (Cython, NumPy), PyTorch and retrieval in faiss.

Shared by ``benchmarks/test_bench_compare.py`` (pytest-benchmark groups) and
``benchmarks/compare.py`` (the whole table in one go). PyTorch and faiss are optional: each
``*_available()`` says whether it can be imported, and nothing here imports them at module
level, so anirec never depends on them.

The network is the default one: towers ``[19, 256, 128, 64, 32]`` (ReLU hidden layers, linear
last layer), outputs normalised as ``z / sqrt(|z|^2 + NORM_EPS^2)``, their row-wise dot product
the prediction, the MSE against targets in [-1, 1], Adam. Every framework starts from the same
flat parameter buffer (:func:`anirec.kernels.unpack_params` layout: user tower then item tower,
each layer ``W`` (fan-in x fan-out) row-major then ``b``) and visits the same mini-batches in the
same order. With ``embedding_dim`` each tower's input also gets a learned ID embedding row
(every user and item its own row, from one shared initial table), updated sparsely: anirec's
lazy Adam on the touched rows, PyTorch's ``nn.Embedding(sparse=True)`` with ``SparseAdam``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np

import anirec
from anirec import kernels as K

TOWER = (19, 256, 128, 64, 32)
DTYPE = np.float32
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)


# ---------------------------------------------------------------------------------------------
# Optional frameworks


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def set_threads(n: int) -> contextlib.ExitStack:
    """Cap every thread pool (BLAS, OpenMP, PyTorch, faiss) at ``n`` threads until closed."""
    from threadpoolctl import threadpool_limits

    stack = contextlib.ExitStack()
    stack.enter_context(threadpool_limits(limits=n))
    if torch_available():
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        stack.callback(torch.set_num_threads, previous)
    if faiss_available():
        import faiss

        previous_faiss = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(n)
        stack.callback(faiss.omp_set_num_threads, previous_faiss)
    return stack


# ---------------------------------------------------------------------------------------------
# Data and parameters


def flops_per_sample(sizes=TOWER) -> int:
    """Multiply-adds x 2 of one training sample, both towers: forward, ``grad_W`` for every
    layer and ``grad_X`` for every layer but the first (about 555 kFLOP for the default)."""
    macs = [k * m for k, m in zip(sizes[:-1], sizes[1:])]
    per_tower = 2 * (2 * sum(macs) + sum(macs[1:]))
    return 2 * per_tower


@dataclass
class Problem:
    """Triplets from a planted model of tastes plus a held-out validation set."""

    users: np.ndarray
    items: np.ndarray
    targets: np.ndarray
    user_x: np.ndarray
    item_x: np.ndarray
    val_users: np.ndarray
    val_items: np.ndarray
    val_targets: np.ndarray

    @property
    def n(self) -> int:
        return self.targets.shape[0]


def make_problem(n_examples: int, *, n_users: int = 20_000, n_items: int = 25_000,
                 n_validation: int = 20_000, seed: int = 0) -> Problem:
    """Features are standard normal; the target is the cosine of two hidden 8-d projections
    of the user's and the item's features (tanh-squashed), plus noise, clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)
    d = TOWER[0]
    user_x = rng.standard_normal((n_users, d)).astype(DTYPE)
    item_x = rng.standard_normal((n_items, d)).astype(DTYPE)
    A, B = rng.standard_normal((d, 8)) / math.sqrt(d), rng.standard_normal((d, 8)) / math.sqrt(d)
    hu, hi = np.tanh(user_x @ A), np.tanh(item_x @ B)
    hu /= np.linalg.norm(hu, axis=1, keepdims=True)
    hi /= np.linalg.norm(hi, axis=1, keepdims=True)
    total = n_examples + n_validation
    users = rng.integers(0, n_users, total)
    items = rng.integers(0, n_items, total)
    target = np.einsum("ij,ij->i", hu[users], hi[items]) + 0.1 * rng.standard_normal(total)
    target = np.clip(target, -1.0, 1.0).astype(DTYPE)
    cut = n_examples
    return Problem(users[:cut], items[:cut], target[:cut], user_x, item_x,
                   users[cut:], items[cut:], target[cut:])


def tower_sizes(embedding_dim: int = 0) -> tuple:
    return (TOWER[0] + embedding_dim, *TOWER[1:])


def init_tables(problem: Problem, embedding_dim: int, seed: int = 2) -> list[np.ndarray]:
    """The initial user and item ID embedding tables (one row per id), or none."""
    if not embedding_dim:
        return []
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((x.shape[0], embedding_dim)) * 0.1).astype(DTYPE)
            for x in (problem.user_x, problem.item_x)]


def init_params(seed: int = 0, sizes=TOWER) -> np.ndarray:
    """He-initialised weights, zero biases: ``TwoTower``'s initialisation, as a flat buffer."""
    rng = np.random.default_rng(seed)
    pieces = []
    for _ in range(2):
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            pieces.append(rng.normal(0.0, math.sqrt(2.0 / fan_in), fan_in * fan_out))
            pieces.append(np.zeros(fan_out))
    return np.concatenate(pieces).astype(DTYPE)


def orders(n: int, epochs: int, seed: int = 1) -> list[np.ndarray]:
    """The shuffle of every epoch, shared by all frameworks."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n).astype(np.int64) for _ in range(epochs)]


# ---------------------------------------------------------------------------------------------
# anirec


def anirec_epochs(users, items, targets, user_x, item_x, params, grads, m, v, batch_size,
                  tables=(), threads: int = 1) -> "K.EpochPlan":
    """anirec's checked training problem, Adam with ``ADAM``'s moments (the learning rate is
    given per epoch), on up to ``threads`` threads; ``tables`` are the user and item ID
    embedding tables (trained in place), if any."""
    sizes = np.array(tower_sizes(tables[0].shape[1] if tables else 0), dtype=np.int64)
    towers = []
    for side, x, table in zip(("user", "item"), (user_x, item_x), tables or (None, None)):
        blocks = [K.Features(side, x)]
        if table is not None:
            blocks.append(K.Embedding(side, np.arange(table.shape[0], dtype=np.int64), table))
        towers.append(K.Tower(sizes, tuple(blocks)))
    config = K.EpochConfig(optimizer="adam", batch_size=batch_size,
                           **{key: value for key, value in ADAM.items() if key != "lr"})
    return K.EpochPlan(K.Examples(users, items, targets), *towers,
                       K.Params(params, grads, m, v), config, threads=threads)


class AnirecTrainer:
    """anirec's compiled (or NumPy) epoch with Adam, on one flat parameter buffer."""

    def __init__(self, backend: str, problem: Problem, params: np.ndarray, batch_size: int,
                 tables=(), threads: int = 1):
        self.backend, self.problem, self.batch_size = backend, problem, batch_size
        self.params = params.copy()
        self.tables = [t.copy() for t in tables]
        self.grads, self.m, self.v = (np.zeros_like(params) for _ in range(3))
        self.step = 0
        self.run = anirec_epochs(problem.users, problem.items, problem.targets, problem.user_x,
                                 problem.item_x, self.params, self.grads, self.m, self.v,
                                 batch_size, self.tables, threads)

    def epoch(self, order: np.ndarray) -> float:
        with anirec.use_backend(self.backend):
            loss, self.step = self.run.run(order, lr=ADAM["lr"], step=self.step)
        return loss / order.shape[0]

    def validation_loss(self) -> float:
        return anirec_validation_loss(self.params, self.problem, self.tables)


def anirec_predict(params, user_x, item_x, sizes=TOWER) -> np.ndarray:
    """Predictions of pairs of input rows (with any embedding rows already appended)."""
    sizes = np.array(sizes, dtype=np.int64)
    towers = K.unpack_params(params, sizes, sizes)
    outputs = []
    for X, layers in zip((user_x, item_x), towers):
        for index, (W, b) in enumerate(layers):
            X = K.dense_forward(X, W, b, relu=index < len(layers) - 1)
        outputs.append(X)
    return K.normalize_dot(*outputs)[0]


def anirec_validation_loss(params, problem: Problem, tables=()) -> float:
    p = problem
    xu, xi = p.user_x[p.val_users], p.item_x[p.val_items]
    if tables:
        xu = np.ascontiguousarray(np.hstack([xu, tables[0][p.val_users]]))
        xi = np.ascontiguousarray(np.hstack([xi, tables[1][p.val_items]]))
    pred = anirec_predict(params, xu, xi, tower_sizes(tables[0].shape[1] if tables else 0))
    return float(np.mean((pred.astype(np.float64) - p.val_targets) ** 2))


# ---------------------------------------------------------------------------------------------
# PyTorch (eager, the way a user would write it)


class TorchTrainer:
    """The identical network in PyTorch eager mode: ``nn.Linear`` layers loaded from the flat
    anirec buffer (``weight = W.T``), the same normalisation, MSE and ``torch.optim.Adam``
    (PyTorch's default CPU implementation); ID embeddings as ``nn.Embedding(sparse=True)``
    with ``torch.optim.SparseAdam``. ``sizes`` are the user and the item tower's widths
    (default: both :func:`tower_sizes`)."""

    def __init__(self, problem: Problem, params: np.ndarray, batch_size: int, tables=(),
                 sizes=None):
        import torch

        self.torch = torch
        self.problem, self.batch_size = problem, batch_size
        if sizes is None:
            sizes = (tower_sizes(tables[0].shape[1] if tables else 0),) * 2
        self.towers = []
        for layers in K.unpack_params(params, *(np.array(s, dtype=np.int64) for s in sizes)):
            tower = torch.nn.ModuleList()
            for W, b in layers:
                linear = torch.nn.Linear(W.shape[0], W.shape[1])
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                    linear.bias.copy_(torch.from_numpy(b.copy()))
                tower.append(linear)
            self.towers.append(tower)
        self.model = torch.nn.ModuleList(self.towers)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=ADAM["lr"],
                                          betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"],
                                          weight_decay=ADAM["weight_decay"])
        self.embeddings = [torch.nn.Embedding.from_pretrained(torch.from_numpy(t.copy()),
                                                              freeze=False, sparse=True)
                           for t in tables]
        self.sparse = torch.optim.SparseAdam(
            [e.weight for e in self.embeddings], lr=ADAM["lr"],
            betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"]) if tables else None
        p = problem
        self.users, self.items = torch.from_numpy(p.users), torch.from_numpy(p.items)
        self.targets = torch.from_numpy(p.targets)
        self.user_x, self.item_x = torch.from_numpy(p.user_x), torch.from_numpy(p.item_x)

    def _tower(self, tower, x):
        for index, linear in enumerate(tower):
            x = linear(x)
            if index < len(tower) - 1:
                x = self.torch.relu(x)
        return x

    def predict(self, xu, xi):
        eps2 = K.NORM_EPS * K.NORM_EPS
        zu, zv = self._tower(self.towers[0], xu), self._tower(self.towers[1], xi)
        yu = zu / self.torch.sqrt((zu * zu).sum(1, keepdim=True) + eps2)
        yv = zv / self.torch.sqrt((zv * zv).sum(1, keepdim=True) + eps2)
        return (yu * yv).sum(1)

    def epoch(self, order: np.ndarray) -> float:
        torch = self.torch
        order_t = torch.from_numpy(order)
        total = torch.zeros((), dtype=torch.float64)
        for start in range(0, order.shape[0], self.batch_size):
            batch = order_t[start:start + self.batch_size]
            users, items = self.users[batch], self.items[batch]
            xu, xi = self._inputs(users, items)
            loss = torch.nn.functional.mse_loss(self.predict(xu, xi), self.targets[batch])
            self.optimizer.zero_grad(set_to_none=True)
            if self.sparse is not None:
                self.sparse.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.sparse is not None:
                self.sparse.step()
            total += loss.detach() * batch.shape[0]
        return float(total) / order.shape[0]

    def _inputs(self, users, items):
        xu, xi = self.user_x[users], self.item_x[items]
        if self.embeddings:
            xu = self.torch.cat([xu, self.embeddings[0](users)], 1)
            xi = self.torch.cat([xi, self.embeddings[1](items)], 1)
        return xu, xi

    def validation_loss(self) -> float:
        torch, p = self.torch, self.problem
        with torch.no_grad():
            pred = self.predict(*self._inputs(torch.from_numpy(p.val_users),
                                              torch.from_numpy(p.val_items))).numpy()
        return float(np.mean((pred.astype(np.float64) - p.val_targets) ** 2))

    def flat_params(self) -> np.ndarray:
        pieces = []
        for tower in self.towers:
            for linear in tower:
                pieces.append(linear.weight.detach().numpy().T.ravel())
                pieces.append(linear.bias.detach().numpy())
        return np.concatenate(pieces)


def make_trainer(framework: str, problem: Problem, params: np.ndarray, batch_size: int,
                 tables=(), threads: int = 1):
    """A trainer of ``framework`` (``"cython"``, ``"numpy"`` or ``"torch"``); anirec's on up
    to ``threads`` threads (PyTorch's follow ``set_threads``)."""
    if framework == "torch":
        return TorchTrainer(problem, params, batch_size, tables)
    return AnirecTrainer(framework, problem, params, batch_size, tables, threads)


#: Seconds each timed run waits first. After its last call a thread pool's idle threads keep
#: spinning for a while before they sleep (OpenBLAS: 2^28 clock cycles, about 0.1 s; Intel
#: OpenMP: 200 ms by default), and a run that starts while another framework's threads still
#: spin shares its cores with them: on two cores that took a third or more off the compiled
#: epoch's rate right after a NumPy run, whose threads meet at barriers.
SETTLE_SECONDS = 0.3


def settle() -> None:
    """Wait until the thread pools of the run before are idle (:data:`SETTLE_SECONDS`)."""
    time.sleep(SETTLE_SECONDS)


def time_epochs(trainer, epoch_orders) -> tuple[float, list[float]]:
    """Seconds for the given epochs, and the mean training loss of each."""
    losses = []
    start = time.perf_counter()
    for order in epoch_orders:
        losses.append(trainer.epoch(order))
    return time.perf_counter() - start, losses


# ---------------------------------------------------------------------------------------------
# Retrieval


@dataclass
class RetrievalProblem:
    Q: np.ndarray
    V: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray


def make_retrieval(n_queries: int = 20_000, n_items: int = 25_000, dim: int = 32,
                   rated: int = 90, seed: int = 3) -> RetrievalProblem:
    """L2-normalised query and item embeddings; each query excludes ``rated`` distinct items
    (the full MAL data set has about 90 ratings per user)."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n_queries, dim)).astype(DTYPE)
    V = rng.standard_normal((n_items, dim)).astype(DTYPE)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    counts = rng.integers(rated // 2, rated * 3 // 2 + 1, n_queries)
    indptr = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=np.int64)
    for q in range(n_queries):
        indices[indptr[q]:indptr[q + 1]] = np.sort(rng.choice(n_items, counts[q], replace=False))
    return RetrievalProblem(Q, V, indptr, indices)


def anirec_topk(r: RetrievalProblem, k: int = 10, exclude: bool = True, backend="cython"):
    with anirec.use_backend(backend):
        return K.topk(r.Q, r.V, k, exclude=(r.indptr, r.indices) if exclude else None)


class FaissFlatIP:
    """faiss-cpu ``IndexFlatIP``: exact inner-product search, no exclusions."""

    def __init__(self, r: RetrievalProblem):
        import faiss

        self.index = faiss.IndexFlatIP(r.V.shape[1])
        self.index.add(r.V)
        self.Q = r.Q

    def search(self, k: int = 10):
        return self.index.search(self.Q, k)


def numpy_scores(r: RetrievalProblem, block: int = 1024) -> None:
    """The bare blocked GEMM of retrieval, without any selection: a floor for top-k."""
    out = np.empty((block, r.V.shape[0]), dtype=DTYPE)
    VT = r.V.T
    for start in range(0, r.Q.shape[0], block):
        q = r.Q[start:start + block]
        np.matmul(q, VT, out=out[:q.shape[0]])


# ---------------------------------------------------------------------------------------------
# The machine's dense limit


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an ``n^3`` float32 matmul through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=DTYPE), rng.standard_normal((n, n), dtype=DTYPE)
    c = np.empty((n, n), dtype=DTYPE)
    np.matmul(a, b, out=c)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def products_gflops(batch: int, sizes=TOWER, repeats: int = 20) -> float:
    """Best GFLOP/s of the products alone of one training batch of both towers, issued as
    the compiled epoch issues them: per chunk of the batch (``batch_layout``), each layer
    forward (``A B``), then backward its input gradient (``A B^T``, every layer but the first)
    and its weight gradient strip by strip (``A^T B``, ``strip_rows``), through
    ``anirec._kernels._blas.gemm_rowmajor`` on the calling thread. Each strip is its own
    contiguous array here, and every product pays one Python call: a slight underestimate of
    what the products could reach inside the epoch, which no epoch of this network passes."""
    from anirec._kernels import _blas, _epoch

    rng = np.random.default_rng(0)
    _, chunk = _epoch.batch_layout(batch)
    rows = [min(chunk, batch - at) for at in range(0, batch, chunk)]

    def random(*shape):
        return rng.standard_normal(shape, dtype=DTYPE)

    layers = []  # (X, W, Y, G, dX, [(X strip, W grad strip)]) of one chunk
    for r in rows:
        for k, m in zip(sizes[:-1], sizes[1:]):
            width = _epoch.strip_rows(k, m)
            strips = [(random(r, min(width, k - lo)), random(min(width, k - lo), m))
                      for lo in range(0, k, width)]
            layers.append((random(r, k), random(k, m), random(r, m), random(r, m),
                           random(r, k), strips))
    per_tower = len(sizes) - 1

    def one_batch():
        for start in range(0, len(layers), per_tower):
            chunk_layers = layers[start:start + per_tower]
            for X, W, Y, *_ in chunk_layers:
                _blas.gemm_rowmajor(False, False, 1.0, X, W, 0.0, Y)
            for depth, (_, W, _, G, dX, strips) in reversed(list(enumerate(chunk_layers))):
                for X_strip, grad_strip in strips:
                    _blas.gemm_rowmajor(True, False, 1.0, X_strip, G, 0.0, grad_strip)
                if depth > 0:
                    _blas.gemm_rowmajor(False, True, 1.0, G, W, 0.0, dX)

    best = math.inf
    one_batch()
    for _ in range(repeats):
        start = time.perf_counter()
        one_batch()
        one_batch()  # both towers
        best = min(best, time.perf_counter() - start)
    return flops_per_sample(sizes) * batch / best / 1e9
