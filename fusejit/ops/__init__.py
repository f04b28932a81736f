"""The op table (``registry.OPS``) and its entries, one module per kind of op."""

from fusejit.ops.registry import OPS, OpDef, get_op


def call(name: str, *inputs, **attrs):
    """Run op-table op ``name`` eagerly (the form ``TracedFunction.code`` prints)."""
    from fusejit.eager.dispatch import call as _call

    return _call(name, *inputs, **attrs)


from fusejit.ops import elementwise, linalg, movement, reductions, sorting  # noqa: E402, F401 - registration

__all__ = ["OPS", "OpDef", "get_op", "call"]
