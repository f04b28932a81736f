"""``fusejit.save`` / ``fusejit.load``: a model as a file that runs without its Python code.

Format (version 1): a zip archive with these members and no others.

``fusejit-archive.json``
    ``{"format": "fusejit-archive", "version": 1, "kind": "traced" | "script" | "optimized",
    "name": str, "entries": [...], "tensors": [...], "kernels": {...}}``. Each entry is one
    compiled input signature: ``{"graph": "graphs/<i>.json", "flavor": "traced" | "script",
    "in_spec": ..., "out_spec": ...}`` (the argument and result structures, see below).
    ``tensors`` lists every tensor member: ``{"member": "tensors/<j>.npy", "dtype": name,
    "shape": [ints], "device": "cpu" | "cuda:N" (where it was saved from; absent: cpu),
    "name": str}``. ``kernels`` (optional) lists compiled kernels shipped with
    the model: ``{"files": [{"member", "sha256", "mtime_ns", "size"}], "hmac": hex}``.
``graphs/<i>.json``
    The graph IR as compiled (before optimization, which is deterministic and runs again on
    load), in the JSON form of ``fusejit/ir/codec.py``: ``{"n_inputs": k, "values": [...],
    "captured": [tensor index], "block": B}``, tensors as indices into ``tensors``. Control
    flow (``if``, ``loop``, ``print``, ``select``) is described in ``fusejit/ir/control.py``.
``tensors/<j>.npy``
    Parameters, buffers and constants, as numpy ``.npy`` files (read with
    ``allow_pickle=False``).
``kernels/<target>/<key>/...``
    Kernel cache entries (see ``fusejit/store/``) for the targets already built: numba's
    cached code for ``cpu``, a cubin (or PTX) for ``cuda``, keyed on the GPU's architecture and
    the NVRTC version, so that only a matching machine ever loads it.

Values ``x`` in attributes and specs are JSON with the codec's tagged forms for what JSON
lacks: ``{"tuple": [...]}``, ``{"float": "nan" | "inf" | "-inf"}``, ``{"dtype": name}``,
``{"device": "cpu" | "cuda:N"}``, ``{"tensor": j}`` (a constant node's value).

Loading never runs code from the file: the graph names op-table ops only, tensors are plain
arrays, and shipped kernels (which hold compiled code) are installed only when their HMAC
verifies with this machine's key (``fusejit/store/signing.py``: ``$FUSEJIT_ARCHIVE_KEY``, or a
random key kept in ``$XDG_CONFIG_HOME/fusejit/archive-key``), and are then signed into the
kernel cache with it; otherwise they are recompiled from the graph. Any problem with the file
raises ``ArchiveError`` naming it. Nothing is allocated before its size is checked: each
``.npy`` header against the manifest and the zip entry's size, the tensors together and each
graph value against ``load``'s ``max_bytes``; the graphs' declared types against what their
ops give (``fusejit/ir/typecheck.py``), before any tensor is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fusejit.base import dtypes as dt
from fusejit.base.device import CPU, as_device
from fusejit.base.errors import FusejitError
from fusejit.eager.tensor import Tensor
from fusejit.ir.codec import (
    DEVICE_NAME,
    CodecError,
    decode_graph,
    decode_value,
    encode_graph,
    encode_value,
)
from fusejit.ir.graph import Graph
from fusejit.ir.printer import format_code
from fusejit.jit import tracer as tr
from fusejit.jit.api import TracedFunction, _target_of, optimize_graph
from fusejit.jit.npy_member import MAX_HEADER, NpyError, read_npy
from fusejit.jit.runtime import GuardError, Plan
from fusejit.jit.scripting import (
    BoundScript,
    ScriptFunction,
    _device_of_args,
    _kind_of,
    _scalar_input,
    _specialize,
    unflatten_out,
)
from fusejit.nn import Module
from fusejit.store import export_entry, install_entry, machine_key

FORMAT = "fusejit-archive"
VERSION = 1
MANIFEST = "fusejit-archive.json"
MAX_JSON = 64 << 20  # bytes of one JSON member
MAX_MEMBERS = 100_000
MAX_KERNEL_FILE = 256 << 20
MAX_NPY_HEADER = MAX_HEADER + 16  # magic, version and length before a .npy header
MAX_BYTES = 4 << 30  # load()'s default bound on the tensors stored and on each graph value
_MEMBER = re.compile(
    r"^(fusejit-archive\.json|graphs/[0-9]{1,6}\.json|tensors/[0-9]{1,7}\.npy|"
    r"kernels/[a-z0-9_]{1,16}/[0-9a-f]{8,64}/[A-Za-z0-9_.\-]{1,128}(/[A-Za-z0-9_.\-]{1,128})?)$"
)

__all__ = ["save", "load", "ArchiveError", "LoadedFunction", "FORMAT", "VERSION", "MAX_BYTES"]


class ArchiveError(FusejitError, ValueError):
    """A file that is not a readable fusejit archive (truncated, malformed, another version,
    or with members that are not allowed); the message names the problem."""


# ---- devices (load(device=) moves everything) -----------------------------------------------
_DEVICE_OVERRIDE: list = [None]


def _device(s: str, ctx: str):
    """The device stored name ``s`` loads onto (the codec's ``DeviceOf``)."""
    if _DEVICE_OVERRIDE[0] is not None:
        return _DEVICE_OVERRIDE[0]
    try:
        return as_device(s)
    except FusejitError as e:
        raise _unusable(ctx, s, e) from None


def _unusable(ctx: str, device, e: Exception) -> ArchiveError:
    return ArchiveError(f"{ctx}: device {device} is not usable here ({e}); pass device= to "
                        "fusejit.load")  # fmt: skip


def _need(cond, ctx, msg):
    if not cond:
        raise ArchiveError(f"{ctx}: {msg}")


def _list(x, ctx):
    _need(isinstance(x, list), ctx, "expected a list")
    return x


# ---- the archive key (for shipped kernels) -------------------------------------------------------
def _signed(files: list) -> bytes:
    """What the archive's HMAC signs: the canonical JSON of its kernel file listing."""
    return json.dumps(files, sort_keys=True).encode()


# ---- what an object holds --------------------------------------------------------------------
_WRITES_STATE = (
    "save: {} writes buffers in place (a BatchNorm's running statistics in training mode), "
    "which an archive does not keep; save it in eval mode"
)


def _entries_of(obj) -> tuple[str, str, list]:
    """(kind, name, [(flavor, raw graph, in_spec, out_spec, plan)]) of a saveable object."""
    if isinstance(obj, LoadedFunction):
        return obj.kind, obj.__name__, [(e.flavor, e.raw, e.in_spec, e.out_spec, e.plan)
                                        for e in obj.entries]  # fmt: skip
    if isinstance(obj, TracedFunction):
        if obj.state:
            raise ArchiveError(_WRITES_STATE.format(obj.__name__))
        return "traced", obj.__name__, [("traced", obj.raw_graph, obj.in_spec, obj.out_spec,
                                         obj.plan)]  # fmt: skip
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(f, TracedFunction) for f in obj):
        # one function traced for several input signatures (the chunk shapes of a Dask array)
        return "traced", obj[0].__name__, [("traced", f.raw_graph, f.in_spec, f.out_spec, f.plan)
                                           for f in obj]  # fmt: skip
    if isinstance(obj, Module) and not isinstance(obj, type):
        fwd = obj.__dict__.get("forward") or getattr(obj, "forward", None)
        ex = getattr(obj, "_fusejit_executor", None)
        if ex is None and isinstance(fwd, (BoundScript, ScriptFunction)):
            obj = fwd
    if isinstance(obj, (ScriptFunction, BoundScript)):
        specs = obj.specializations()
        if not specs:
            raise ArchiveError(
                f"save: {obj.__name__} has not been called yet; a scripted "
                "function is compiled per input signature on its first call"
            )
        return "script", obj.__name__, [("script", c.raw_graph, c.in_spec, c.out_spec, c.plan)
                                         for c in specs]  # fmt: skip
    ex = getattr(obj, "_fusejit_executor", None)
    if ex is not None:
        traced = [s.traced for s in ex._specs if s.traced is not None and s.status == "compiled"]
        if traced and all(t.state for t in traced):
            raise ArchiveError(_WRITES_STATE.format(ex._name))
        traced = [t for t in traced if not t.state]  # (train-mode signatures are left out)
        if not traced:
            raise ArchiveError(
                "save: this optimized function has no compiled signature yet "
                "(call it past its warmup first, or use fusejit.trace)"
            )
        return "optimized", ex._name, [("traced", t.raw_graph, t.in_spec, t.out_spec, t.plan)
                                       for t in traced]  # fmt: skip
    if isinstance(obj, dict) or hasattr(obj, "state_dict"):
        raise ArchiveError(
            f"save: cannot save a {type(obj).__name__}: fusejit.save writes traced, scripted or "
            "optimized functions; save a model's or optimizer's state (or a dict of tensors) "
            "with fusejit.save_state_dict(obj, path) and read it with "
            "fusejit.load_state_dict(path)"
        )
    raise ArchiveError(f"save: cannot save a {type(obj).__name__}; save a fusejit.trace, "
                       "fusejit.script or fusejit.optimize object")  # fmt: skip


def save(obj, path, *, kernels: bool = True) -> None:
    """Write ``obj`` (traced, scripted or optimized; also a loaded archive) to ``path``.

    The archive holds every compiled input signature's graph (control flow included), the
    tensors they read (parameters, buffers, constants), the input / output structures and,
    with ``kernels``, the compiled kernels built so far. A list of traced functions (one
    function traced for several signatures) saves as one archive whose ``load`` runs each.
    ``path`` is a file name or a binary file opened for writing (``io.BytesIO`` gives the
    archive as bytes: ``fusejit.dask`` ships functions to Dask workers so).

    >>> import fusejit, os, tempfile
    >>> f = fusejit.trace(lambda x: (x * 2).exp(), fusejit.ones(3))
    >>> p = os.path.join(tempfile.mkdtemp(), "f.fjz")
    >>> fusejit.save(f, p)
    >>> fusejit.load(p)(fusejit.zeros(3)).tolist()
    [1.0, 1.0, 1.0]
    """
    kind, name, entries = _entries_of(obj)
    tensors: list = []
    index: dict = {}

    def tensor_index(t):
        """``t``'s index in the table (captured tensors and constant nodes' values alike);
        None for what is not a tensor."""
        if not isinstance(t, Tensor):
            return None
        k = id(t)
        if k not in index:
            index[k] = len(tensors)
            tensors.append(t)
        return index[k]

    graphs, meta = [], []
    try:
        for i, (flavor, raw, in_spec, out_spec, _plan) in enumerate(entries):
            graphs.append(encode_graph(raw, tensor_index))
            spec = {"in_spec": encode_value(in_spec), "out_spec": encode_value(out_spec)}
            meta.append({"graph": f"graphs/{i}.json", "flavor": flavor, **spec})
    except CodecError as e:  # a value that cannot be stored
        raise ArchiveError(str(e)) from None
    tensor_meta = []
    names = _tensor_names(obj)
    for _flavor, raw, *_ in entries:  # names a trace gave its captured tensors (module paths)
        for v, t in zip(raw.block.params[raw.n_inputs :], raw.captured, strict=False):
            if v.hint:
                names.setdefault(id(t), v.hint)
    for j, t in enumerate(tensors):
        tensor_meta.append({"member": f"tensors/{j}.npy", "dtype": t.dtype.name,
                            "shape": list(t.shape), "device": str(t.device),
                            "name": names.get(id(t), "")})  # fmt: skip
    manifest = {"format": FORMAT, "version": VERSION, "kind": kind, "name": name,
                "entries": meta, "tensors": tensor_meta}  # fmt: skip
    kfiles = _kernel_files(entries) if kernels else []
    if hasattr(path, "write") and not isinstance(path, (str, bytes, os.PathLike)):
        _write_zip(path, manifest, graphs, tensors, kfiles)
        return
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"save: path must be a file name (str or os.PathLike) or a binary "
                        f"file, not {type(path).__name__}")  # fmt: skip
    _write_atomically(Path(os.fsdecode(path)), lambda f: _write_zip(f, manifest, graphs, tensors,
                                                                    kfiles))  # fmt: skip


def _write_zip(f, manifest: dict, graphs: list, tensors: list, kfiles: list) -> None:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        if kfiles:
            listing = [{"member": m, "sha256": hashlib.sha256(b).hexdigest(), "mtime_ns": mt,
                        "size": len(b)} for m, b, mt in kfiles]  # fmt: skip
            manifest["kernels"] = {"files": listing, "hmac": machine_key().sign(_signed(listing))}
            for m, b, _ in kfiles:
                z.writestr(m, b)
        z.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for i, gj in enumerate(graphs):
            z.writestr(f"graphs/{i}.json", json.dumps(gj))
        for j, t in enumerate(tensors):
            buf = io.BytesIO()
            np.save(buf, np.asarray(t.cpu().numpy(), order="C"), allow_pickle=False)
            z.writestr(f"tensors/{j}.npy", buf.getvalue())


def _write_atomically(path: Path, write) -> None:
    """Call ``write(file)`` on a new temporary file in ``path``'s folder, then move it onto
    ``path``. The temporary file has a fresh random name and is created exclusively
    (``mkstemp``: ``O_EXCL``, so a link planted there is never followed); in the same folder,
    so the final ``os.replace`` is atomic: ``path`` is either the old file or the new one.
    ``os.replace`` puts the file where a symlink at ``path`` was, not at the link's target.
    On any failure the temporary file is removed and ``path`` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); an archive gets the mode open() would give
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    try:  # Linux states it; elsewhere set and restore it (a moment's race with other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _tensor_names(obj) -> dict:
    mod = getattr(obj, "obj", None) if not isinstance(obj, Module) else obj
    if mod is None or not isinstance(mod, Module):
        return {}
    out = {}
    for k, t in list(mod.named_parameters()) + list(mod.named_buffers()):
        out[id(t)] = k
    return out


def _kernel_files(entries) -> list:
    """(member, bytes, mtime_ns) of every verified kernel cache entry the plans use."""
    out, seen = [], set()
    for *_, plan in entries:
        kernels = [e for _node, k in plan.kernels for e in getattr(k, "entries", lambda k=k: [k])()]
        for k in kernels:
            folder = getattr(k, "folder", None)
            if folder is None or folder in seen:
                continue
            seen.add(folder)
            entry = export_entry(Path(folder))
            if entry is None:
                continue
            target, key, files = entry
            for rel, data, mtime_ns in files:
                member = f"kernels/{target}/{key}/{rel}"
                if _MEMBER.match(member):
                    out.append((member, data, mtime_ns))
    return out


# ---- loading --------------------------------------------------------------------------------
class _Entry:
    def __init__(self, flavor, raw: Graph, in_spec, out_spec) -> None:
        self.flavor, self.raw, self.in_spec, self.out_spec = flavor, raw, in_spec, out_spec
        self.graph = optimize_graph(raw, _target_of(raw))
        self.plan = Plan(self.graph)
        self.shapes = tuple(tuple(p.type.shape) for p in raw.inputs)


class LoadedFunction:
    """A model loaded from an archive: call it, read ``graph`` / ``code``, save it again.

    It runs the input signatures it was saved with (``signatures()`` lists them); others
    raise ``GuardError``. ``tensors`` maps stored names (``state_dict`` keys for modules) to
    the tensors the graphs read, and ``kernel_origin`` says where its kernels came from.
    """

    def __init__(self, kind, name, entries, tensors, names, note) -> None:
        self.kind = kind
        self.__name__ = name if name.isidentifier() else "forward"
        self.entries = entries
        self.tensors = {n or f"tensor{j}": t for j, (t, n) in enumerate(zip(tensors, names))}
        self.kernel_note = note

    @property
    def graph(self) -> Graph:
        return self.entries[0].graph

    @property
    def raw_graph(self) -> Graph:
        return self.entries[0].raw

    @property
    def code(self) -> str:
        return format_code(self.graph, self.__name__)

    def kernel_origin(self) -> dict:
        return {k.key: getattr(k, "origin", "?") for e in self.entries for _, k in e.plan.kernels}

    def signatures(self) -> list:
        return [e.in_spec for e in self.entries]

    def __call__(self, *args):
        problems = []
        entries = self.entries
        if len(entries) > 1:  # a signature traced at exactly these shapes first
            _, flat = tr.flatten_inputs(args)
            shapes = tuple(tuple(t.shape) if isinstance(t, Tensor) else None for t in flat)
            entries = sorted(entries, key=lambda e: e.shapes != shapes)
        for e in entries:
            if e.flavor == "traced":
                spec, tensors = tr.flatten_inputs(args)
                if spec != e.in_spec:
                    problems.append("argument structure differs")
                    continue
                why = e.plan.check(tensors)
                if why is None:
                    return self._run(e, tensors, tr.unflatten_outputs)
                problems.append(why)
            else:
                try:
                    spec, flat = _specialize(args, constants=False)
                except TypeError as ex:
                    problems.append(str(ex))
                    continue
                if spec != e.in_spec:
                    problems.append("argument types differ from the saved signature")
                    continue
                dev = _device_of_args(flat)
                tensors = [v if isinstance(v, Tensor) else _scalar_input(v, _kind_of(v), dev)
                           for v in flat]  # fmt: skip
                return self._run(e, tensors, lambda spec, outs: unflatten_out(spec, iter(outs)))
        raise GuardError(f"{self.__name__} (loaded) has no saved signature for these inputs: "
                         + "; ".join(dict.fromkeys(problems)))  # fmt: skip

    def _run(self, e, tensors, unflatten):
        """Run entry ``e``. The loader checked the graph's structure and each node against
        its op; what only the data can tell (an index value out of range) fails here,
        and is reported as a damaged archive, not as an error from inside the op."""
        try:
            return unflatten(e.out_spec, e.plan.run(tensors, e.graph.captured))
        except (FusejitError, MemoryError):
            raise
        except AssertionError as ex:
            if getattr(ex, "scripted_assert", False):  # a scripted `assert` that failed
                raise
            raise ArchiveError(f"{self.__name__} (loaded): its graph cannot run "
                               f"(AssertionError: {str(ex)[:200]}); the archive is damaged "
                               "or was edited") from ex  # fmt: skip
        except Exception as ex:
            raise ArchiveError(
                f"{self.__name__} (loaded): its graph cannot run ({type(ex).__name__}: "
                f"{str(ex)[:200]}); the archive is damaged or was edited"
            ) from ex

    def __repr__(self) -> str:
        return f"<LoadedFunction {self.__name__} ({self.kind}, {len(self.entries)} signatures)>"


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    if info.file_size > cap:
        raise ArchiveError(f"member {info.filename} is too large ({info.file_size} bytes, "
                           f"at most {cap} expected)")  # fmt: skip
    try:
        with z.open(info) as f:
            data = f.read(cap + 1)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"member {info.filename} is corrupt ({e})") from None
    except (OSError, EOFError, ValueError, NotImplementedError) as e:
        raise ArchiveError(f"member {info.filename} cannot be read ({e})") from None
    except Exception as e:  # zlib.error and friends from a damaged stream
        raise ArchiveError(f"member {info.filename} is corrupt ({type(e).__name__}: {e})") \
            from None  # fmt: skip
    if len(data) > cap:
        raise ArchiveError(f"member {info.filename} is larger than it says")
    return data


def _json(z, infos, name):
    info = infos.get(name)
    if info is None:
        raise ArchiveError(f"member {name} is missing")
    data = _read(z, info, MAX_JSON)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ArchiveError(f"member {name} is not valid JSON ({str(e)[:80]})") from None


def load(path, device=None, *, max_bytes: int | None = MAX_BYTES) -> LoadedFunction:
    """Read an archive written by ``fusejit.save``; the result runs without the model's code.

    ``path`` is a file name (``str`` or ``os.PathLike``) or a binary file opened for reading.
    ``device`` (``"cpu"``, ``"cuda"``, ...) moves every tensor and graph to that device;
    by default each keeps the device it was saved on. ``max_bytes`` bounds the memory the
    archive may ask for: the tensors it stores together, and each value its graphs compute
    (default 4 GiB; ``None``: no bound). Raises ``ArchiveError`` for a file that is not a
    valid archive of a version this fusejit reads, or that asks for more.

    >>> import fusejit, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "f.fjz")
    >>> fusejit.save(fusejit.trace(lambda x: x + 1, fusejit.ones(2)), p)
    >>> fusejit.load(p, max_bytes=1 << 20)(fusejit.ones(2)).tolist()
    [2.0, 2.0]
    """
    if isinstance(path, (str, bytes, os.PathLike)):
        path = os.fsdecode(path)  # (zipfile reads bytes as a file object)
        if os.path.isdir(path):
            raise ArchiveError(f"load: {path} is a folder, not an archive")
    elif not (hasattr(path, "read") and hasattr(path, "seek")):
        raise TypeError(f"load: path must be a file name (str or os.PathLike) or a binary "
                        f"file, not {type(path).__name__}")  # fmt: skip
    if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool)):
        raise TypeError(f"load: max_bytes must be an int or None, not {type(max_bytes).__name__}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"load: max_bytes must be >= 0, got {max_bytes}")
    _DEVICE_OVERRIDE[0] = None if device is None else as_device(device)
    try:
        return _load(path, max_bytes)
    except ArchiveError:
        raise
    except MemoryError:  # (what the checks below let through is within max_bytes)
        raise ArchiveError(f"{path}: not enough memory to load the archive (it is within "
                           f"max_bytes={max_bytes})") from None  # fmt: skip
    except CodecError as e:  # a malformed graph or value: the same message, as ArchiveError
        raise ArchiveError(str(e)) from None
    except RecursionError:
        raise ArchiveError(f"{path}: the archive is nested too deeply") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise ArchiveError(f"{path}: malformed archive ({type(e).__name__}: {e})") from None
    finally:
        _DEVICE_OVERRIDE[0] = None


def _load(path, max_bytes: int | None) -> LoadedFunction:
    try:
        z = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ArchiveError(f"{path} is not a fusejit archive (not a readable zip file: {e})") \
            from None  # fmt: skip
    with z:
        infos = {}
        members = z.infolist()
        if len(members) > MAX_MEMBERS:
            raise ArchiveError(f"{path}: too many members ({len(members)})")
        for info in members:
            if not _MEMBER.match(info.filename) or ".." in info.filename.split("/"):
                raise ArchiveError(f"{path}: unexpected member {info.filename[:100]!r} "
                                   "(not part of the format)")  # fmt: skip
            if info.filename in infos:
                raise ArchiveError(f"{path}: member {info.filename} appears twice")
            infos[info.filename] = info
        man = _json(z, infos, MANIFEST)
        ctx = MANIFEST
        _need(isinstance(man, dict), ctx, "not an object")
        if man.get("format") != FORMAT:
            raise ArchiveError(f"{path} is not a fusejit archive (format {man.get('format')!r})")
        ver = man.get("version")
        if ver != VERSION:
            raise ArchiveError(f"{path}: archive format version {ver!r} is not supported "
                               f"(this fusejit reads version {VERSION})")  # fmt: skip
        kind, name = man.get("kind"), man.get("name")
        _need(kind in ("traced", "script", "optimized"), ctx, f"unknown kind {kind!r}")
        _need(isinstance(name, str) and len(name) < 256, ctx, "bad name")
        metas = _tensor_metas(infos, _list(man.get("tensors"), ctx), max_bytes)
        # every graph is checked against the tensors' declared types before a tensor is read:
        # a tensor the graphs do not describe is refused before it takes memory
        graphs = {}
        for k, e in enumerate(_list(man.get("entries"), ctx)):
            ectx = f"{ctx} entry {k}"
            _need(isinstance(e, dict), ectx, "not an object")
            member = e.get("graph")
            _need(isinstance(member, str) and member in infos, ectx, f"graph member {member!r} "
                  "is missing")  # fmt: skip
            if member not in graphs:
                graphs[member] = _json(z, infos, member)
                decode_graph(graphs[member], member, metas, _device, max_bytes)
        tensors, names = _load_tensors(z, metas)
        note = _install_kernels(z, infos, man.get("kernels"))
        entries = []
        for k, e in enumerate(man["entries"]):
            ectx = f"{ctx} entry {k}"
            flavor = e.get("flavor")
            _need(flavor in ("traced", "script"), ectx, "unknown flavor")
            member = e["graph"]
            g = decode_graph(graphs[member], member, tensors, _device, max_bytes)
            in_spec = decode_value(e.get("in_spec"), ectx, device=_device)
            out_spec = decode_value(e.get("out_spec"), ectx, device=_device)
            _check_spec(in_spec, ectx)
            _check_spec(out_spec, ectx)
            entries.append(_Entry(flavor, g, in_spec, out_spec))
        _need(entries, ctx, "no entries")
    return LoadedFunction(kind, name, entries, tensors, names, note)


def _check_spec(spec, ctx, depth=0):
    _need(depth < 32, ctx, "spec nested too deeply")
    if isinstance(spec, str):
        _need(spec == "T", ctx, "bad spec")
        return
    _need(isinstance(spec, tuple) and spec, ctx, "bad spec")
    tag = spec[0]
    if all(isinstance(s, (tuple, str)) for s in spec) and not isinstance(tag, str):
        for s in spec:  # a scripted signature: one spec per argument
            _check_spec(s, ctx, depth + 1)
        return
    if tag in ("tuple", "list") and len(spec) == 2 and isinstance(spec[1], tuple):
        for s in spec[1]:
            _check_spec(s, ctx, depth + 1)
        return
    if isinstance(tag, str) and tag.startswith("namedtuple:") and len(spec) == 2:
        _need(len(tag) <= 300 and isinstance(spec[1], tuple), ctx, "bad named-tuple spec")
        for s in spec[1]:
            _check_spec(s, ctx, depth + 1)
        return
    _need(tag in ("T", "S", "C", "const"), ctx, f"bad spec tag {str(tag)[:20]!r}")


class _Declared:
    """A tensor as the manifest declares it (what graphs are checked against before any
    tensor is read), with where it is stored and its name."""

    def __init__(self, j: int, m, infos: dict) -> None:
        ctx = f"tensor {j}"
        _need(isinstance(m, dict), ctx, "not an object")
        member, name, shape = m.get("member"), m.get("dtype"), m.get("shape")
        _need(member == f"tensors/{j}.npy", ctx, "bad member name")
        _need(member in infos, ctx, f"member {member} is missing")
        _need(isinstance(name, str) and name in dt._BY_NAME, ctx, "unknown dtype")
        _need(isinstance(shape, list) and len(shape) <= 32 and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape), ctx,
            "bad shape")  # fmt: skip
        where = m.get("device", "cpu")
        _need(isinstance(where, str) and DEVICE_NAME.fullmatch(where), ctx, "bad device")
        nm = m.get("name", "")
        self.ctx, self.info, self.where = ctx, infos[member], where
        self.name = nm if isinstance(nm, str) else ""
        self.dtype, self.shape = dt.as_dtype(name), tuple(shape)
        self.nbytes = int(np.prod(shape, dtype=object)) * self.dtype.itemsize
        # the member's size is checked before anything is read: the header could claim any
        # shape, and a small deflated member can stand for gigabytes of zeros
        size = self.info.file_size
        if not self.nbytes <= size <= self.nbytes + MAX_NPY_HEADER:
            what = "too small" if size < self.nbytes else "too large"
            raise ArchiveError(f"member {member} is {what} ({size} bytes) for what the "
                               f"manifest says, {name}{shape} ({self.nbytes} bytes of "
                               "data)")  # fmt: skip


def _tensor_metas(infos, metas: list, max_bytes: int | None) -> list:
    out, total = [], 0
    for j, m in enumerate(metas):
        t = _Declared(j, m, infos)
        total += t.nbytes
        if max_bytes is not None and total > max_bytes:
            raise ArchiveError(f"{t.ctx}: {t.dtype.name}{list(t.shape)} ({t.nbytes} bytes) "
                               f"brings the tensors to {total} bytes, more than max_bytes="
                               f"{max_bytes} (pass a larger max_bytes to fusejit.load if the "
                               "archive is trusted)")  # fmt: skip
        out.append(t)
    return out


def _load_tensors(z, metas: list):
    tensors, names = [], []
    for m in metas:
        ctx, d = m.ctx, m.dtype
        arr = _read_tensor(z, m.info, np.dtype(d.np), m.shape)
        # the data is read on the host, then moved to the device it was saved from (archives
        # without "device" were saved from the CPU), or to load(device=)'s
        dev = _device(m.where, ctx)
        t = Tensor._wrap(arr, d, CPU)
        if dev.type != "cpu":
            try:
                t = t.to(dev)
            except FusejitError as e:
                raise _unusable(ctx, dev, e) from None
        tensors.append(t)
        names.append(m.name)
    return tensors, names


def _read_tensor(z, info: zipfile.ZipInfo, dtype: np.dtype, shape: tuple) -> np.ndarray:
    try:
        with z.open(info) as f:
            return read_npy(f, info.file_size, dtype, shape)
    except NpyError as e:
        raise ArchiveError(f"member {info.filename}: {e}") from None
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"member {info.filename} is corrupt ({e})") from None
    except (OSError, EOFError, ValueError, NotImplementedError) as e:
        raise ArchiveError(f"member {info.filename} cannot be read ({e})") from None
    except MemoryError:
        raise
    except Exception as e:  # zlib.error and friends from a damaged stream
        raise ArchiveError(f"member {info.filename} is corrupt ({type(e).__name__}: {e})") \
            from None  # fmt: skip


def _install_kernels(z, infos, meta) -> str:
    """Copy shipped kernel cache entries into the local cache when their signature verifies.
    Returns a note saying what happened."""
    if meta is None:
        return "no kernels in the archive"
    _need(isinstance(meta, dict), "kernels", "not an object")
    files = _list(meta.get("files"), "kernels")
    for f in files:
        _need(isinstance(f, dict) and isinstance(f.get("member"), str)
              and f["member"] in infos and f["member"].startswith("kernels/")
              and isinstance(f.get("sha256"), str) and isinstance(f.get("mtime_ns"), int)
              and isinstance(f.get("size"), int) and 0 <= f["size"] <= MAX_KERNEL_FILE,
              "kernels", f"bad file entry {str(f)[:80]}")  # fmt: skip
    listed = {f["member"] for f in files}
    extra = [m for m in infos if m.startswith("kernels/") and m not in listed]
    _need(not extra, "kernels", f"member {extra[0] if extra else ''} is not listed")
    datas = {}
    for f in files:  # every member is checked, installed or not
        data = _read(z, infos[f["member"]], f["size"])
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise ArchiveError(f"member {f['member']} does not match its checksum")
        datas[f["member"]] = data
    if not machine_key().verify(_signed(files), meta.get("hmac")):
        return "kernels in the archive not installed (not signed with this machine's archive " \
               "key); they are compiled from the graph"  # fmt: skip
    folders: dict = {}
    for f in files:
        _, target, key_, rel = f["member"].split("/", 3)
        folders.setdefault((target, key_), []).append((rel, datas[f["member"]], f["mtime_ns"]))
    installed = sum(install_entry(target, key_, fs) for (target, key_), fs in folders.items())
    return f"{installed} kernel cache entries installed from the archive"
