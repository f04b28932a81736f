"""Small pieces the derivative rules (``OpDef.vjp``) of movement, indexing, sorting, statistics
and linalg ops share. Like the rules, they compute only with ``F`` (the ``fusejit`` namespace of
public functions, handed in), so a backward pass built from them records, traces and can
itself be differentiated."""

from __future__ import annotations


class Meta:
    """An operand's shape, dtype and device (what most movement rules need of it)."""

    __slots__ = ("shape", "dtype", "device")

    def __init__(self, shape, dtype, device) -> None:
        self.shape, self.dtype, self.device = tuple(shape), dtype, device

    @property
    def ndim(self) -> int:
        return len(self.shape)


def meta(ctx, i: int) -> Meta:
    """Operand ``i``'s shape, dtype and device, without reading its value: a rule that needs
    no more does not fail when the operand was written in place after the op (as PyTorch's,
    which saves only the sizes then)."""
    f = getattr(ctx, "input_meta", None)
    if f is not None:
        return Meta(*f(i))
    t = ctx.inputs[i]
    return Meta(t.shape, t.dtype, t.device)


def zeros(F, like, shape):
    """Zeros of ``shape`` with ``like``'s dtype and device."""
    return F.zeros(tuple(shape), dtype=like.dtype, device=like.device)


def sum_to(F, g, shape):
    """``g`` summed down to ``shape`` (the reverse of broadcasting ``shape`` to ``g.shape``)."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    dims = list(range(lead))
    dims += [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
    if dims:
        g = F.sum(g, dim=tuple(dims), keepdim=True)
    return F.reshape(g, shape)


def fit(F, t, dim: int, n: int):
    """``t`` cut or padded with zeros at the end of ``dim`` to ``n`` entries."""
    m = t.shape[dim]
    if m > n:
        return F.narrow(t, dim, 0, n)
    if m < n:
        shape = list(t.shape)
        shape[dim] = n - m
        return F.cat([t, zeros(F, t, shape)], dim=dim)
    return t


def fit_shape(F, t, shape):
    """``t`` cut or padded with zeros at the end of each dim to ``shape`` (same ndim)."""
    for d, n in enumerate(shape):
        t = fit(F, t, d, n)
    return t


def pad_dim(F, t, dim: int, before: int, after: int):
    """``t`` with ``before`` zeros in front and ``after`` zeros behind along ``dim``."""
    parts = []
    for k in (before, None, after):
        if k is None:
            parts.append(t)
        elif k > 0:
            shape = list(t.shape)
            shape[dim] = k
            parts.append(zeros(F, t, shape))
    return parts[0] if len(parts) == 1 else F.cat(parts, dim=dim)


def place_slice(F, t, dim: int, n: int, start: int, step: int):
    """A tensor with ``n`` entries along ``dim``: ``t``'s entries (m of them) at ``start``,
    ``start + step``, ..., zeros elsewhere (the reverse of slicing ``start::step``)."""
    m = t.shape[dim]
    if m == 0:
        shape = list(t.shape)
        shape[dim] = n
        return zeros(F, t, shape)
    if step > 1:
        shape = list(t.shape)
        shape.insert(dim + 1, step - 1)
        t = F.cat([F.unsqueeze(t, dim + 1), zeros(F, t, shape)], dim=dim + 1)
        merged = list(t.shape[:dim]) + [m * step] + list(t.shape[dim + 2 :])
        t = F.narrow(F.reshape(t, merged), dim, 0, (m - 1) * step + 1)
    return pad_dim(F, t, dim, start, n - start - t.shape[dim])


def embed_diagonal(F, g, shape, offset: int, dims):
    """A tensor of ``shape`` holding ``g``'s last dim on the ``offset``-th diagonals of the
    planes of ``dims`` (the reverse of ``diagonal``), zeros elsewhere."""
    e = F.diag_embed(g, offset, dims[0], dims[1])
    return fit_shape(F, e, shape)


def mT(F, a):  # noqa: N802 - torch's name
    """The matrix transpose of ``a`` (its last two dims swapped)."""
    return F.swapaxes(a, -1, -2)


def is_float(t) -> bool:
    return getattr(t, "dtype", None) is not None and t.dtype.is_floating_point


__all__ = ["Meta", "meta", "zeros", "sum_to", "fit", "fit_shape", "pad_dim", "place_slice",
           "embed_diagonal", "mT", "is_float"]  # fmt: skip
