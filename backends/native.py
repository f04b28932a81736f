"""CPU kernels loaded from their cache entry as machine code, without numba.

numba loads a kernel from its own disk cache only after setting up its whole compiler (the
typing and lowering registries: 300-450 ms in a new process on the 2-core development machine,
``bench/RESULTS.md``). So when numba compiles a specialization of a kernel function, the entry
also gets that specialization's machine code as a plain object file, ``native/<fn>.<n>.o``,
and its description, ``native/<fn>.<n>.json`` (both signed into the entry's manifest like any
entry file: a damaged one makes the entry corrupt, rebuilt). The object holds numba's compiled
function, made internal, and one entry point, a Python builtin function (``METH_FASTCALL``)
that checks each argument against the specialization (an ``ndarray`` of the dtype, rank,
layout, alignment and writability it was compiled for; an ``int``) and calls it with the GIL
released. A later process loads it with llvmlite's MCJIT (tens of ms with llvmlite's import)
and makes the builtin with ``PyCFunction_NewEx``; a call costs what numba's dispatcher's does
or less. numba is imported only when a call matches no stored specialization (then numba
compiles or loads it as before) or a kernel raises (numba runs it again to raise its error).

Only what numba's compiled code can do without numba's runtime is stored: arguments that are
arrays or 64-bit integers, and code whose outside references all resolve in this process (the
C and math libraries, Python's C API). The arrays passed carry no NRT meminfo (as numba's own
``cfunc`` arrays), so the kernel's reference counting on them does nothing; the two runtime
functions a kernel that makes a scratch array calls are defined in the object
(``_RUNTIME_IR``). Anything else keeps numba's path, as does an llvmlite whose LLVM predates
opaque pointers (the entry point's IR does not parse there: nothing is stored).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import json
import logging
import os
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fusejit.store import atomic_write

log = logging.getLogger("fusejit")

FOLDER = "native"  # inside a kernel's entry
FORMAT = 1
MISMATCH = 1000  # the entry point's status when an argument does not match the specialization
# numba's runtime functions that compiled code calls to make an array (``np.empty`` of a scratch
# row) and free it, defined in the object itself (internal: numba's own kernels in a process
# keep numba's): a meminfo (numba's ``NRT_MemInfo`` layout: refct, dtor, dtor_info, data,
# size) and its aligned data in one malloc'd block, freed whole when its count falls to zero.
# The arrays passed in carry no meminfo, so only these blocks ever reach the free.
_RUNTIME_IR = """
declare ptr @malloc(i64)
declare void @free(ptr)
define ptr @NRT_MemInfo_alloc_aligned(i64 %size, i32 %align) {
entry:
  %a0 = zext i32 %align to i64
  %small = icmp ult i64 %a0, 8
  %a = select i1 %small, i64 8, i64 %a0
  %t0 = add i64 %size, %a
  %total = add i64 %t0, 48
  %mi = call ptr @malloc(i64 %total)
  %null = icmp eq ptr %mi, null
  br i1 %null, label %fail, label %ok
fail:
  ret ptr null
ok:
  %b = getelementptr i8, ptr %mi, i64 48
  %bi = ptrtoint ptr %b to i64
  %am1 = sub i64 %a, 1
  %up = add i64 %bi, %am1
  %mask = xor i64 %am1, -1
  %di = and i64 %up, %mask
  %data = inttoptr i64 %di to ptr
  store i64 1, ptr %mi
  %f1 = getelementptr i8, ptr %mi, i64 8
  store ptr null, ptr %f1
  %f2 = getelementptr i8, ptr %mi, i64 16
  store ptr null, ptr %f2
  %f3 = getelementptr i8, ptr %mi, i64 24
  store ptr %data, ptr %f3
  %f4 = getelementptr i8, ptr %mi, i64 32
  store i64 %size, ptr %f4
  %f5 = getelementptr i8, ptr %mi, i64 40
  store ptr null, ptr %f5
  ret ptr %mi
}
define void @NRT_MemInfo_call_dtor(ptr %mi) {
entry:
  call void @free(ptr %mi)
  ret void
}
"""
# numpy's array struct (numpy/ndarraytypes.h, PyArrayObject_fields: the same in numpy 1 and 2)
_DATA, _ND, _DIMS, _STRIDES, _DESCR, _FLAGS = 16, 24, 32, 40, 56, 64
_C_CONTIGUOUS, _ALIGNED, _WRITEABLE = 0x1, 0x100, 0x400


# The entry point reads ``ob_type`` at offset 8 of an object: true of CPython's default builds,
# not of a free-threaded or a debug (Py_TRACE_REFS) one, where nothing is stored or loaded.
@functools.cache
def abi_ok() -> bool:
    import sysconfig

    return (
        sys.implementation.name == "cpython"
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
        and not hasattr(sys, "gettotalrefcount")
        and ctypes.sizeof(ctypes.c_void_p) == 8
    )


# ---- writing (in a process where numba compiled the kernel) -----------------------------------
class Unsupported(Exception):
    """A specialization this module does not store (numba's path serves it)."""


def save(folder: Path, fname: str, cres, source: str) -> bool:
    """Store numba's compile result ``cres`` of the kernel function ``fname``, compiled from
    the module source of SHA-256 ``source`` (hex), in the entry ``folder`` (under its lock:
    ``store.adding_files``); False when it cannot be stored."""
    if not abi_ok():
        return False
    try:
        obj, meta = _build(cres, f"{folder.name}.{fname}")
    except Exception as e:  # (unsupported arguments or references, an llvmlite difference)
        log.debug("fusejit: no native code for %s of %s: %s", fname, folder, e)
        return False
    meta["source"] = source
    d = folder / FOLDER
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        stored = glob.glob(os.path.join(glob.escape(str(d)), f"{fname}.*.json"))
        for path in stored:  # (another process stored this specialization first)
            with open(path, "rb") as f:
                if json.loads(f.read()).get("args") == meta["args"]:
                    return True
        n = len(stored)
        atomic_write(d / f"{fname}.{n}.o", obj)
        atomic_write(d / f"{fname}.{n}.json", json.dumps(meta, sort_keys=True).encode())
    except OSError:
        return False
    return True


def _build(cres, name: str) -> tuple[bytes, dict]:
    import llvmlite.binding as llvm
    from numba.core import types
    from numba.np.numpy_support import as_dtype

    args = []
    for t in cres.signature.args:
        if isinstance(t, types.Array) and t.layout in ("C", "A") and t.aligned:
            args.append(["array", as_dtype(t.dtype).str, t.ndim, t.layout, t.mutable])
        elif t == types.int64:
            args.append(["int64"])
        else:
            raise Unsupported(f"argument type {t}")
    lib = cres.library
    inner = cres.fndesc.llvm_func_name
    mod = llvm.parse_assembly(lib.get_llvm_str())
    fn = mod.get_function(inner)
    params = [str(a.type) for a in fn.arguments]
    want = ["ptr", "ptr"]  # (the return slot, the exception slot)
    for a in args:
        want += (
            ["i64"]
            if a[0] == "int64"
            else ["ptr", "ptr", "i64", "i64", "ptr"] + ["i64"] * (2 * a[2])
        )
    if params != want:
        raise Unsupported(f"parameters {params}")
    entry = f"fusejit_{name}".replace(".", "_")
    wrapper = llvm.parse_assembly(_entry_ir(entry, inner, args))
    wrapper.triple, wrapper.data_layout = mod.triple, mod.data_layout
    mod.link_in(wrapper)
    for f in mod.functions:  # (numba's runtime functions it calls, made here: _RUNTIME_IR)
        if f.is_declaration and f.name.startswith("NRT_"):
            runtime = llvm.parse_assembly(_RUNTIME_IR)
            runtime.triple, runtime.data_layout = mod.triple, mod.data_layout
            mod.link_in(runtime)
            break
    keep = {entry, f"{entry}.expect"}
    for g in [*mod.functions, *mod.global_variables]:
        if not g.is_declaration and g.name not in keep:
            g.linkage = "internal"
    tm = lib.codegen._tm
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options())
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_global_dead_code_eliminate_pass()
    mpm.run(mod, pb)
    mod.verify()
    obj = tm.emit_object(mod)
    needs = sorted(undefined_symbols(obj))
    for s in needs:
        if not _resolves(s):
            raise Unsupported(f"reference to {s}")
    meta = {
        "format": FORMAT,
        "machine": list(lib.codegen.magic_tuple()),
        "entry": entry,
        "args": args,
        "needs": needs,
    }
    return obj, meta


def _entry_ir(entry: str, inner: str, args: list) -> str:
    """LLVM IR of the entry point, a Python builtin function of the METH_FASTCALL convention,
    ``PyObject *entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs)``: checks each
    argument (``expect`` holds the addresses of ``ndarray``, ``int`` and each array argument's
    dtype object, set when loaded), calls numba's function with the GIL released (the kernels
    are ``nogil``: a split launch runs on several threads at once) and returns its status as a
    Python int, ``MISMATCH`` when an argument is not what the code was compiled for."""
    n_arr = sum(a[0] == "array" for a in args)
    slots = n_arr + 2
    table = f'@"{entry}.expect"'

    def expect(i: int, name: str) -> str:
        return (f"  {name} = load ptr, ptr getelementptr ([{slots} x ptr], ptr {table}, i64 0, "
                f"i64 {i})")  # fmt: skip

    call, body = ["ptr %ret", "ptr %exc"], []
    k = 0
    for j, a in enumerate(args):
        o = f"%o{j}"
        body += [
            f"  %op{j} = getelementptr ptr, ptr %args, i64 {j}",
            f"  {o} = load ptr, ptr %op{j}",
            f"  %typ{j} = getelementptr i8, ptr {o}, i64 8",
            f"  %ty{j} = load ptr, ptr %typ{j}",
        ]
        if a[0] == "int64":
            body += [
                expect(1, f"%xt{j}"),
                f"  %c{j} = icmp eq ptr %ty{j}, %xt{j}",
                f"  br i1 %c{j}, label %int{j}, label %bad",
                f"int{j}:",
                f"  %v{j} = call i64 @PyLong_AsLongLong(ptr {o})",
                f"  %m{j} = icmp eq i64 %v{j}, -1",
                f"  br i1 %m{j}, label %err{j}, label %ok{j}",
                f"err{j}:",
                f"  %e{j} = call ptr @PyErr_Occurred()",
                f"  %ne{j} = icmp eq ptr %e{j}, null",
                f"  br i1 %ne{j}, label %ok{j}, label %clear",
                f"ok{j}:",
            ]
            call.append(f"i64 %v{j}")
            continue
        _, dtype, ndim, layout, mutable = a
        mask = _ALIGNED | (_C_CONTIGUOUS if layout == "C" else 0) | (_WRITEABLE if mutable else 0)
        body += [
            expect(0, f"%xt{j}"),
            expect(k + 2, f"%xd{j}"),
            f"  %ndp{j} = getelementptr i8, ptr {o}, i64 {_ND}",
            f"  %nd{j} = load i32, ptr %ndp{j}",
            f"  %dep{j} = getelementptr i8, ptr {o}, i64 {_DESCR}",
            f"  %de{j} = load ptr, ptr %dep{j}",
            f"  %flp{j} = getelementptr i8, ptr {o}, i64 {_FLAGS}",
            f"  %fl{j} = load i32, ptr %flp{j}",
            f"  %c1{j} = icmp eq ptr %ty{j}, %xt{j}",
            f"  %c2{j} = icmp eq i32 %nd{j}, {ndim}",
            f"  %c3{j} = icmp eq ptr %de{j}, %xd{j}",
            f"  %mk{j} = and i32 %fl{j}, {mask}",
            f"  %c4{j} = icmp eq i32 %mk{j}, {mask}",
            f"  %d1{j} = and i1 %c1{j}, %c2{j}",
            f"  %d2{j} = and i1 %c3{j}, %c4{j}",
            f"  %ok{j} = and i1 %d1{j}, %d2{j}",
            f"  br i1 %ok{j}, label %arr{j}, label %bad",
            f"arr{j}:",
            f"  %dap{j} = getelementptr i8, ptr {o}, i64 {_DATA}",
            f"  %da{j} = load ptr, ptr %dap{j}",
            f"  %dpp{j} = getelementptr i8, ptr {o}, i64 {_DIMS}",
            f"  %dp{j} = load ptr, ptr %dpp{j}",
            f"  %spp{j} = getelementptr i8, ptr {o}, i64 {_STRIDES}",
            f"  %sp{j} = load ptr, ptr %spp{j}",
        ]
        shapes, strides = [], []
        size = "1"
        for d in range(ndim):
            body += [
                f"  %shp{j}.{d} = getelementptr i64, ptr %dp{j}, i64 {d}",
                f"  %sh{j}.{d} = load i64, ptr %shp{j}.{d}",
                f"  %stp{j}.{d} = getelementptr i64, ptr %sp{j}, i64 {d}",
                f"  %st{j}.{d} = load i64, ptr %stp{j}.{d}",
                f"  %n{j}.{d} = mul i64 {size if d else 1}, %sh{j}.{d}",
            ]
            size = f"%n{j}.{d}"
            shapes.append(f"i64 %sh{j}.{d}")
            strides.append(f"i64 %st{j}.{d}")
        item = np.dtype(dtype).itemsize
        call += [f"ptr null, ptr {o}", f"i64 {size}", f"i64 {item}", f"ptr %da{j}",
                 *shapes, *strides]  # fmt: skip
        k += 1
    decl = ", ".join(c.split(" ")[0] for c in call)
    return "\n".join([
        f"{table} = global [{slots} x ptr] zeroinitializer",
        f'declare i32 @"{inner}"({decl})',
        "declare ptr @PyEval_SaveThread()",
        "declare void @PyEval_RestoreThread(ptr)",
        "declare ptr @PyLong_FromLong(i64)",
        "declare i64 @PyLong_AsLongLong(ptr)",
        "declare ptr @PyErr_Occurred()",
        "declare void @PyErr_Clear()",
        f'define ptr @"{entry}"(ptr %self, ptr %args, i64 %nargs) {{',
        "entry:",
        "  %ret = alloca [8 x i64], align 16",
        "  %exc = alloca ptr, align 8",
        "  store ptr null, ptr %exc",
        f"  %cn = icmp eq i64 %nargs, {len(args)}",
        "  br i1 %cn, label %start, label %bad",
        "start:",
        *body,
        "  %ts = call ptr @PyEval_SaveThread()",
        f'  %s = call i32 @"{inner}"({", ".join(call)})',
        "  call void @PyEval_RestoreThread(ptr %ts)",
        "  %s64 = sext i32 %s to i64",
        "  %r = call ptr @PyLong_FromLong(i64 %s64)",
        "  ret ptr %r",
        "clear:",
        "  call void @PyErr_Clear()",
        "  br label %bad",
        "bad:",
        f"  %rb = call ptr @PyLong_FromLong(i64 {MISMATCH})",
        "  ret ptr %rb",
        "}",
    ])  # fmt: skip


def undefined_symbols(obj: bytes) -> set[str]:
    """The global symbols an ELF64 little-endian object file references but does not define
    (raises ``Unsupported`` for another format: no native code is stored then)."""
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        raise Unsupported("not an ELF64 little-endian object")
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    out = set()
    for s in secs:
        if s[1] != 2:  # SHT_SYMTAB
            continue
        strtab = secs[s[6]]
        off, size, entsize = s[4], s[5], s[9]
        for i in range(1, size // entsize):
            name, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", obj, off + i * entsize)
            if shndx == 0 and info >> 4 in (1, 2):  # undefined, global or weak
                start = strtab[4] + name
                out.add(obj[start : obj.index(b"\0", start)].decode())
    return out


# ---- loading (any process) ---------------------------------------------------------------------
_LLVM: list = []  # [llvmlite.binding, its target machines by machine tuple]
_LOCK = threading.Lock()


def _resolves(symbol: str) -> bool:
    """Whether ``symbol`` is a function of this process's global namespace (the C library, the
    math library, Python's): what a process without numba has. (numba's own runtime and C
    helpers, which numba binds in LLVM, do not count: code calling them keeps numba's path.)"""
    try:
        getattr(_PROCESS, symbol)
    except (AttributeError, TypeError):  # (TypeError: no process namespace, see below)
        return False
    return True


try:
    _PROCESS = ctypes.CDLL(None)
except (OSError, TypeError):  # (a platform without dlopen(NULL): nothing is stored)
    _PROCESS = None


def _llvm():
    if not _LLVM:
        with _LOCK:
            if not _LLVM:
                import llvmlite.binding as llvm

                llvm.initialize_native_target()
                llvm.initialize_native_asmprinter()
                _LLVM[:] = [llvm, {}]
    return _LLVM[0]


def _machine(llvm, tup: tuple):
    """A new target machine for the stored object's (triple, CPU, features), when this
    process runs on that machine; None otherwise (the object was built elsewhere). (Each
    engine owns its target machine: one is made for each.)"""
    ok = _LLVM[1].get(tup)
    if ok is None:
        host = (llvm.get_process_triple(), llvm.get_host_cpu_name(),
                llvm.get_host_cpu_features().flatten())  # fmt: skip
        ok = _LLVM[1][tup] = tuple(tup) == host
    if not ok:
        return None
    target = llvm.Target.from_triple(tup[0])
    return target.create_target_machine(cpu=tup[1], features=tup[2], codemodel="jitdefault",
                                        jit=True)  # fmt: skip


class _MethodDef(ctypes.Structure):  # (CPython's PyMethodDef)
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]  # fmt: skip


_METH_FASTCALL = 0x80
_new_builtin = ctypes.pythonapi.PyCFunction_NewEx
_new_builtin.restype = ctypes.py_object
_new_builtin.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]


class _Spec:
    """One stored specialization, loaded: ``call(*args)`` gives numba's status, or
    ``MISMATCH`` when an argument is not what it was compiled for."""

    def __init__(self, meta: dict, obj: bytes) -> None:
        llvm = _llvm()
        for s in meta["needs"]:
            if not _resolves(s):
                raise Unsupported(f"{s} is not in this process")
        tm = _machine(llvm, tuple(meta["machine"]))
        if tm is None:
            raise Unsupported("compiled for another machine")
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        # (the object's bytes and llvmlite's object stay alive with the engine's code)
        self._obj = obj
        self._objref = llvm.ObjectFileRef.from_data(obj)
        self.engine.add_object_file(self._objref)
        self.engine.finalize_object()
        entry = meta["entry"]
        arrays = [a for a in meta["args"] if a[0] == "array"]
        expect = (ctypes.c_void_p * (len(arrays) + 2)).from_address(
            self.engine.get_global_value_address(f"{entry}.expect")
        )
        expect[0], expect[1] = id(np.ndarray), id(int)
        # (numpy's dtype objects of the built-in types are single: an array of float32 holds
        # the one np.dtype(np.float32); any other descriptor is a mismatch, then numba's path)
        self._dtypes = [np.dtype(a[1]) for a in arrays]  # (held: their addresses are used)
        for k, d in enumerate(self._dtypes):
            expect[k + 2] = id(d)
        # the entry point as a Python builtin function (its method definition held here)
        self._def = _MethodDef(entry.encode(), self.engine.get_function_address(entry),
                               _METH_FASTCALL, None)  # fmt: skip
        self.call = _new_builtin(ctypes.addressof(self._def), None, None)
        self.signature = tuple(tuple(a) for a in meta["args"])


def load(folder: Path, fname: str, source: str) -> list[_Spec]:
    """The stored specializations of the kernel function ``fname`` in the entry ``folder``
    (already verified against its manifest), compiled from the module source of SHA-256
    ``source`` (hex), that load in this process."""
    d = folder / FOLDER
    if not abi_ok() or not d.is_dir():
        return []
    specs = []
    for meta_path in sorted(d.glob(f"{fname}.*.json")):
        try:
            meta = json.loads(meta_path.read_bytes())
            if meta.get("format") != FORMAT or meta.get("source") != source:
                continue  # (another format; code of another source than the entry's)
            obj = meta_path.with_suffix(".o").read_bytes()
            specs.append(_Spec(meta, obj))
        except Unsupported as e:
            log.debug("fusejit: native code %s not used: %s", meta_path, e)
    # the most specific first: a C-contiguous specialization before a strided one
    specs.sort(key=lambda s: sum(a[0] == "array" and a[3] == "A" for a in s.signature))
    return specs


class NativeFunction:
    """A kernel function called through its stored machine code (``specs``), else through
    numba's dispatcher made by ``make()`` on first need. ``overloads`` counts what is
    compiled, as a numba dispatcher's does."""

    def __init__(self, specs: list, make: Callable[[], object]) -> None:
        self._native = {}  # (one per signature: two processes may have stored the same one)
        for s in specs:
            self._native.setdefault(s.signature, s)
        # (the specs hold their engines, which hold the code the calls run)
        self._specs = tuple(self._native.values())
        self._calls = tuple(s.call for s in self._specs)
        self._first = self._calls[0] if self._calls else _none
        self._make = make
        self._dispatcher = None
        self._lock = threading.Lock()

    @property
    def overloads(self) -> tuple:
        """The compiled specializations, as a tuple: the stored ones, then None for each of
        numba's (callers count them before and after a call to see whether numba compiled one;
        iterating numba's ordered dict would hash its signatures on each call)."""
        d = self._dispatcher
        return self._specs if d is None else self._specs + (None,) * len(d.overloads)

    def dispatcher(self):
        """numba's dispatcher of the function (numba imported and set up on first use)."""
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    self._dispatcher = self._make()
        return self._dispatcher

    def __call__(self, *args):
        r = self._first(*args)
        if r == 0 or r == -2:  # (numba's status of a normal return: a value; None)
            return None
        return self._rest(r, args)

    def _rest(self, r: int, args: tuple):
        """After the first stored specialization: the others, then numba's dispatcher."""
        if r == MISMATCH:
            for call in self._calls[1:]:
                r = call(*args)
                if r == 0 or r == -2:
                    return None
                if r != MISMATCH:
                    break
        # no stored code takes these arguments, or the kernel raised: numba runs it (and
        # raises its error)
        return self.dispatcher()(*args)


def _none(*args) -> int:
    return MISMATCH


__all__ = ["FOLDER", "NativeFunction", "load", "save", "undefined_symbols"]
