"""The ``fusejit`` command: ``bench``, ``info``, ``cache`` and ``export``.

    python -m fusejit bench [--device cpu|cuda] [--workloads a,b] [--size N] [--repeat R]
                            [--json FILE] [--plot FILE.png] [--quiet]
    python -m fusejit info
    python -m fusejit cache info | clear
    python -m fusejit export model.fjz model.onnx [--opset N] [--input-names a,b]
                             [--output-names y]
    python -m fusejit --version

>>> from fusejit.__main__ import main
>>> main(["cache", "info"])  # doctest: +ELLIPSIS
folder: ...
0
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

import fusejit as fj
from fusejit.bench import harness
from fusejit.bench.harness import machine_info
from fusejit.bench.workloads import WORKLOADS, names
from fusejit.store import CacheError, cache_dir, folder_size, prune_cache, remove_entries
from fusejit.store.root import inspect_root


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _cache_summary() -> tuple[Path, int, dict]:
    """(folder, bytes, entries per target); entries removed while they are counted (a clear
    in another process) are not counted."""
    d = cache_dir()
    per_target = {}
    if d.is_dir():
        for t in sorted(d.iterdir()):
            try:
                if t.is_dir():
                    # (a folder being written is named .tmp-..., one being removed .trash-...)
                    per_target[t.name] = sum(
                        1 for e in t.iterdir() if e.is_dir() and not e.name.startswith(".")
                    )
            except FileNotFoundError:
                pass
    return d, folder_size(d), per_target


# ---- bench -------------------------------------------------------------------------------------
def cmd_bench(a) -> int:
    if a.plot:
        if importlib.util.find_spec("matplotlib") is None:
            print("fusejit bench: --plot needs matplotlib, which is not installed "
                  "(pip install matplotlib); nothing was run", file=sys.stderr)  # fmt: skip
            return 2
    names = [n.strip() for n in a.workloads.split(",") if n.strip()] if a.workloads else None
    unknown = [n for n in names or [] if n not in WORKLOADS]
    if unknown:
        print(f"fusejit bench: unknown workload(s) {', '.join(unknown)}; "
              f"known: {', '.join(WORKLOADS)}", file=sys.stderr)  # fmt: skip
        return 2
    device = a.device or ("cuda" if fj.is_cuda_available() else "cpu")
    try:
        res = harness.run_bench(device, names, a.size, a.repeat, progress=not a.quiet)
    except harness.MismatchError as e:
        print(f"fusejit bench: RESULT MISMATCH, benchmark stopped: {e}", file=sys.stderr)
        return 1
    except fj.DeviceError as e:
        print(f"fusejit bench: {e}", file=sys.stderr)
        return 2
    if a.json:  # files first: the table may go to a pipe that closes early
        Path(a.json).write_text(harness.to_json(res))
    if a.plot:
        harness.plot(res, a.plot)
    print(harness.format_table(res))
    targets = harness.format_targets(res["targets"])
    if targets:
        print(targets)
    for f in (a.json, a.plot):
        if f:
            print(f"wrote {f}")
    return 0


# ---- info --------------------------------------------------------------------------------------
def _cpu_line() -> str:
    m = machine_info("cpu")
    return f"{m['cpu']}, {m['cores']} cores, {m['simd']} (LLVM cpu {m['llvm_cpu']})"


def _nvcc() -> str | None:
    p = shutil.which("nvcc")
    if p:
        return p
    for env in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(env)
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return "/usr/local/cuda/bin/nvcc" if os.path.isfile("/usr/local/cuda/bin/nvcc") else None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _ver(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _gpu_hardware() -> bool:
    """Whether the operating system shows an NVIDIA GPU (the driver's device files), whatever
    cupy says: without one, a missing GPU stack is expected, not a problem."""
    try:
        if any(os.scandir("/proc/driver/nvidia/gpus")):
            return True
    except OSError:
        pass
    return any(n[len("nvidia") :].isdigit() for n in _listdir("/dev") if n.startswith("nvidia"))


def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError:
        return []


def cmd_info(a) -> int:
    problems: list[str] = []
    notes: list[str] = []
    gpu_hw = _gpu_hardware()
    versions = [("python", f"{platform.python_version()} ({sys.executable})")]

    versions.append(("numpy", np.__version__))
    try:  # (imported here so that a broken numba is reported, not raised)
        import numba

        versions.append(("numba", numba.__version__))
        svml = bool(getattr(numba.config, "USING_SVML", False))
        numba_line = f"ok ({numba.__version__}, SVML {'yes' if svml else 'no'})"
    except Exception as e:  # noqa: BLE001 - report any import failure
        numba_line = f"NOT importable ({e})"
        problems.append(f"numba is not importable ({e}): fused CPU kernels cannot be built; "
                        "pip install numba")  # fmt: skip
    versions.append(("fusejit", f"{fj.__version__} ({os.path.dirname(fj.__file__)})"))
    cupy, cupy_err = None, None
    try:  # (optional dependency)
        import cupy
    except Exception as e:  # noqa: BLE001
        cupy, cupy_err = None, e
    versions.append(("cupy", cupy.__version__ if cupy else "not installed"))

    devices = [("cpu", _cpu_line())]
    tool = [("numba", numba_line), ("nvcc", _nvcc() or "not found (not needed: NVRTC compiles)")]
    if cupy is None:
        tool.append(("cupy", f"not importable ({cupy_err})"))
        if gpu_hw:
            problems.append(
                f"cupy is not importable ({cupy_err}) but this machine has an NVIDIA GPU: no "
                "GPU support; install fusejit[cuda12] or fusejit[cuda13]"
            )
        else:  # (the GPU stack is optional: a machine without a GPU does not need it)
            notes.append(
                f"no GPU support: cupy is not installed ({cupy_err}) and no NVIDIA GPU was "
                "found; CPU only (on a machine with an NVIDIA GPU, install fusejit[cuda12] or "
                "fusejit[cuda13])"
            )
    else:
        tool.append(("cupy", f"ok ({cupy.__version__})"))
        try:
            major, minor = cupy.cuda.nvrtc.getVersion()
            tool.append(("NVRTC", f"{major}.{minor}"))
        except Exception as e:  # noqa: BLE001
            tool.append(("NVRTC", f"not usable ({_first_line(e)})"))
            problems.append(
                f"NVRTC is not usable through cupy ({_first_line(e)}): GPU kernels cannot be "
                "compiled"
            )
        try:
            drv = cupy.cuda.runtime.driverGetVersion()
            tool.append(("CUDA driver", _ver(drv)))
            tool.append(("CUDA runtime", _ver(cupy.cuda.runtime.runtimeGetVersion())))
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # noqa: BLE001
            n = 0
            (problems if gpu_hw else notes).append(
                f"cupy found no usable CUDA GPU ({_first_line(e)})"
                + ("" if gpu_hw else "; none was found by the operating system either: CPU only")
            )
        for i in range(n):
            try:
                props = cupy.cuda.runtime.getDeviceProperties(i)
                cc = cupy.cuda.Device(i).compute_capability
                mem = props["totalGlobalMem"] / 2**30
                name = props["name"]
                name = name.decode() if isinstance(name, bytes) else str(name)
                devices.append((f"cuda:{i}", f"{name}, compute capability "
                                f"{cc[:-1]}.{cc[-1]}, {mem:.0f} GiB"))  # fmt: skip
            except Exception as e:  # noqa: BLE001
                problems.append(f"cuda:{i} cannot be queried ({e})")
        if n:
            if importlib.util.find_spec("fusejit.backends.cuda") is None:
                problems.append("a GPU is present but fusejit's cuda backend "
                                "(fusejit.backends.cuda) is missing from this install")  # fmt: skip
            elif not fj.is_cuda_available():
                problems.append("a GPU is present but fusejit.is_cuda_available() is False")
    if len(devices) == 1:
        devices.append(("cuda", "none found"))

    d, size, per_target = _cache_summary()
    kernels = ", ".join(f"{k} {v} kernels" for k, v in per_target.items()) or "0 kernels"
    cache_lines = [("folder", str(d)), ("size", f"{_human(size)} in {kernels}")]
    root = inspect_root(d)
    if not root.writable:
        problems.append(f"the kernel cache folder {d} is not used for new kernels: "
                        f"{root.reason}; they are recompiled in every process "
                        "(set FUSEJIT_CACHE_DIR)")  # fmt: skip

    out = []
    for title, items in (("Versions", versions), ("Devices", devices), ("Toolchain", tool),
                         ("Cache", cache_lines)):  # fmt: skip
        out.append(title)
        w = max(len(k) for k, _ in items)
        out += [f"  {k.ljust(w)}  {v}" for k, v in items]
    if notes:
        out.append(f"Notes ({len(notes)})")
        out += [f"  - {n}" for n in notes]
    out.append(f"Problems ({len(problems)})" if problems else "Problems: none")
    out += [f"  - {p}" for p in problems]
    print("\n".join(out))
    return 1 if any(p.startswith("numba") for p in problems) else 0


# ---- cache -------------------------------------------------------------------------------------
def cmd_cache(a) -> int:
    d, size, per_target = _cache_summary()
    if a.action == "info":
        print(f"folder: {d}")
        print(f"size: {_human(size)}")
        for k, v in per_target.items():
            print(f"{k}: {v} kernels")
        return 0
    if a.action == "prune":
        if a.max_bytes is not None and a.max_bytes < 0:
            print("fusejit cache prune: --max-bytes must be 0 or more", file=sys.stderr)
            return 2
        r = prune_cache(a.max_bytes)
        print(f"removed {r['removed']} kernel entries ({_human(r['freed'])}) from {d}; "
              f"{r['entries']} left ({_human(r['bytes'])})")  # fmt: skip
        return 0
    try:
        n, size = remove_entries(d, call="fusejit cache clear")
    except CacheError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"removed {n} kernel entries ({_human(size)}) from {d}")
    return 0


# ---- export ------------------------------------------------------------------------------------
def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",")] if text else None


def cmd_export(a) -> int:
    """Export a saved archive (``fusejit.save``) as an ONNX model: exit 0, 2 for bad arguments
    or a missing file or package, 1 when the archive cannot be read or exported."""

    def fail(msg: str, code: int = 1) -> int:
        print(f"fusejit export: {msg}", file=sys.stderr)
        return code

    src, dst = Path(a.archive), Path(a.output)
    if not src.exists():
        return fail(f"{src}: no such file", 2)
    if src.is_dir():
        return fail(f"{src} is a folder, not an archive", 2)
    if not dst.parent.is_dir():
        return fail(f"cannot write {dst}: the folder {dst.parent} does not exist", 2)
    if importlib.util.find_spec("onnx") is None:
        return fail("the onnx package is not installed (pip install fusejit[onnx])", 2)
    import fusejit.onnx as fonnx

    try:
        loaded = fj.load(src, device="cpu")
    except fj.ArchiveError as e:
        return fail(f"cannot read the archive: {e}")
    kw = {"opset": a.opset, "input_names": _names(a.input_names),
          "output_names": _names(a.output_names)}  # fmt: skip
    try:
        proto = fonnx.export(loaded, dst, **kw)
    except fonnx.ExportError as e:
        return fail(str(e))
    except (ValueError, TypeError) as e:  # (a bad opset or names)
        return fail(f"{type(e).__name__}: {e}")
    g = proto.graph
    print(f"wrote {dst}: opset {proto.opset_import[0].version}, {len(g.node)} nodes, "
          f"inputs {', '.join(i.name for i in g.input)}, "
          f"outputs {', '.join(o.name for o in g.output)}")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusejit", description="fusejit: a kernel-fusing JIT.")
    p.add_argument("--version", action="version", version=f"fusejit {fj.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="eager vs fused benchmark of the standard workloads")
    b.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="default: cuda when a GPU is usable, else cpu")  # fmt: skip
    b.add_argument("--workloads", help="comma-separated, of: " + ", ".join(names()))
    b.add_argument("--size", type=int, help="elements of each workload's main tensor")
    b.add_argument("--repeat", type=int, help="timed rounds (default: 3+ within a time budget)")
    b.add_argument("--json", metavar="FILE", help="write every number to FILE")
    b.add_argument("--plot", metavar="FILE.png", help="bar chart (needs matplotlib)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_bench)
    i = sub.add_parser("info", help="versions, devices, toolchain check, kernel cache")
    i.set_defaults(func=cmd_info)
    c = sub.add_parser("cache", help="the kernel cache folder")
    c.add_argument("action", choices=["info", "clear", "prune"],
                   help="prune: remove least recently used entries down to the bound")  # fmt: skip
    c.add_argument("--max-bytes", type=int, default=None,
                   help="prune to this size (default $FUSEJIT_CACHE_MAX_BYTES, 4 GiB)")  # fmt: skip
    c.set_defaults(func=cmd_cache)
    e = sub.add_parser("export", help="write a saved archive (fusejit.save) as an ONNX model")
    e.add_argument("archive", help="the archive, e.g. model.fjz")
    e.add_argument("output", help="the ONNX file to write, e.g. model.onnx")
    e.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: fusejit.onnx.DEFAULT_OPSET)")  # fmt: skip
    e.add_argument("--input-names", metavar="A,B", help="names of the graph's inputs, in order")
    e.add_argument("--output-names", metavar="Y", help="names of the graph's outputs, in order")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fusejit`` and the ``fusejit`` script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if getattr(args, "size", None) is not None and args.size <= 0:
        print("fusejit bench: --size must be positive", file=sys.stderr)
        return 2
    if getattr(args, "repeat", None) is not None and args.repeat <= 0:
        print("fusejit bench: --repeat must be positive", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # stdout piped into a command that stopped reading (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
