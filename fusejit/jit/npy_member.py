"""Reading one ``.npy`` member of an archive within a byte budget, allocating once.

``numpy.load`` allocates what a file's header claims before it compares anything, and reads a
zip member into memory before it parses it (twice the tensor's size at its peak). Here the
header is read first and checked against what the manifest says and against the member's
stated size; only then is the array allocated, once, and filled from the stream in chunks.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy

CHUNK = 1 << 20  # bytes read from the stream at a time
MAX_HEADER = 10_000  # numpy's own limit on a header's size


class NpyError(ValueError):
    """A member that is not the ``.npy`` file the manifest describes; the message says why."""


def read_npy(f: BinaryIO, size: int, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """The array in the ``.npy`` stream ``f`` of ``size`` bytes, which must hold ``dtype`` and
    ``shape`` (C or Fortran order; returned C-ordered) and nothing more.

    >>> import io, numpy as np
    >>> b = io.BytesIO(); np.save(b, np.arange(3.0))
    >>> read_npy(io.BytesIO(b.getvalue()), len(b.getvalue()), np.dtype(float), (3,))
    array([0., 1., 2.])
    """
    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, got_dtype = npy.read_array_header_1_0(f, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            got_shape, fortran, got_dtype = npy.read_array_header_2_0(f, max_header_size=MAX_HEADER)
        else:
            raise NpyError(f".npy format version {version} is not read (1.0 and 2.0 are)")
    except NpyError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise NpyError(f"not a valid .npy file ({str(e)[:80]})") from None
    if got_dtype != dtype or tuple(got_shape) != tuple(shape):
        raise NpyError(f"it holds {got_dtype}{list(got_shape)}, the manifest says "
                       f"{dtype}{list(shape)}")  # fmt: skip
    n_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    header_end = f.tell()
    if header_end + n_bytes != size:
        raise NpyError(f"it is {size} bytes, a header of {header_end} bytes and "
                       f"{n_bytes} bytes of data make {header_end + n_bytes}")  # fmt: skip
    # (the array is allocated once the sizes agree: the caller has checked n_bytes)
    arr = np.empty(tuple(reversed(shape)) if fortran else shape, dtype)
    flat = memoryview(arr.reshape(-1).view(np.uint8)) if n_bytes else memoryview(b"")
    done = 0
    while done < n_bytes:
        chunk = f.read(min(CHUNK, n_bytes - done))
        if not chunk:
            raise NpyError(f"it ends after {done} of {n_bytes} bytes of data")
        flat[done : done + len(chunk)] = chunk
        done += len(chunk)
    return np.ascontiguousarray(arr.T) if fortran else arr


__all__ = ["NpyError", "read_npy"]
