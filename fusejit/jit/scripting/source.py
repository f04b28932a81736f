"""A scripted function's source: its syntax tree and where it sits in its file (so that
``ScriptError`` points at the right line and column), the check at decoration that rejects
constructs outside the subset (``_UNSUPPORTED``, with what to write instead), and small queries
on the syntax tree (parameters, names a block binds)."""

from __future__ import annotations

import ast
import inspect
import textwrap

from fusejit.jit.scripting.errors import ScriptError

# ---- what is allowed ------------------------------------------------------------------------
_UNSUPPORTED = {
    ast.Try: ("`try` is not supported in fusejit.script (errors cannot be caught in compiled "
              "code)", "check the condition with `if` before the operation"),
    ast.With: ("`with` is not supported in fusejit.script", "call the code without a context "
               "manager, or outside the scripted function"),
    ast.Raise: ("`raise` is not supported in fusejit.script", "check inputs before calling the "
                "scripted function"),
    ast.Lambda: ("lambdas are not supported in fusejit.script", "a module-level function "
                 "decorated with @fusejit.script"),
    ast.FunctionDef: ("nested functions are not supported in fusejit.script", "a module-level "
                      "function decorated with @fusejit.script"),
    ast.AsyncFunctionDef: ("async functions are not supported in fusejit.script", "a plain def"),
    ast.ClassDef: ("class definitions are not supported in fusejit.script", "define the class "
                   "outside the scripted function"),
    ast.Yield: ("generators (`yield`) are not supported in fusejit.script", "return a tuple or "
                "list of tensors"),
    ast.YieldFrom: ("generators (`yield from`) are not supported in fusejit.script", "return a "
                    "tuple or list of tensors"),
    ast.GeneratorExp: ("generator expressions are not supported in fusejit.script", "a for loop "
                       "that appends to a list"),
    ast.ListComp: ("list comprehensions are not supported in fusejit.script", "a for loop that "
                   "appends to a list"),
    ast.SetComp: ("set comprehensions are not supported in fusejit.script", "a list"),
    ast.DictComp: ("dict comprehensions are not supported in fusejit.script", "tuples or lists"),
    ast.Dict: ("dicts are not supported in fusejit.script", "tuples or lists of tensors"),
    ast.Set: ("sets are not supported in fusejit.script", "tuples or lists"),
    ast.Global: ("`global` is not supported in fusejit.script", "pass the value as an argument"),
    ast.Nonlocal: ("`nonlocal` is not supported in fusejit.script", "pass the value as an "
                   "argument and return the new value"),
    ast.Delete: ("`del` is not supported in fusejit.script", "rebind the name instead"),
    ast.Import: ("imports are not supported in fusejit.script", "import at module level"),
    ast.ImportFrom: ("imports are not supported in fusejit.script", "import at module level"),
    ast.Await: ("`await` is not supported in fusejit.script", "plain calls"),
    ast.AsyncFor: ("`async for` is not supported in fusejit.script", "a for loop"),
    ast.AsyncWith: ("`async with` is not supported in fusejit.script", "plain code"),
    ast.NamedExpr: ("`:=` is not supported in fusejit.script", "a separate assignment"),
}  # fmt: skip
if hasattr(ast, "Match"):
    _UNSUPPORTED[ast.Match] = ("`match` is not supported in fusejit.script", "if / elif / else")
if hasattr(ast, "TryStar"):
    _UNSUPPORTED[ast.TryStar] = _UNSUPPORTED[ast.Try]


# ---- parsing --------------------------------------------------------------------------------
class _Source:
    """A function's syntax tree and where it sits in its file (for diagnostics)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        try:
            lines, start = inspect.getsourcelines(fn)
            self.filename = inspect.getsourcefile(fn) or inspect.getfile(fn)
        except (OSError, TypeError) as e:
            raise ScriptError(f"cannot read the source of {getattr(fn, '__qualname__', fn)!r} "
                              f"({e})", hint="define the function in a file") from None  # fmt: skip
        self.lines = [ln.rstrip("\n") for ln in lines]
        first = self.lines[0]
        self.indent = len(first) - len(first.lstrip())
        self.start = start
        tree = ast.parse(textwrap.dedent("".join(lines)))
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not defs:
            raise ScriptError(f"{fn!r} is not a def", self.filename, start, 1, self.lines[0])
        self.tree = defs[0]

    def error(self, node, msg: str, hint: str = "") -> ScriptError:
        lineno = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        k = lineno - 1
        line = self.lines[k] if 0 <= k < len(self.lines) else ""
        return ScriptError(msg, self.filename, self.start + k, col + self.indent + 1, line, hint)

    def check_syntax(self) -> None:
        """Reject constructs outside the subset (at decoration)."""
        f = self.tree
        if isinstance(f, ast.AsyncFunctionDef):
            raise self.error(f, *_UNSUPPORTED[ast.AsyncFunctionDef])
        a = f.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise self.error(f, "*args, **kwargs, keyword-only and positional-only parameters "
                             "are not supported in fusejit.script",
                             "plain positional parameters (with constant defaults)")  # fmt: skip
        for stmt in f.body:
            for node in ast.walk(stmt):
                bad = _UNSUPPORTED.get(type(node))
                if bad is not None:
                    raise self.error(node, *bad)
                if isinstance(node, ast.Starred) and isinstance(node.ctx, ast.Store):
                    raise self.error(
                        node,
                        "`*` in an assignment target is not supported in fusejit.script",
                        "index the tuple: a, b = t[0], t[1:]",
                    )


def _params_of(tree: ast.FunctionDef) -> list[str]:
    return [a.arg for a in tree.args.args]


def _assigned_names(stmts) -> set:
    """Names bound anywhere in ``stmts`` (flags for break / continue / return included)."""
    out: set = set()
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                base = node.value  # x[i] = v rebinds x (item assignment is functional)
                while isinstance(base, ast.Subscript):
                    base = base.value
                if isinstance(base, ast.Name):
                    out.add(base.id)
            elif isinstance(node, ast.Return):
                out.update(("$ret", "$retval"))
    return out
