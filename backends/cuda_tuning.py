"""Choosing the grid size of a large elementwise launch by timing it.

Why: no one grid size is best for every fused kernel. Measured on an H200 (bench/RESULTS.md):
one 16-byte chunk per thread (no cap on the grid) gives 88-97% of the copy bandwidth on gelu,
bias-gelu and adam, but 71% on lstm-cell, which reaches 93% with the grid capped at 32 blocks
per SM (threads then loop). So the first calls of a large launch try each candidate cap,
timed with CUDA events on the stream they run on, and later calls use the fastest.

A candidate is a cap in blocks per SM (0: no cap). Tuning takes ``len(caps) * rounds`` calls
that run each candidate in turn, then, without waiting for the GPU, the default (the first
candidate) until the last event has completed; the choice is the candidate with the lowest
median time. Results are identical whatever the grid: only speed depends on it.

>>> t = GridTuner((32, 0), rounds=1)
>>> t.next_cap()
(32, 0)
"""

from __future__ import annotations

import statistics

# launches of fewer elements keep the default grid (a timing would cost more than it saves)
TUNE_FROM = 1 << 20
CAPS = (32, 0, 8, 16)
ROUNDS = 2


class GridTuner:
    """The tuning state of one kernel variant at one size class."""

    def __init__(self, caps: tuple = CAPS, rounds: int = ROUNDS) -> None:
        self.caps = tuple(caps)
        self.rounds = rounds
        self.samples: list = []  # (candidate index, start event, end event)
        self.choice: int | None = None  # the chosen cap, once known
        self.times: dict = {}  # cap -> median ms, once known

    def next_cap(self) -> tuple[int, int | None]:
        """(cap to launch with, candidate index to time, or None: launch untimed)."""
        if self.choice is not None:
            return self.choice, None
        if len(self.samples) < len(self.caps) * self.rounds:
            i = len(self.samples) % len(self.caps)
            return self.caps[i], i
        return self.caps[0], None

    def add(self, index: int, start, end) -> None:
        self.samples.append((index, start, end))

    def settle(self, done, elapsed_ms) -> bool:
        """Choose once every sample has completed (``done(end)``, never waiting); True when a
        choice exists."""
        if self.choice is not None:
            return True
        if len(self.samples) < len(self.caps) * self.rounds or not done(self.samples[-1][2]):
            return False
        per: dict = {}
        for i, start, end in self.samples:
            per.setdefault(i, []).append(elapsed_ms(start, end))
        self.times = {self.caps[i]: statistics.median(ts) for i, ts in sorted(per.items())}
        best = min(sorted(per), key=lambda i: statistics.median(per[i]))
        self.choice = self.caps[best]
        self.samples.clear()  # (the events)
        return True
