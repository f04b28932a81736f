"""The grid-size choice of large CUDA launches (no GPU needed: the logic is plain Python;
on a GPU, tests/test_cuda.py runs it with real events)."""

from fusejit.backends.cuda_tuning import GridTuner


class Stamp:
    """A finished or pending point in time (what a CUDA event records)."""

    def __init__(self, t: float, done: bool = True) -> None:
        self.t, self.done = t, done


def run(tuner: GridTuner, cost: dict, pending_last: bool = False) -> list:
    """Drive ``tuner`` as the backend does for a few calls; return the caps launched."""
    launched = []
    clock = 0.0
    for _ in range(len(tuner.caps) * tuner.rounds + 3):
        tuner.settle(lambda e: e.done, lambda a, b: b.t - a.t)
        cap, index = tuner.next_cap()
        launched.append(cap)
        if index is not None:
            start = Stamp(clock)
            clock += cost[cap]
            tuner.add(index, start, Stamp(clock, done=not pending_last))
    return launched


def test_each_candidate_is_timed_then_the_fastest_is_kept():
    t = GridTuner((32, 0, 8), rounds=2)
    launched = run(t, {32: 2.0, 0: 1.5, 8: 3.0})
    assert launched[:6] == [32, 0, 8, 32, 0, 8]
    assert t.choice == 0 and launched[6:] == [0, 0, 0]
    assert t.times == {32: 2.0, 0: 1.5, 8: 3.0}


def test_no_choice_while_the_gpu_has_not_finished():
    t = GridTuner((32, 0), rounds=1)
    launched = run(t, {32: 2.0, 0: 1.0}, pending_last=True)
    assert t.choice is None and launched[2:] == [32, 32, 32]  # the default meanwhile


def test_ties_keep_the_default():
    t = GridTuner((32, 0), rounds=1)
    run(t, {32: 1.0, 0: 1.0})
    assert t.choice == 32
