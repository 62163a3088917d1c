"""How many threads the compiled epoch runs on, chosen by measured speed while it trains.

The compiled epoch runs one thread per tower, which meet at two barriers per span. On a quiet
machine two threads train up to twice as fast as one. When another process takes a core, the
thread that shares it holds up every barrier: at batch 64 two threads then ran 3 to 10 times
slower than one. Both thread counts give the same bits, so the choice changes only the speed,
and :class:`ThreadChooser` makes it by measuring. It runs an epoch as runs of whole batches,
mostly on the count that was faster, with a short probe of the other count after each second
of work, so it follows the machine as its load comes and goes.
"""

from __future__ import annotations

import math
import time
from typing import Callable

#: Seconds of training between probes, and of each probe of the other thread count.
EXPLOIT_SECONDS = 1.0
PROBE_SECONDS = 0.05
#: Examples of the very first run of batches, before any speed is known.
FIRST_RUN_EXAMPLES = 8192

#: ``run(start, stop, threads, loss, step) -> (loss, step)``: train ``order[start:stop]``.
RunBatches = Callable[[int, int, int, float, int], tuple[float, int]]


class ThreadChooser:
    """Splits epochs into runs of whole batches, each on 1 or ``max_threads`` threads.

    Kept for a whole ``fit``, so each epoch starts from the speeds the last one measured.
    ``clock`` is for tests.
    """

    def __init__(self, max_threads: int = 2, clock: Callable[[], float] = time.perf_counter):
        self.counts = (max_threads, 1) if max_threads > 1 else (1,)
        self.rates: dict[int, float] = {}  # examples per second, the latest run of each count
        self.clock = clock
        self._since_probe = 0.0
        #: ``(threads, examples)`` of every run so far, for tests and benchmarks.
        self.log: list[tuple[int, int]] = []

    def run(self, n: int, batch_size: int, run_batches: RunBatches, step: int
            ) -> tuple[float, int]:
        """Train examples ``0..n`` of the visiting order in runs; returns ``(loss, step)``."""
        loss, start = 0.0, 0
        while start < n:
            threads, seconds = self._next()
            rate = self.rates.get(threads)
            examples = FIRST_RUN_EXAMPLES if rate is None else seconds * rate
            stop = min(n, start + max(1, math.ceil(examples / batch_size)) * batch_size)
            began = self.clock()
            loss, step = run_batches(start, stop, threads, loss, step)
            self._record(threads, stop - start, self.clock() - began)
            start = stop
        return loss, step

    def _next(self) -> tuple[int, float]:
        """The thread count of the next run, and how many seconds of work it should take."""
        for threads in self.counts:
            if threads not in self.rates:
                return threads, PROBE_SECONDS
        best = max(self.counts, key=self.rates.__getitem__)
        if self._since_probe >= EXPLOIT_SECONDS and len(self.counts) > 1:
            self._since_probe = 0.0
            return next(t for t in self.counts if t != best), PROBE_SECONDS
        return best, EXPLOIT_SECONDS

    def _record(self, threads: int, examples: int, seconds: float) -> None:
        self.log.append((threads, examples))
        self._since_probe += seconds
        if seconds > 0:
            self.rates[threads] = examples / seconds
