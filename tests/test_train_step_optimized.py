"""``fusejit.optimize(train_step)`` (issue #20): a whole training step (``zero_grad``, forward,
``loss.backward()``, ``opt.step()``) captured as one graph (``fusejit/jit/train_step.py``).

Each test runs N steps optimized and the same N steps eager from the same initial state and
compares the losses, parameters, ``.grad`` and optimizer state. Tolerance: the optimizer's
update is bitwise eager's (its live scalars, the learning rate and bias corrections, are
computed on the host as eager computes them; ``test_update_is_bitwise_eager``); the forward
and backward kernels fuse reductions (layer norm, the loss's mean, bias gradients), which sum
in another order than numpy: ``rtol=1e-5, atol=1e-6`` per step, as
``tests/test_training_optimized.py`` allows the compiled forward and backward.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusejit
import fusejit.nn as nn
from fusejit import optim
from tests.parity_helpers import DEVICES

RTOL, ATOL = 1e-5, 1e-6
STEPS = 6


def events(step, kind):
    return [e for e in step._fusejit_executor._events if e["event"] == kind]


def mlp():
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4))


OPTIMIZERS = {
    "sgd-momentum-wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "adam-wd": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2),
    "adamw-no-wd": lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.0),
}


def make_run(make_model, make_opt, loss_fn, *, set_to_none=True, clip=None, sched=None,
             device="cpu"):  # fmt: skip
    """A fresh model and optimizer (seeded) and its step function."""
    fusejit.manual_seed(0)
    model = make_model().to(device)
    opt = make_opt(list(model.parameters()))
    scheduler = sched(opt) if sched is not None else None

    def train_step(x, y):
        opt.zero_grad(set_to_none=set_to_none)
        loss = loss_fn(model(x), y)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss

    return model, opt, scheduler, train_step


def snapshot(model, opt):
    params = [p.cpu().numpy().copy() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.cpu().numpy().copy() for p in model.parameters()]
    state = [
        {k: v.cpu().numpy().copy() for k, v in opt.state[p].items()}
        for p in model.parameters()
        if p in opt.state
    ]
    return params, grads, state


def run(optimized: bool, batches, steps=STEPS, **kw):
    model, opt, sched, fn = make_run(**kw)
    step = fusejit.optimize(fn) if optimized else fn
    losses = []
    for i in range(steps):
        x, y = batches[i % len(batches)]
        losses.append(step(x, y).item())
        if sched is not None:
            sched.step()
    return losses, snapshot(model, opt), step, opt


def assert_same(got, want, rtol=RTOL, atol=ATOL):
    (gl, (gp, gg, gs)), (wl, (wp, wg, ws)) = got, want
    np.testing.assert_allclose(gl, wl, rtol=RTOL, atol=ATOL)  # (a fused reduction)
    for a, b in zip(gp, wp, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    for a, b in zip(gg, wg, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert len(gs) == len(ws)
    for a, b in zip(gs, ws, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def batches(n=3, b=32, device="cpu"):
    fusejit.manual_seed(1)
    return [(fusejit.randn(b, 8).to(device), fusejit.randn(b, 4).to(device)) for _ in range(n)]


@pytest.mark.parametrize(
    "name,set_to_none",
    [("sgd-momentum-wd", False), ("adam-wd", True), ("adamw", True), ("adamw-no-wd", False)],
)
def test_mlp_steps_equal_eager_one_compile(name, set_to_none):
    data = batches()
    kw = dict(make_model=mlp, make_opt=OPTIMIZERS[name], loss_fn=nn.MSELoss(),
              set_to_none=set_to_none)  # fmt: skip
    want = run(False, data, **kw)
    losses, snap, step, _ = run(True, data, **kw)
    assert_same((losses, snap), want[:2])
    assert len(events(step, "specialize")) == 1, step._fusejit_executor._events
    assert not events(step, "fallback") and not events(step, "guard_failure")
    spec = step._fusejit_executor._specs[0]
    assert spec.status == "compiled"
    # the optimizer's update is in the graph: no eager call after the compile
    assert spec.eager_calls == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["sgd-momentum-wd", "adam-wd", "adamw"])
def test_update_is_bitwise_eager(name, device):
    """A loss whose gradient is exact (``sum(w * c)``: the gradient is ``c``): parameters and
    state after the steps are bitwise eager's (the update rounds as eager's)."""

    def make_model():
        m = nn.Module()
        m.w = nn.Parameter(fusejit.randn(257))
        m.forward = lambda x: m.w * x
        return m

    fusejit.manual_seed(2)
    data = [(fusejit.randn(257).to(device), fusejit.zeros(1)) for _ in range(3)]
    kw = dict(make_model=make_model, make_opt=OPTIMIZERS[name], loss_fn=lambda out, y: out.sum(),
              sched=lambda o: optim.lr_scheduler.StepLR(o, 2), device=device)  # fmt: skip
    want = run(False, data, **kw)
    got = run(True, data, **kw)
    assert_same(got[:2], want[:2], rtol=0, atol=0)
    assert len(events(got[2], "specialize")) == 1


@pytest.mark.parametrize("device", DEVICES)
def test_scheduler_lr_is_read_at_each_call(device):
    data = batches(device=device)
    kw = dict(make_model=mlp, make_opt=OPTIMIZERS["adamw"], loss_fn=nn.MSELoss(),
              sched=lambda o: optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
              device=device)  # fmt: skip
    want = run(False, data, steps=8, **kw)
    losses, snap, step, opt = run(True, data, steps=8, **kw)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**8)
    assert_same((losses, snap), want[:2])
    assert len(events(step, "specialize")) == 1  # no compile per step


def test_clip_grad_norm_inside_the_step():
    data = batches()
    kw = dict(make_model=mlp, make_opt=OPTIMIZERS["adamw"], loss_fn=nn.MSELoss(), clip=0.05)
    want = run(False, data, **kw)
    losses, snap, step, _ = run(True, data, **kw)
    assert_same((losses, snap), want[:2])
    assert len(events(step, "specialize")) == 1 and not events(step, "fallback")


def test_digits_mlp_cross_entropy():
    from tests.test_training import load_split, make_mlp

    xtr, ytr, _, _ = (fusejit.tensor(a) for a in load_split())
    data = [(xtr[i : i + 64], ytr[i : i + 64]) for i in range(0, 64 * 4, 64)]
    kw = dict(make_model=make_mlp, loss_fn=nn.CrossEntropyLoss(),
              make_opt=lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=1e-4))  # fmt: skip
    want = run(False, data, steps=8, **kw)
    losses, snap, step, _ = run(True, data, steps=8, **kw)
    assert_same((losses, snap), want[:2])
    assert len(events(step, "specialize")) == 1
    assert losses[-1] < losses[0]


def test_guards_retrace_with_the_reason():
    data = batches(1)
    model, opt, _, fn = make_run(mlp, OPTIMIZERS["adamw"], nn.MSELoss())
    step = fusejit.optimize(fn)
    x, y = data[0]
    for _ in range(4):
        step(x, y)
    assert len(events(step, "specialize")) == 1
    opt.param_groups[0]["weight_decay"] = 0.5  # a hyper-parameter the graph holds
    step(x, y)
    fails = events(step, "guard_failure")
    assert fails and "weight_decay is 0.5, traced with 0.01" in fails[-1]["detail"]
    model[0].bias.requires_grad_(False)  # another backward
    step(x, y)
    assert "requires_grad" in events(step, "guard_failure")[-1]["detail"]
    text = fusejit.explain(step)
    assert "guard failure" in text


def test_grad_none_or_tensor_is_guarded():
    """A step that zeroes the gradients at its end: entering with a ``.grad`` (set by someone
    else) fails the guard traced with None, and the step is traced again for it."""
    fusejit.manual_seed(0)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)

    def train_step(x, y):
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    step = fusejit.optimize(train_step)
    x, y = batches(1)[0]
    for _ in range(4):
        step(x, y)
    assert all(p.grad is None for p in model.parameters())
    for p in model.parameters():
        p.grad = fusejit.ones_like(p)
    step(x, y)
    assert "is a tensor, traced with None" in events(step, "guard_failure")[-1]["detail"]


def test_optimizer_state_created_in_the_step_is_not_traced():
    """``warmup=0``: the first call creates Adam's state; it runs as a warm-up call, and the
    next call is traced (its state exists)."""
    data = batches()
    kw = dict(make_model=mlp, make_opt=OPTIMIZERS["adam-wd"], loss_fn=nn.MSELoss())
    want = run(False, data, **kw)
    model, opt, _, fn = make_run(**kw)
    step = fusejit.optimize(fn, warmup=0)
    losses = [step(*data[i % 3]).item() for i in range(STEPS)]
    assert_same((losses, snapshot(model, opt)), want[:2])
    assert "creates its state" in events(step, "warmup")[0]["detail"]
    assert len(events(step, "specialize")) == 1


def _reason(step) -> str:
    fb = events(step, "fallback")
    assert fb, step._fusejit_executor._events
    return fb[0]["detail"]


def test_fallback_reasons_are_clear():
    fusejit.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 4))
    opt = optim.SGD(model.parameters(), lr=0.1)

    def with_noise(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x + 0.01 * fusejit.randn(*x.shape)), y)
        loss.backward()
        opt.step()
        return loss

    def with_item(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model.eval()(x), y)
        loss.backward()
        if loss.item() > 1e9:
            return loss
        opt.step()
        return loss

    x, y = batches(1)[0]
    for fn, want in ((with_noise, "random"), (with_item, "reads a tensor's value (item)")):
        step = fusejit.optimize(fn, warn=False)
        for _ in range(4):
            step(x, y)
        assert want in _reason(step)
        assert want in fusejit.explain(step)


def test_a_step_with_dropout_is_one_graph_and_trains_as_eager():
    """Dropout in the model: the whole step compiles (its masks drawn by ``rand_like`` nodes
    of the graph) and follows eager training from the same seed, step by step."""

    def run(optimized: bool):
        fusejit.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.3), nn.Linear(16, 4))
        opt = optim.AdamW(model.parameters(), lr=0.01)

        def step(x, y):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = fusejit.optimize(step) if optimized else step
        data = batches(6)
        fusejit.manual_seed(11)
        losses = [fn(x, y).item() for x, y in data]
        return losses, [p.detach().numpy().copy() for p in model.parameters()], fn

    want, wparams, _ = run(False)
    got, gparams, fn = run(True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(gparams, wparams):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    sigs = fusejit.explain(fn, as_dict=True)["signatures"]
    assert sigs[0]["status"] == "compiled" and "rand_like" in sigs[0]["graph"], sigs


def test_a_conv_bias_before_batchnorm_compiles_as_a_rounding_difference():
    """A convolution's bias followed by BatchNorm has a gradient that is zero up to rounding;
    AdamW's first step moves it by up to lr in a direction rounding decides, eager and compiled
    alike. The trace's state check asks float64 whether the compiled parameters are as close
    as eager's: they are, and the step compiles (it ran eagerly, refused as "the buffer of
    shape [8] written in place")."""

    def run(optimized: bool):
        model, _, _, step = make_run(
            lambda: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Flatten(), nn.Linear(8 * 6 * 6, 4)),
            lambda ps: optim.AdamW(ps, lr=1e-3, weight_decay=1e-4),
            nn.functional.cross_entropy,
        )  # fmt: skip
        fn = fusejit.optimize(step) if optimized else step
        fusejit.manual_seed(3)
        x = fusejit.randn(16, 1, 6, 6)
        y = fusejit.tensor(np.arange(16) % 4)
        losses = [fn(x, y).item() for _ in range(4)]
        return losses, dict(model.named_parameters()), fn

    want, wparams, _ = run(False)
    got, gparams, fn = run(True)
    sigs = fusejit.explain(fn, as_dict=True)["signatures"]
    assert sigs[0]["status"] == "compiled", sigs
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    bias = wparams["0.bias"].detach().numpy()
    for name, p in gparams.items():
        # the conv bias: within 2 lr of eager's per step (its direction is rounding's)
        tol = 4 * 2 * 1e-3 if name == "0.bias" else 1e-4
        np.testing.assert_allclose(p.detach().numpy(), wparams[name].detach().numpy(),
                                   atol=tol, rtol=1e-4, err_msg=name)  # fmt: skip
    assert np.isfinite(bias).all()


def test_explain_shows_forward_backward_update_and_saved_bytes():
    data = batches(1)
    _, _, _, fn = make_run(mlp, OPTIMIZERS["adamw"], nn.MSELoss())
    step = fusejit.optimize(fn)
    for _ in range(3):
        step(*data[0])
    text = fusejit.explain(step)
    assert "training step: one graph; recorded ops: forward" in text
    assert "backward" in text and "update" in text
    assert "forward values the backward reads: kept in memory" in text
    assert "bytes" in text and "live scalars" in text
    d = fusejit.explain(step, as_dict=True)
    ts = d["signatures"][0]["train_step"]
    assert ts["phases"]["forward"] > 0 and ts["phases"]["backward"] > 0
    assert ts["phases"]["update"] > 0 and ts["saved_bytes"] > 0
    assert ts["written"] == 6 * 3  # 6 parameters, the exp_avg and exp_avg_sq of each


def test_readme_training_step_example(capsys):
    """The README's optimized training step (the second example of its Training section)."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        section = f.read().split("\n## Training\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n")[2].split("```", 1)[0]
    assert "fusejit.optimize" in code and "loss.backward()" in code
    scope = {"__name__": "readme_step"}
    exec(compile(code, "README.md (Training, optimized step)", "exec"), scope)
    out = capsys.readouterr().out
    assert "compiled" in out, out
    loss = float(out.split("loss", 1)[1].split()[0])
    assert loss < 1.0
    ex = scope["train_step"]._fusejit_executor
    assert [e["event"] for e in ex._events] == ["specialize"]


def test_a_second_batch_size_traces_from_the_state_the_call_started_with():
    """The last batch of an epoch is smaller: a guard failure on its shape, a trace with the
    batch dim symbolic, which stops (the step reads a size) and traces again with it fixed.
    A trace that stops puts back what it wrote (``zero_grad`` had set ``.grad`` to None), so
    the steps equal eager's and no ``.grad`` guard fails."""
    fusejit.manual_seed(1)
    data = [(fusejit.randn(b, 8), fusejit.randn(b, 4)) for b in (32, 32, 24)]
    kw = dict(make_model=mlp, make_opt=OPTIMIZERS["adamw"], loss_fn=nn.MSELoss())
    want = run(False, data, steps=9, **kw)
    losses, snap, step, _ = run(True, data, steps=9, **kw)
    assert_same((losses, snap), want[:2])
    assert not [e for e in events(step, "guard_failure") if ".grad" in str(e["detail"])]
