"""Tokens of the assembly text, one line at a time.

Token kinds: ``word`` (names, mnemonics such as ``DMA.LD``, directives such as ``.tile``),
``int`` (decimal, ``0x`` hex, ``0b`` binary; ``_`` separators allowed), ``float`` (``1.5``,
``.5``, ``1e-5``), ``string`` (``"formats/my format.yaml"``: a format file path, quotes
excluded from the text), and the punctuation ``, ( ) + - = :``. ``#`` and ``;`` start a
comment that runs to the end of the line. Columns are 1-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prodigy_sim.errors import AssemblyError

__all__ = ["Token", "tokenize"]

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<float>(?:\d[\d_]*\.[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?|\d[\d_]*[eE][+-]?\d+)
  | (?P<int>0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*)
  | (?P<word>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<string>"[^"]*")
  | (?P<punct>[,()+\-=:])
    """,
    re.VERBOSE,
)
_MAX_DIGITS = {2: 64, 10: 20, 16: 16}
"""Longest integer literal per base (digits, without ``_``): 64 bits; more cannot be a value."""


@dataclass(frozen=True, slots=True)
class Token:
    """A token: kind, its text, and its 1-based column."""

    kind: str
    text: str
    column: int

    @property
    def value(self) -> int:
        """The integer value of an ``int`` token."""
        digits = self.text.replace("_", "").lower()
        if digits.startswith(("0x", "0b")):
            return int(digits[2:], 16 if digits[1] == "x" else 2)
        return int(digits, 10)


def tokenize(line: str, lineno: int, file: str | None) -> list[Token]:
    """Tokens of one line (comment removed). Raises AssemblyError on an unexpected character."""
    cut = [i for i in (line.find("#"), line.find(";")) if i >= 0]
    if cut:
        line = line[: min(cut)]
    out: list[Token] = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            raise AssemblyError(f"unexpected character {line[pos]!r}", file=file, line=lineno,
                                column=pos + 1)
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        if kind != "ws":
            if kind == "int" and not re.fullmatch(r"0[xX][0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*"
                                                  r"|0[bB][01_]*[01][01_]*|\d[\d_]*", m.group()):
                raise AssemblyError(f"malformed number {m.group()!r}", file=file, line=lineno,
                                    column=pos + 1)
            if kind == "int":
                digits = m.group().replace("_", "").lower()
                base = {"0x": 16, "0b": 2}.get(digits[:2], 10)
                count = len(digits) - (2 if base != 10 else 0)
                if count > _MAX_DIGITS[base]:
                    raise AssemblyError(f"integer {digits[:12]}... has {count} digits (at most "
                                        f"{_MAX_DIGITS[base]} in base {base}: 64 bits)",
                                        file=file, line=lineno, column=pos + 1)
            text = m.group()[1:-1] if kind == "string" else m.group()
            out.append(Token(kind, text, pos + 1))
        pos = m.end()
    return out
