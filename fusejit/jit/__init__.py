"""The JIT: capture (trace), graph IR, passes, fusion, per-target kernels, cache, runtime."""
