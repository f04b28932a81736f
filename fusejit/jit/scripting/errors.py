"""``ScriptError``: the one exception ``fusejit.script`` raises for code it cannot compile,
with the file, line, column, source line and a hint of what to write instead, formatted like a
compiler's diagnostic."""

from __future__ import annotations

from fusejit.base.errors import FusejitError


class ScriptError(FusejitError, TypeError):
    """Code that ``fusejit.script`` cannot compile. ``filename``, ``lineno``, ``col`` (1-based)
    and ``line`` locate it; the message shows them like a compiler's diagnostic."""

    def __init__(self, msg: str, filename="<unknown>", lineno=0, col=0, line="", hint=""):
        self.msg, self.filename, self.lineno, self.col, self.line = msg, filename, lineno, col, line
        self.hint = hint
        text = f"{filename}:{lineno}:{col}: error: {msg}"
        if line:
            text += f"\n{line}\n{' ' * max(col - 1, 0)}^"
        if hint:
            text += f"\n  allowed instead: {hint}"
        super().__init__(text)
