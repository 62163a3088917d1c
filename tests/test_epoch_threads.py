"""The thread chooser's policy, on a simulated machine whose speeds the test sets."""

import pytest

from anirec import _epoch_threads as T
from anirec._epoch_threads import ThreadChooser


class Machine:
    """A clock and a ``run_batches`` whose examples per second per thread count are set by
    the test; records every run."""

    def __init__(self, rates):
        self.rates, self.now, self.runs = dict(rates), 0.0, []

    def clock(self):
        return self.now

    def run_batches(self, start, stop, threads, loss, step):
        self.runs.append((start, stop, threads))
        self.now += (stop - start) / self.rates[threads]
        return loss + (stop - start), step + 1


def _epoch(chooser, machine, n, batch=64):
    return chooser.run(n, batch, machine.run_batches, 0)


def _share(machine, threads, since=0):
    done = [(stop - start, t) for start, stop, t in machine.runs[since:]]
    return sum(n for n, t in done if t == threads) / sum(n for n, _ in done)


def test_runs_cover_the_order_once_in_whole_batches_and_chain_loss_and_step():
    machine = Machine({2: 150_000, 1: 90_000})
    chooser = ThreadChooser(2, clock=machine.clock)
    loss, step = _epoch(chooser, machine, 1_000_003, batch=100)
    assert loss == 1_000_003 and step == len(machine.runs) > 3
    starts = [start for start, _, _ in machine.runs]
    stops = [stop for _, stop, _ in machine.runs]
    assert starts == [0] + stops[:-1] and stops[-1] == 1_000_003
    assert all(stop % 100 == 0 for stop in stops[:-1])


@pytest.mark.parametrize("fast", [1, 2])
def test_most_examples_run_on_the_faster_count(fast):
    machine = Machine({fast: 200_000, 3 - fast: 20_000})
    chooser = ThreadChooser(2, clock=machine.clock)
    for _ in range(5):
        _epoch(chooser, machine, 2_000_000)
    assert _share(machine, fast) > 0.98
    # Probes go on, ever rarer while they lose: at most one per 8 s of work at the end.
    probes = [i for i, (_, _, t) in enumerate(machine.runs) if t != fast]
    assert len(probes) >= 4
    assert machine.now / 8 - 1 <= len(probes) < machine.now / 2


@pytest.mark.parametrize("unlucky,rates,slow_runs", [
    (2, {2: 200_000, 1: 110_000}, 2),  # the warm-up and the first measured run of two threads
    (1, {2: 80_000, 1: 110_000}, 1),  # one thread's first run on the core another process spins
])
def test_an_unlucky_first_run_is_soon_corrected(unlucky, rates, slow_runs):
    machine = Machine(rates)
    run_batches, speed = machine.run_batches, rates[unlucky]

    def first_runs_slow(start, stop, threads, loss, step):
        earlier = sum(t == unlucky for _, _, t in machine.runs)
        machine.rates[unlucky] = speed / 4 if earlier < slow_runs else speed
        return run_batches(start, stop, threads, loss, step)

    chooser = ThreadChooser(2, clock=machine.clock)
    chooser.run(4_000_000, 1024, first_runs_slow, 0)
    assert _share(machine, max(rates, key=rates.get)) > 0.8


def test_two_threads_are_not_measured_before_the_new_thread_settles():
    # As measured at the start of a process (benchmarks/README.md): two threads ran about
    # 60,000 examples/s for their first ~80 ms, then 250,000; one thread 130,000.
    machine = Machine({2: 250_000, 1: 130_000})
    run_batches, two_threads_seconds = machine.run_batches, [0.0]

    def settling(start, stop, threads, loss, step):
        if threads == 2:
            machine.rates[2] = 60_000 if two_threads_seconds[0] < 0.08 else 250_000
            two_threads_seconds[0] += (stop - start) / machine.rates[2]
        return run_batches(start, stop, threads, loss, step)

    chooser = ThreadChooser(2, clock=machine.clock)
    chooser.run(131_072, 1024, settling, 0)  # an epoch of half a second
    assert _share(machine, 2) > 0.9


def test_follows_the_machine_when_another_process_takes_a_core():
    machine = Machine({2: 200_000, 1: 110_000})
    chooser = ThreadChooser(2, clock=machine.clock)
    _epoch(chooser, machine, 4_000_000)
    assert _share(machine, 2) > 0.95
    machine.rates[2] = 15_000  # busy: the thread that shares a core holds up every barrier
    since, started = len(machine.runs), machine.now
    _epoch(chooser, machine, 4_000_000)
    assert _share(machine, 1, since) > 0.9
    machine.rates[2] = 200_000  # quiet again
    since = len(machine.runs)
    _epoch(chooser, machine, 8_000_000)
    assert _share(machine, 2, since) > 0.8


def test_one_count_runs_without_probes():
    machine = Machine({1: 100_000})
    chooser = ThreadChooser(1, clock=machine.clock)
    _epoch(chooser, machine, 1_000_000)
    assert {t for _, _, t in machine.runs} == {1}


def test_first_runs_are_short_whatever_the_batch():
    machine = Machine({2: 5_000, 1: 100_000})  # a very slow first count
    chooser = ThreadChooser(2, clock=machine.clock)
    _epoch(chooser, machine, 100_000, batch=8)
    # The first run warms up and is not measured; the first measured ones are as short.
    assert [(stop - start, t) for start, stop, t in machine.runs[:3]] == [
        (T.FIRST_RUN_EXAMPLES, 2), (T.FIRST_RUN_EXAMPLES, 2), (T.FIRST_RUN_EXAMPLES, 1)]
