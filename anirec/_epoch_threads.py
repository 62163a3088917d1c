"""How many threads the compiled epoch runs on, chosen by measured speed while it trains.

The compiled epoch shares each batch's chunks among its threads, which meet at a few barriers
per batch. On a quiet machine T threads train up to T times as fast as one. When another
process takes a core, the thread that shares it holds up every barrier: with the towers on two
threads, batch 64 then ran 3 to 10 times slower than on one. Every thread count gives the same
bits, so the choice changes only the speed, and :class:`ThreadChooser` makes it by measuring.
It runs an epoch as runs of whole batches, mostly on the count that was faster, with a short
probe of the other count after a second of work (the wait doubles, up to 8 s, while the probes
lose), so it follows the machine as its load comes and goes at a cost of a few per cent at
most. Its first 0.2 s on several threads are not measured: in a new process the threads take
tens of milliseconds to settle on their own cores.
"""

from __future__ import annotations

import math
import time
from typing import Callable

#: Seconds of one run of batches on the faster count; of a probe of the other count; and the
#: longest wait between probes (the wait doubles after each probe that loses, from one run).
RUN_SECONDS = 1.0
PROBE_SECONDS = 0.05
MAX_PROBE_INTERVAL = 8.0
#: Examples of the first run on each count, before its speed is known: few, because a slow
#: count may be 10 times slower than the other.
FIRST_RUN_EXAMPLES = 1024
#: Seconds of unmeasured warm-up on the larger count before anything is measured: in a new
#: process the first 70-120 ms of two threads ran 2 to 15 times slower than afterwards here,
#: whatever the batch size (a new thread can share its parent's core until the scheduler
#: moves it).
WARM_UP_SECONDS = 0.2

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
        self._interval = RUN_SECONDS
        self._probing: tuple[int, float] | None = None  # (count, the best's rate) of a probe
        self._warming = 0.0  # seconds of warm-up so far: it starts the threads, warms caches
        #: ``(threads, examples)`` of every run so far, for tests and benchmarks.
        self.log: list[tuple[int, int]] = []

    def run(self, n: int, batch_size: int, run_batches: RunBatches, step: int
            ) -> tuple[float, int]:
        """Train examples ``0..n`` of the visiting order in runs; returns ``(loss, step)``."""
        loss, start = 0.0, 0
        while start < n:
            threads, examples = self._next()
            stop = min(n, start + max(1, math.ceil(examples / batch_size)) * batch_size)
            began = self.clock()
            loss, step = run_batches(start, stop, threads, loss, step)
            self._record(threads, stop - start, self.clock() - began)
            start = stop
        return loss, step

    def _next(self) -> tuple[int, float]:
        """The thread count of the next run, and about how many examples it should take."""
        for threads in self.counts:
            if threads not in self.rates:
                return threads, FIRST_RUN_EXAMPLES
        best = max(self.counts, key=self.rates.__getitem__)
        if len(self.counts) > 1 and self._since_probe >= self._interval:
            other = next(t for t in self.counts if t != best)
            self._probing = (other, self.rates[best])
            return other, PROBE_SECONDS * min(self.rates.values())
        return best, RUN_SECONDS * self.rates[best]

    def _record(self, threads: int, examples: int, seconds: float) -> None:
        self.log.append((threads, examples))
        if self._warming < WARM_UP_SECONDS:
            self._warming += seconds  # not measured: it would make this count look slow
            return
        self._since_probe += seconds
        if seconds > 0:
            self.rates[threads] = examples / seconds
        if self._probing is not None and self._probing[0] == threads:
            won = self.rates[threads] > self._probing[1]
            self._interval = RUN_SECONDS if won else min(2 * self._interval, MAX_PROBE_INTERVAL)
            self._since_probe, self._probing = 0.0, None
