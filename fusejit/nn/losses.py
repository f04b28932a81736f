"""Loss functions, as ``torch.nn.functional``'s (names, arguments, defaults, reductions, the
weighted mean of ``cross_entropy`` / ``nll_loss``), and their modules (``nn.CrossEntropyLoss``
...).

Each is a composition of table ops (``log_softmax``, ``gather``, ``where``, reductions), so it
traces, fuses and differentiates like the ops it is made of.

>>> import fusejit
>>> from fusejit import nn
>>> logits = fusejit.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
>>> round(nn.cross_entropy(logits, fusejit.tensor([0, 2])).item(), 4)
0.1672
"""

from __future__ import annotations

from fusejit.base.errors import DeviceError, DTypeError, ShapeError, fmt_shape
from fusejit.eager import dispatch, recording
from fusejit.eager.composites import clamp_min
from fusejit.eager.elementwise import abs as _abs
from fusejit.eager.elementwise import exp, log, log1p, maximum, minimum, sqrt, where
from fusejit.eager.indexing import gather, take
from fusejit.eager.reductions import log_softmax, mean, sum
from fusejit.eager.tensor import Tensor
from fusejit.nn.modules import Module
from fusejit.ops.losses import CROSS_ENTROPY

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "cosine_embedding_loss", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
    "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "CosineEmbeddingLoss",
]  # fmt: skip

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(name: str, reduction: str, size_average=None, reduce=None, extra=()) -> str:
    """The reduction, from the legacy ``size_average`` / ``reduce`` flags when either is given
    (as PyTorch), checked."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    if reduction not in _REDUCTIONS + tuple(extra):
        raise ValueError(f"{name}: {reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    return loss


def _tensor(name: str, x, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: {what} must be a tensor, got {type(x).__name__}")
    return x


def _float(name: str, x, what: str = "input") -> Tensor:
    _tensor(name, x, what)
    if not x.dtype.is_floating_point or x.dtype.kind == "c":
        raise DTypeError(f"{name}: {what} must be a float tensor, got {x.dtype.name}")
    return x


def _same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"{name}: target of shape {fmt_shape(b.shape)} must have the input's shape "
            f"{fmt_shape(a.shape)}"
        )


def _class_weight(name: str, weight, logp: Tensor, class_dim: int):
    """``weight`` checked (one float per class) and shaped to broadcast along ``class_dim``."""
    if weight is None:
        return None
    _float(name, weight, "weight")
    n = logp.shape[class_dim]
    if weight.shape != (n,):
        raise ShapeError(
            f"{name}: weight of shape {fmt_shape(weight.shape)} must have one value per class ({n})"
        )
    if weight.device is not logp.device:
        raise DeviceError(f"{name}: weight is on {weight.device}, input on {logp.device}")
    return weight.reshape(tuple(n if d == class_dim else 1 for d in range(logp.ndim)))


def _check_index_target(name: str, input: Tensor, target: Tensor) -> int:
    """The class dim of ``input`` (1, or 0 for an input of one sample), after checking that
    ``target`` holds integer class indices of the input's shape without that dim."""
    if input.ndim == 0:
        raise ShapeError(f"{name}: input must have at least one dim (the classes), got a 0-d one")
    if target.dtype.kind not in "iu":
        raise DTypeError(
            f"{name}: target must hold class indices (an integer tensor, int64 as PyTorch's) "
            f"or class probabilities of the input's shape, got {target.dtype.name} of shape "
            f"{fmt_shape(target.shape)} for an input of shape {fmt_shape(input.shape)}"
        )
    class_dim = 0 if input.ndim == 1 else 1
    want = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape != want:
        raise ShapeError(
            f"{name}: expected target of shape {fmt_shape(want)} for an input of shape "
            f"{fmt_shape(input.shape)}, got {fmt_shape(target.shape)}"
        )
    if target.device is not input.device:
        raise DeviceError(f"{name}: target is on {target.device}, input on {input.device}")
    return class_dim


def _none_ignored(target: Tensor, ignore_index: int) -> bool:
    """Whether ``target``, a non-empty CPU tensor outside a trace, holds no ``ignore_index``
    (a check of its values: on a GPU it would wait for the device, and a trace must record the
    general form, which serves every target)."""
    return (
        target.device.type == "cpu"
        and recording.TRACER is None
        and target._data.size > 0
        and not (target._data == ignore_index).any()
    )


def _nll(name, logp, target, weight, ignore_index, reduction, class_dim):
    """``nll_loss`` of log-probabilities ``logp``: the loss per element, or the reduction with
    PyTorch's weighted mean (the sum divided by the summed weights of the targets not
    ignored)."""
    if weight is None and _none_ignored(target, ignore_index):
        # no target is ignored: each loss is its picked log-probability, and the mean divides
        # by the count; the same values as below (the same sum, divided by the same count) in
        # a third of the ops, each a node for backward to walk
        picked = gather(logp, class_dim, target.unsqueeze(class_dim))
        if reduction == "none":
            return -picked.squeeze(class_dim)
        return -(sum(picked) if reduction == "sum" else mean(picked))
    keep = target != ignore_index
    safe = where(keep, target, 0)
    picked = gather(logp, class_dim, safe.unsqueeze(class_dim)).squeeze(class_dim)
    w = keep.to(logp.dtype) if weight is None else where(keep, take(weight, safe), 0.0)
    loss = -(picked * w) if weight is not None else where(keep, -picked, 0.0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return sum(loss)
    return sum(loss) / sum(w)


def nll_loss(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """The negative log-likelihood loss of log-probabilities ``input`` (N, C, d1, ...) or (C)
    for class indices ``target``, as ``torch.nn.functional.nll_loss``.

    >>> import fusejit
    >>> logp = fusejit.tensor([[-0.5, -1.0], [-2.0, -0.1]])
    >>> fusejit.nn.nll_loss(logp, fusejit.tensor([1, 0]), reduction="none").tolist()
    [1.0, 2.0]
    """
    name = "nll_loss"
    reduction = _reduction(name, reduction, size_average, reduce)
    _float(name, input)
    _tensor(name, target, "target")
    class_dim = _check_index_target(name, input, target)
    w = _class_weight(name, weight, input, class_dim)
    return _nll(
        name, input, target, None if w is None else weight, ignore_index, reduction, class_dim
    )


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """The cross entropy between logits ``input`` (N, C, d1, ...) or (C) and ``target``: class
    indices (N, d1, ...) or class probabilities (the input's shape), as
    ``torch.nn.functional.cross_entropy`` (``weight`` per class, ``ignore_index``,
    ``label_smoothing``, the weighted mean).

    >>> import fusejit
    >>> x = fusejit.tensor([[1.0, 2.0, 3.0]])
    >>> round(fusejit.nn.cross_entropy(x, fusejit.tensor([2])).item(), 4)
    0.4076
    >>> round(fusejit.nn.cross_entropy(x, fusejit.tensor([[0.0, 0.0, 1.0]])).item(), 4)
    0.4076
    """
    name = "cross_entropy"
    reduction = _reduction(name, reduction, size_average, reduce)
    _float(name, input)
    _tensor(name, target, "target")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"{name}: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}"
        )
    if input.ndim == 0:
        raise ShapeError(f"{name}: input must have at least one dim (the classes), got a 0-d one")
    class_dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_dim]
    if target.dtype.is_floating_point and target.shape == input.shape:
        return _cross_entropy_probs(name, input, target, weight, reduction, label_smoothing)
    class_dim = _check_index_target(name, input, target)
    if (
        weight is None
        and label_smoothing == 0.0
        and input.ndim <= 2
        and _none_ignored(target, ignore_index)
    ):
        # one op (one autograd node, one rule for the backward), the composition's values
        return dispatch.apply(CROSS_ENTROPY, (input, target), {"reduce": reduction})
    logp = log_softmax(input, class_dim)
    w = _class_weight(name, weight, input, class_dim)
    nll = _nll(name, logp, target, weight, ignore_index, reduction, class_dim)
    if label_smoothing == 0.0:
        return nll
    keep = target != ignore_index
    smooth = -sum(logp if w is None else logp * w, class_dim)
    smooth = where(keep, smooth, 0.0)
    if reduction == "mean":
        if weight is None:
            smooth = sum(smooth) / sum(keep)
        else:
            smooth = sum(smooth) / sum(where(keep, take(weight, where(keep, target, 0)), 0.0))
    elif reduction == "sum":
        smooth = sum(smooth)
    return (1 - label_smoothing) * nll + smooth * (label_smoothing / n_classes)


def _cross_entropy_probs(name, input, target, weight, reduction, label_smoothing):
    class_dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_dim]
    if target.device is not input.device:
        raise DeviceError(f"{name}: target is on {target.device}, input on {input.device}")
    logp = log_softmax(input, class_dim)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + (label_smoothing / n_classes)
    w = _class_weight(name, weight, input, class_dim)
    prod = logp * target if w is None else logp * target * w
    if reduction == "none":
        return -sum(prod, class_dim)
    if reduction == "sum":
        return -sum(prod)
    if input.numel() == 0:
        return -sum(prod) * float("nan")
    return -sum(prod) / (input.numel() / n_classes)


def _pointwise_pair(name, input, target):
    _float(name, input)
    _tensor(name, target, "target")
    if target.shape != input.shape:
        # PyTorch broadcasts here with a warning; a mismatch is almost always a bug
        import warnings

        warnings.warn(
            f"{name}: using a target size ({fmt_shape(target.shape)}) that is different to the "
            f"input size ({fmt_shape(input.shape)}); they are broadcast, which is likely not "
            "what you want",
            stacklevel=3,
        )
    return input - target


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """The mean squared error, as ``torch.nn.functional.mse_loss``.

    >>> import fusejit
    >>> fusejit.nn.mse_loss(fusejit.tensor([1.0, 2.0]), fusejit.tensor([0.0, 4.0])).item()
    2.5
    """
    reduction = _reduction("mse_loss", reduction, size_average, reduce)
    d = _pointwise_pair("mse_loss", input, target)
    return _reduce(d * d, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """The mean absolute error, as ``torch.nn.functional.l1_loss``.

    >>> import fusejit
    >>> fusejit.nn.l1_loss(fusejit.tensor([1.0, 2.0]), fusejit.tensor([0.0, 4.0])).item()
    1.5
    """
    reduction = _reduction("l1_loss", reduction, size_average, reduce)
    return _reduce(_abs(_pointwise_pair("l1_loss", input, target)), reduction)


def smooth_l1_loss(
    input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta`` (the L1 loss when
    ``beta`` is 0), as ``torch.nn.functional.smooth_l1_loss``.

    >>> import fusejit
    >>> x, y = fusejit.tensor([0.5, 3.0]), fusejit.zeros(2)
    >>> fusejit.nn.smooth_l1_loss(x, y, reduction="none").tolist()
    [0.125, 2.5]
    """
    name = "smooth_l1_loss"
    reduction = _reduction(name, reduction, size_average, reduce)
    if beta < 0:
        raise ValueError(f"{name}: beta must be non-negative, got {beta}")
    d = _abs(_pointwise_pair(name, input, target))
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """``0.5 * d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 * delta)``, as
    ``torch.nn.functional.huber_loss``.

    >>> import fusejit
    >>> x, y = fusejit.tensor([0.5, 3.0]), fusejit.zeros(2)
    >>> fusejit.nn.huber_loss(x, y, reduction="none", delta=2.0).tolist()
    [0.125, 4.0]
    """
    name = "huber_loss"
    reduction = _reduction(name, reduction)
    if delta <= 0:
        raise ValueError(f"{name}: delta must be positive, got {delta}")
    d = _abs(_pointwise_pair(name, input, target))
    return _reduce(where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def _elementwise_weight(name, weight, loss):
    if weight is None:
        return loss
    _tensor(name, weight, "weight")
    return loss * weight


def binary_cross_entropy(
    input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    """The binary cross entropy of probabilities ``input`` and targets in [0, 1], its logs
    clamped to >= -100 (so a probability of 0 or 1 gives a finite loss), as
    ``torch.nn.functional.binary_cross_entropy``.

    >>> import fusejit
    >>> p, y = fusejit.tensor([0.5, 1.0]), fusejit.tensor([1.0, 0.0])
    >>> [round(v, 4) for v in fusejit.nn.binary_cross_entropy(p, y, reduction="none").tolist()]
    [0.6931, 100.0]
    """
    name = "binary_cross_entropy"
    reduction = _reduction(name, reduction, size_average, reduce)
    _float(name, input)
    _float(name, target, "target")
    if target.shape != input.shape:
        raise ValueError(
            f"{name}: Using a target size ({fmt_shape(target.shape)}) that is different to the "
            f"input size ({fmt_shape(input.shape)}) is deprecated. Please ensure they have the "
            "same size."
        )
    loss = (target - 1) * maximum(log1p(-input), -100.0) - target * maximum(log(input), -100.0)
    return _reduce(_elementwise_weight(name, weight, loss), reduction)


def binary_cross_entropy_with_logits(
    input,
    target,
    weight=None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    pos_weight=None,
) -> Tensor:
    """The binary cross entropy of ``sigmoid(input)`` computed stably from the logits, with
    ``pos_weight`` weighting the positive term, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    >>> import fusejit
    >>> x, y = fusejit.tensor([0.0, 200.0]), fusejit.tensor([1.0, 0.0])
    >>> [round(v, 4) for v in fusejit.nn.binary_cross_entropy_with_logits(
    ...     x, y, reduction="none").tolist()]
    [0.6931, 200.0]
    """
    name = "binary_cross_entropy_with_logits"
    reduction = _reduction(name, reduction, size_average, reduce)
    _float(name, input)
    _float(name, target, "target")
    if target.shape != input.shape:
        raise ValueError(
            f"{name}: Target size ({fmt_shape(target.shape)}) must be the same as input size "
            f"({fmt_shape(input.shape)})"
        )
    log_sigmoid = minimum(input, 0.0) - log1p(exp(-_abs(input)))
    if pos_weight is not None:
        _tensor(name, pos_weight, "pos_weight")
        log_sigmoid = log_sigmoid * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * input - log_sigmoid
    return _reduce(_elementwise_weight(name, weight, loss), reduction)


def kl_div(
    input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False
) -> Tensor:
    """The Kullback-Leibler divergence of ``target`` from log-probabilities ``input``:
    ``target * (log(target) - input)`` (0 where target is 0), or with ``log_target``,
    ``exp(target) * (target - input)``; ``reduction="batchmean"`` divides the sum by the batch
    size (the mathematically right mean), as ``torch.nn.functional.kl_div``.

    >>> import fusejit
    >>> logq = fusejit.tensor([0.25, 0.75]).log()
    >>> p = fusejit.tensor([0.5, 0.5])
    >>> round(fusejit.nn.kl_div(logq, p, reduction="sum").item(), 4)
    0.1438
    """
    name = "kl_div"
    reduction = _reduction(name, reduction, size_average, reduce, extra=("batchmean",))
    _float(name, input)
    _float(name, target, "target")
    if log_target:
        loss = exp(target) * (target - input)
    else:
        loss = where(target == 0, 0.0, target * log(target)) - target * input
    if reduction == "batchmean":
        return sum(loss) / input.shape[0] if input.ndim else sum(loss)
    return _reduce(loss, reduction)


def cosine_embedding_loss(
    input1,
    input2,
    target,
    margin: float = 0.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """``1 - cos(x1, x2)`` where ``target`` is 1, ``max(0, cos(x1, x2) - margin)`` where it is
    -1 (the cosine along the last dim), as ``torch.nn.functional.cosine_embedding_loss``.

    >>> import fusejit
    >>> a, b = fusejit.tensor([[1.0, 0.0], [1.0, 1.0]]), fusejit.tensor([[0.0, 1.0], [1.0, 1.0]])
    >>> fusejit.nn.cosine_embedding_loss(a, b, fusejit.tensor([1, -1]), reduction="none").tolist()
    [1.0, 1.0]
    """
    name = "cosine_embedding_loss"
    reduction = _reduction(name, reduction, size_average, reduce)
    _float(name, input1, "input1")
    _float(name, input2, "input2")
    _tensor(name, target, "target")
    nd = target.ndim
    if nd not in (0, 1):
        raise ShapeError(f"{name}: 0D or 1D target tensor expected, multi-target not supported")
    if input1.ndim != nd + 1 or input2.ndim != nd + 1:
        raise ShapeError(
            f"{name}: {nd}D target tensor expects {nd + 1}D input tensors, but found inputs "
            f"with sizes {fmt_shape(input1.shape)} and {fmt_shape(input2.shape)}"
        )
    eps = 1e-12
    prod = sum(input1 * input2, nd)
    mag1 = sum(input1 * input1, nd) + eps
    mag2 = sum(input2 * input2, nd) + eps
    cos = prod / sqrt(mag1 * mag2)
    pos = where(target == 1, 1 - cos, 0.0)
    neg = where(target == -1, clamp_min(cos - margin, 0.0), 0.0)
    return _reduce(pos + neg, reduction)


# -- modules ---------------------------------------------------------------------------------


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(
            type(self).__name__, reduction, size_average, reduce, extra=("batchmean",)
        )

    def extra_repr(self) -> str:
        return ""


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """``cross_entropy`` as a module (``weight`` is a buffer).

    >>> import fusejit
    >>> loss = fusejit.nn.CrossEntropyLoss(label_smoothing=0.1)
    >>> round(loss(fusejit.tensor([[1.0, 2.0, 3.0]]), fusejit.tensor([2])).item(), 4)
    0.5076
    """

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    """``nll_loss`` as a module."""

    def __init__(
        self,
        weight=None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class MSELoss(_Loss):
    """``mse_loss`` as a module."""

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """``l1_loss`` as a module."""

    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``smooth_l1_loss`` as a module."""

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """``huber_loss`` as a module."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """``binary_cross_entropy`` as a module."""

    def forward(self, input, target):
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``binary_cross_entropy_with_logits`` as a module (``weight``, ``pos_weight``:
    buffers)."""

    def __init__(
        self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class KLDivLoss(_Loss):
    """``kl_div`` as a module."""

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CosineEmbeddingLoss(_Loss):
    """``cosine_embedding_loss`` as a module."""

    def __init__(
        self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return cosine_embedding_loss(
            input1, input2, target, margin=self.margin, reduction=self.reduction
        )
