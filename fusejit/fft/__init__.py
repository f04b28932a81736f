"""``fusejit.fft``: discrete Fourier transforms, as ``torch.fft``.

The functions are those of ``fusejit/eager/fft_functions.py`` (op-table entries of kind "fft":
they run on numpy.fft or cupy.fft, trace and save).

>>> import fusejit
>>> fusejit.fft.irfft(fusejit.fft.rfft(fusejit.tensor([1.0, 2.0, 3.0, 4.0]))).tolist()
[1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

from fusejit.eager.fft_functions import (
    fft,
    fft2,
    fftfreq,
    fftn,
    fftshift,
    hfft,
    ifft,
    ifft2,
    ifftn,
    ifftshift,
    ihfft,
    irfft,
    irfft2,
    irfftn,
    rfft,
    rfft2,
    rfftfreq,
    rfftn,
)  # fmt: skip

__all__ = [
    "fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "rfft2", "irfft2", "fftn", "ifftn",
    "rfftn", "irfftn", "hfft", "ihfft", "fftfreq", "rfftfreq", "fftshift", "ifftshift",
]  # fmt: skip
