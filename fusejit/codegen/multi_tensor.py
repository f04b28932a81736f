"""Multi-tensor optimizer updates: one kernel updates every parameter of a list (the fused
``SGD`` / ``Adam`` / ``AdamW`` of ``fusejit.optim``), as numba source (CPU) and CUDA C.

The arithmetic is that of the single-tensor updates of ``fusejit/optim/algorithms.py`` (which
follow PyTorch's for-loop implementation) op by op, each step rounded to the parameter's dtype
as the eager op is: float16 computes in float32 and rounds each step back to float16 (inside
``lerp``, which eager computes in float32 and rounds once, only its result), a Python number
meets a float16 or float32 tensor as a float32, a float64 one as itself. No step is contracted
into a fused multiply-add (numba compiles without ``fastmath``; the CUDA C spells every step
with the ``_rn`` intrinsics, which nvcc never contracts), so fused results equal eager ones
bitwise on the CPU and on CUDA (sqrt and division are correctly rounded on both).

A kernel walks a work list of chunks ``(tensor, start, stop)`` of the tensors of one dtype and
device; the arrays are given by address (a table ``addrs[list, tensor]`` of the parameters,
gradients and each state). Per tensor it reads two scalars (Adam: ``-lr / bias_correction1``
and ``sqrt(bias_correction2)``, which depend on that tensor's step count) and a flag (SGD:
the momentum buffer starts as the gradient). The hyper-parameters are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusejit.base.errors import CompileError

MULTI_TENSOR_VERSION = "1"
CUDA_BLOCK = 256  # threads of a CUDA block; a block updates one chunk
CUDA_CHUNK = 16384  # elements of a chunk on CUDA (a block's threads each take 64)
CUDA_ILP = 4  # elements a CUDA thread loads before it computes


@dataclass(frozen=True)
class UpdateSpec:
    """What one multi-tensor kernel computes: the algorithm (``"sgd"`` or ``"adam"``), the
    parameters' dtype, and the options that change its program (a zero ``weight_decay`` or
    ``momentum`` has no step)."""

    algo: str
    dtype: str
    maximize: bool = False
    weight_decay: bool = False
    decoupled: bool = False  # AdamW: the weights decay, not the gradient
    momentum: bool = False  # SGD
    nesterov: bool = False  # SGD
    amsgrad: bool = False  # Adam
    lerp_from_end: bool = False  # Adam: |1 - beta1| >= 0.5, lerp computed from its end

    def __post_init__(self) -> None:
        if self.algo not in ("sgd", "adam"):
            raise CompileError(f"multi-tensor update: unknown algorithm {self.algo!r}")
        if self.dtype not in ("float16", "float32", "float64"):
            raise CompileError(f"multi-tensor update: dtype {self.dtype} is not a float dtype")

    def key(self) -> str:
        flags = "".join(
            "1" if f else "0"
            for f in (self.maximize, self.weight_decay, self.decoupled, self.momentum,
                      self.nesterov, self.amsgrad, self.lerp_from_end)
        )  # fmt: skip
        return f"{self.algo}-{self.dtype}-{flags}-v{MULTI_TENSOR_VERSION}"

    @property
    def lists(self) -> tuple:
        """The arrays of each tensor, in the order of the address table's rows."""
        if self.algo == "sgd":
            return ("param", "grad", "momentum_buffer") if self.momentum else ("param", "grad")
        names = ("param", "grad", "exp_avg", "exp_avg_sq")
        return (*names, "max_exp_avg_sq") if self.amsgrad else names

    @property
    def written(self) -> tuple:
        """The lists the kernel writes (all but the gradients)."""
        return tuple(n for n in self.lists if n != "grad")

    @property
    def scalars(self) -> tuple:
        """The hyper-parameter arguments, in order (each in the compute dtype)."""
        if self.algo == "sgd":
            return ("wd", "momentum", "one_minus_dampening", "neg_lr")
        return ("wd", "lerp_weight", "beta2", "one_minus_beta2", "eps")


def compute_dtype(dtype: str) -> str:
    """The dtype the steps of a ``dtype`` parameter compute in (float16: float32)."""
    return "float64" if dtype == "float64" else "float32"


# A program is a list of steps (destination, op, operands, rounded): ops are "neg", "add",
# "sub", "mul", "div", "sqrt", "max", "copy"; operands are variable names (the loaded
# elements p, g, m, v, x, buf; the scalars s_<name>; the per-tensor t0, t1) or earlier
# destinations. ``rounded`` is False for the steps eager computes in float32 without
# rounding to float16 (inside lerp).
def program(spec: UpdateSpec) -> list:
    """The steps of one element's update (see the comment above)."""
    S = []

    def step(dst, op, *args, rounded=True):
        S.append((dst, op, args, rounded))

    if spec.maximize:
        step("g", "neg", "g")
    if spec.algo == "sgd":
        if spec.weight_decay:
            step("wdp", "mul", "s_wd", "p")  # grad + weight_decay * param
            step("g", "add", "g", "wdp")
        if spec.momentum:
            # buf = momentum_buffer * momentum + (1 - dampening) * grad; the first step copies
            step("b1", "mul", "buf", "s_momentum")
            step("b2", "mul", "s_one_minus_dampening", "g")
            step("b3", "add", "b1", "b2")
            step("buf", "first", "g", "b3")  # the flag of the tensor picks g or b3
            if spec.nesterov:
                step("mb", "mul", "s_momentum", "buf")
                step("g", "add", "g", "mb")
            else:
                step("g", "copy", "buf")
        step("upd", "mul", "s_neg_lr", "g")  # param + (-lr) * grad
        step("p", "add", "p", "upd")
        return S
    if spec.weight_decay:
        if spec.decoupled:
            step("p", "mul", "p", "s_wd")  # s_wd holds 1 - lr * weight_decay
        else:
            step("wdp", "mul", "s_wd", "p")
            step("g", "add", "g", "wdp")
    # exp_avg = lerp(exp_avg, grad, 1 - beta1): in float32 for float16, rounded once
    step("d", "sub", "g", "m", rounded=False)
    if spec.lerp_from_end:  # end - diff * (1 - weight)
        step("dw", "mul", "d", "s_lerp_weight", rounded=False)
        step("m", "sub", "g", "dw")
    else:  # start + weight * diff
        step("dw", "mul", "s_lerp_weight", "d", rounded=False)
        step("m", "add", "m", "dw")
    # exp_avg_sq = addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2)
    step("v1", "mul", "v", "s_beta2")
    step("v2", "mul", "s_one_minus_beta2", "g")
    step("v3", "mul", "v2", "g")
    step("v", "add", "v1", "v3")
    den = "v"
    if spec.amsgrad:
        step("x", "max", "x", "v")
        den = "x"
    # denom = sqrt(.) / sqrt(bias_correction2) + eps; param = addcdiv(param, exp_avg, denom,
    # value=-step_size)
    step("r", "sqrt", den)
    step("r", "div", "r", "t1")
    step("r", "add", "r", "s_eps")
    step("q", "mul", "t0", "m")
    step("q", "div", "q", "r")
    step("p", "add", "p", "q")
    return S


_SHORT = {"param": "p", "grad": "g", "exp_avg": "m", "exp_avg_sq": "v",
          "max_exp_avg_sq": "x", "momentum_buffer": "buf"}  # fmt: skip


# ---- CPU (numba) -----------------------------------------------------------------------------
def cpu_source(spec: UpdateSpec) -> str:
    """A module with ``k_multi(lo, hi, work, addrs, tscal, flags, svals)``: updates chunks
    ``lo..hi`` of the work list (rows ``(tensor, start, stop)``); ``addrs[l, i]`` is the address
    of list ``l``'s array of tensor ``i`` (float16 as uint16 bits), ``tscal[i]`` its two
    scalars and ``flags[i]`` its flag, in the compute dtype / int64; ``svals`` the update's
    scalars (``spec.scalars``, in the compute dtype). Every argument an array or an int, so its
    machine code is stored with the entry and a new process calls it without setting up numba
    (``backends/native.py``)."""
    half = spec.dtype == "float16"
    C = f"np.{compute_dtype(spec.dtype)}"
    store = "np.uint16(0)" if half else f"{C}(0)"
    load = "_vm.h2f({})" if half else "{}"
    save = "_vm.f2h({})" if half else "{}"
    scal = [f"s_{n}" for n in spec.scalars]
    L = [
        "import numpy as np",
        "from fusejit.kernels import llvm_ops as _lo",
        *(["from fusejit.kernels import cpu_math as _vm"] if half else []),
        "",
        "",
        "def k_multi(lo, hi, work, addrs, tscal, flags, svals):",
        *[f"    {name} = svals[{k}]" for k, name in enumerate(scal)],
        "    for c in range(lo, hi):",
        "        i = work[c, 0]",
    ]
    for row, name in enumerate(spec.lists):
        L.append(f"        a_{_SHORT[name]} = _lo.ptr_from_addr(addrs[{row}, i], {store})")
    L += ["        t0 = tscal[i, 0]", "        t1 = tscal[i, 1]", "        first = flags[i] != 0"]
    L.append("        for j in range(work[c, 1], work[c, 2]):")
    ind = " " * 12
    for name in spec.lists:
        s = _SHORT[name]
        L.append(f"{ind}{s} = {load.format(f'a_{s}[j]')}")
    for dst, op, args, rounded in program(spec):
        code = _numba_op(op, args, C)
        if half and rounded and op not in ("neg", "copy", "first"):
            code = f"_vm.round_h({code})"
        L.append(f"{ind}{dst} = {code}")
    for name in spec.written:
        s = _SHORT[name]
        L.append(f"{ind}a_{s}[j] = {save.format(s)}")
    return "\n".join(L) + "\n"


def _numba_op(op: str, args: tuple, C: str) -> str:
    a = args[0]
    if op == "neg":
        return f"(-{a})"
    if op == "copy":
        return a
    if op == "first":
        return f"({args[0]} if first else {args[1]})"
    if op == "sqrt":
        return f"{C}(np.sqrt({a}))"
    b = args[1]
    if op == "max":  # NaN-propagating, as numpy's maximum
        return f"({a} if ({a} > {b}) | ({a} != {a}) else {b})"
    sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
    return f"{C}({a} {sym} {b})"


# ---- CUDA C ----------------------------------------------------------------------------------
def cuda_kernel(spec: UpdateSpec, name: str = "fj_multi") -> str:
    """The ``extern "C" __global__`` function (no prelude) for ``spec``.

    Arguments: ``tab`` (int64, on the device: the address table ``addrs[list][tensor]``, then
    the chunks ``(tensor, start, stop)``, then each tensor's two scalars as float64 bits, then
    its flag), the tensor count ``T``, then the hyper-parameters. Block ``b`` updates chunk
    ``b``; its threads stride through the chunk, so loads and stores are coalesced, each
    thread ``CUDA_ILP`` elements at a time."""
    half = spec.dtype == "float16"
    c = "double" if spec.dtype == "float64" else "float"
    st = {"float16": "fj_half", "float32": "float", "float64": "double"}[spec.dtype]
    n_lists = len(spec.lists)
    params = ", ".join(f"{c} s_{n}" for n in spec.scalars)
    L = [
        f'extern "C" __global__ void __launch_bounds__({CUDA_BLOCK}) {name}(',
        f"    const long long* __restrict__ tab, long long T, {params}) {{",
        f"  const long long* chunk = tab + {n_lists} * T + 3 * (long long)blockIdx.x;",
        "  const long long i = chunk[0], stop = chunk[2];",
        f"  const long long* ts = tab + {n_lists} * T + 3 * (long long)gridDim.x;",
        f"  const {c} t0 = ({c})__longlong_as_double(ts[2 * i]);",
        f"  const {c} t1 = ({c})__longlong_as_double(ts[2 * i + 1]);",
        "  const bool first = ts[2 * T + i] != 0;",
    ]
    for row, lname in enumerate(spec.lists):
        s = _SHORT[lname]
        L.append(f"  {st}* __restrict__ a_{s} = ({st}*)tab[{row} * T + i];")
    # each thread loads CUDA_ILP elements of every array before computing any (loads in flight
    # together), as PyTorch's and apex's multi-tensor kernels do
    lists = [(_SHORT[n], n) for n in spec.lists]
    L.append(f"  for (long long j0 = chunk[1] + threadIdx.x; j0 < stop; "
             f"j0 += {CUDA_ILP} * (long long)blockDim.x) {{")  # fmt: skip
    L.append("    " + " ".join(f"{c} r_{s}[{CUDA_ILP}];" for s, _ in lists))
    L.append("#pragma unroll")
    L.append(f"    for (int e = 0; e < {CUDA_ILP}; ++e) {{")
    L.append("      const long long j = j0 + e * (long long)blockDim.x;")
    L.append("      if (j < stop) {")
    for s, _ in lists:
        L.append(f"        r_{s}[e] = {'fj_h2f(a_' + s + '[j])' if half else 'a_' + s + '[j]'};")
    L += [
        "      }",
        "    }",
        "#pragma unroll",
        f"    for (int e = 0; e < {CUDA_ILP}; ++e) {{",
        "      const long long j = j0 + e * (long long)blockDim.x;",
        "      if (j >= stop) break;",
    ]
    for s, _ in lists:
        L.append(f"      {c} {s} = r_{s}[e];")
    declared = {s for s, _ in lists}
    for dst, op, args, rounded in program(spec):
        code = _cuda_op(op, args, c)
        if half and rounded and op not in ("neg", "copy", "first"):
            code = f"fj_round_h({code})"
        decl = "" if dst in declared else f"{c} "
        declared.add(dst)
        L.append(f"      {decl}{dst} = {code};")
    for lname in spec.written:
        s = _SHORT[lname]
        L.append(f"      a_{s}[j] = {'fj_f2h(' + s + ')' if half else s};")
    L.append("    }")
    L += ["  }", "}"]
    return "\n".join(L) + "\n"


def _cuda_op(op: str, args: tuple, c: str) -> str:
    a = args[0]
    if op == "neg":
        return f"(-{a})"
    if op == "copy":
        return a
    if op == "first":
        return f"(first ? {args[0]} : {args[1]})"
    f = "f" if c == "float" else "d"
    if op == "sqrt":
        return f"__{f}sqrt_rn({a})"
    b = args[1]
    if op == "max":
        return f"fj_rmax({a}, {b})"
    if op == "sub":  # (no __fsub_rn before CUDA 11.5's headers everywhere: add the negation)
        return f"__{f}add_rn({a}, -{b})"
    return f"__{f}{op}_rn({a}, {b})"


def cuda_source(spec: UpdateSpec, prelude: str, fp16_header: bool, name: str = "fj_multi") -> str:
    """A complete NVRTC source: the float16 macro, ``prelude`` (``codegen.cuda.prelude()``),
    the kernel."""
    head = "#define FJ_HAVE_CUDA_FP16 1\n" if fp16_header and spec.dtype == "float16" else ""
    return head + prelude + "\n" + cuda_kernel(spec, name)


def chunks(sizes, chunk: int):
    """The work list of tensors of ``sizes``: ``(tensor, start, stop)`` rows of at most
    ``chunk`` elements, in order (empty tensors have none)."""
    out = []
    for i, n in enumerate(sizes):
        for s in range(0, n, chunk):
            out.append((i, s, min(n, s + chunk)))
    return out


__all__ = ["UpdateSpec", "program", "cpu_source", "cuda_kernel", "cuda_source", "chunks",
           "compute_dtype", "CUDA_BLOCK", "CUDA_CHUNK"]  # fmt: skip
