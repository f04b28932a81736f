"""``fusejit.linalg``: linear algebra as ``torch.linalg`` (norms, solvers, decompositions),
batched over leading dims, on every device. The functions live in
``fusejit/eager/linalg_functions.py`` (the decompositions are op-table entries,
``fusejit/ops/linalg.py``, so they trace and save).

>>> import fusejit
>>> A = fusejit.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=fusejit.float64)
>>> x = fusejit.linalg.solve(A, fusejit.tensor([1.0, 2.0], dtype=fusejit.float64))
>>> fusejit.allclose(A @ x, fusejit.tensor([1.0, 2.0], dtype=fusejit.float64))
True
"""

from fusejit.base.errors import LinAlgError
from fusejit.eager.linalg_functions import (
    EighResult,
    LstsqResult,
    QRResult,
    SlogdetResult,
    SVDResult,
    cholesky,
    cross,
    det,
    eigh,
    eigvalsh,
    inv,
    lstsq,
    matmul,
    matrix_norm,
    matrix_rank,
    norm,
    pinv,
    qr,
    slogdet,
    solve,
    svd,
    svdvals,
    trace,
    vector_norm,
)

__all__ = [
    "LinAlgError", "cholesky", "cross", "det", "eigh", "eigvalsh", "inv", "lstsq", "matmul",
    "matrix_norm", "matrix_rank", "norm", "pinv", "qr", "slogdet", "solve", "svd", "svdvals",
    "trace", "vector_norm", "EighResult", "LstsqResult", "QRResult", "SlogdetResult",
    "SVDResult",
]  # fmt: skip
