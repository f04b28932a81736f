"""The README's models that several test files use, defined once.

``LSTM`` is the README's scripted LSTM written as a plain module (eager); scripting a class
changes the class itself, so ``scripted_lstm()`` scripts a subclass and the plain one stays
eager for the tests that compare the two.
"""

from __future__ import annotations

import fusejit
import fusejit.nn as nn


class LSTM(nn.Module):
    """A loop over time, the outputs appended to a list (one buffer written row by row)."""

    def __init__(self, n_in: int, n_hid: int) -> None:
        super().__init__()
        self.ih = nn.Linear(n_in, 4 * n_hid)
        self.hh = nn.Linear(n_hid, 4 * n_hid)

    def forward(self, x, h, c):
        assert x.shape[-1] == self.ih.in_features, f"expected {self.ih.in_features} features"
        outs = []
        for t in range(x.shape[0]):
            i, f, g, o = (self.ih(x[t]) + self.hh(h)).chunk(4, 1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
            outs.append(h)
        return fusejit.stack(outs), h, c


def scripted_lstm() -> type:
    """A subclass of ``LSTM`` with its ``forward`` scripted (``fusejit.script`` on a class)."""

    class ScriptedLSTM(LSTM):
        forward = LSTM.forward

    return fusejit.script(ScriptedLSTM)
