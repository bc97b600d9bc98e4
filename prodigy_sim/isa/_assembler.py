"""The assembler: program text -> :class:`Program`.

Line syntax (one statement per line; ``#`` or ``;`` starts a comment)::

    .tensor NAME shape=(R,C) fmt=FMT [block=N] [scale=S] [sparsity=G:K] [ddr=ADDR] [tile=HxW]
                  (FMT: a format name, or a format file: my_fmt.yaml or "dir/my fmt.yaml")
    .tile   NAME shape=(R,C) fmt=FMT [block=N] [scale=S] [sparsity=G:K] [spm=OFFSET]
    .acc    NAME shape=(M,N) [reg=N]
    [label:] [MNEMONIC operand, operand, ...]

Declarations come before the first instruction. Mnemonics and register names are case-insensitive;
symbol names are case-sensitive. Every error is an :class:`~prodigy_sim.errors.AssemblyError`
with file, line and column, saying what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from prodigy_sim._datafile import read_text
from prodigy_sim.errors import AssemblyError, ConfigError
from prodigy_sim.isa._check import problems
from prodigy_sim.isa._formats import isa_storage
from prodigy_sim.isa._lexer import Token, tokenize
from prodigy_sim.isa._program import (
    AccDecl,
    Expr,
    FImm,
    Instruction,
    Operand,
    Program,
    TensorDecl,
    TileDecl,
)
from prodigy_sim.isa._table import OpcodeSpec, OpcodeTable, opcode_table

__all__ = ["assemble", "assemble_file"]

_STORAGE_KEYS = ("shape", "fmt", "block", "scale", "sparsity")
_DECL_KEYS = {".tensor": _STORAGE_KEYS + ("ddr", "tile"), ".tile": _STORAGE_KEYS + ("spm",),
              ".acc": ("shape", "reg")}


@dataclass
class _Where:
    """Source positions of one statement: its line, its first column, and per-part columns."""

    line: int
    column: int
    parts: dict[int | str, int] = field(default_factory=dict)


def _clip(text: str, limit: int = 40) -> str:
    """``repr(text)``, cut to about ``limit`` characters (a token can be a whole long line)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


class _Cursor:
    """Walks the tokens of one line, producing located errors that quote what was found."""

    def __init__(self, tokens: list[Token], line: int, end_col: int, file: str | None):
        self.toks, self.i, self.line, self.end_col, self.file = tokens, 0, line, end_col, file

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> Token | None:
        tok = self.peek()
        self.i += 1
        return tok

    def column(self) -> int:
        tok = self.peek()
        return tok.column if tok else self.end_col

    def fail(self, expected: str) -> AssemblyError:
        tok = self.peek()
        prev = self.toks[self.i - 1].text if 0 < self.i <= len(self.toks) else None
        after = f" after {_clip(prev)}" if prev is not None else ""
        found = _clip(tok.text) if tok else "the end of the line"
        return AssemblyError(f"expected {expected}{after} but found {found}", file=self.file,
                             line=self.line, column=self.column())

    def expect(self, kind: str, expected: str, text: str | None = None) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != kind or (text is not None and tok.text != text):
            raise self.fail(expected)
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text == text:
            self.i += 1
            return True
        return False

    def at_end(self) -> bool:
        return self.i >= len(self.toks)


def _register(cur: _Cursor, table: OpcodeTable, writable: bool) -> int | None:
    """Register index of the next word if it names a register (and consumes it), else None."""
    tok = cur.peek()
    if tok is None or tok.kind != "word":
        return None
    low = tok.text.lower()
    idx = None
    if low in table.special_regs:
        idx = table.special_regs[low]
        if writable:
            raise AssemblyError(f"{low} is read-only: expected a register r0..r15",
                                file=cur.file, line=cur.line, column=tok.column)
    elif (low[:1] == "r" and low[1:].isdigit() and len(low) <= 4
          and int(low[1:]) < table.n_general_regs):
        if low[1:] != str(int(low[1:])):
            return None
        idx = int(low[1:])
    if idx is not None:
        cur.i += 1
    return idx


def _sign(cur: _Cursor) -> int:
    if cur.accept("-"):
        return -1
    cur.accept("+")
    return 1


def _signed_int(cur: _Cursor, expected: str) -> int:
    sign = _sign(cur)
    return sign * cur.expect("int", expected).value


def _fimm(cur: _Cursor) -> FImm:
    tok = cur.peek()
    if tok is not None and tok.kind == "word" and tok.text.lower() == "fbits":
        cur.next()
        cur.expect("punct", "'(' after fbits", "(")
        bits = cur.expect("int", "the raw bits of an FP32 value, e.g. 0x7FC00001")
        if not 0 <= bits.value < 1 << 32:
            raise AssemblyError(f"fbits({bits.text}) does not fit 32 bits", file=cur.file,
                                line=cur.line, column=bits.column)
        cur.expect("punct", "')'", ")")
        return FImm(bits.value)
    sign = _sign(cur)
    tok = cur.peek()
    if tok is not None and tok.kind == "word" and tok.text.lower() in ("inf", "nan"):
        cur.next()
        return FImm.of(sign * float(tok.text.lower()))
    if tok is None or tok.kind not in ("int", "float"):
        raise cur.fail("an FP32 immediate (e.g. 1.5, -2, 1e-5, inf, nan, fbits(0x3F800000))")
    cur.next()
    try:
        value = sign * float(tok.text.replace("_", "") if tok.kind == "float" else tok.value)
    except OverflowError:
        value = math.inf
    f = FImm.of(value)
    if math.isinf(f.value):
        raise AssemblyError(f"{tok.text} is outside the FP32 range (max 3.4028235e+38)",
                            file=cur.file, line=cur.line, column=tok.column)
    return f


def _operand(cur: _Cursor, table: OpcodeTable, kind: str) -> Operand:
    if kind in ("tile", "tensor", "acc", "label"):
        what = {"acc": "an accumulator name", "label": "a label"}.get(kind, f"a {kind} name")
        return cur.expect("word", what).text
    if kind in ("reg", "sreg"):
        idx = _register(cur, table, writable=kind == "reg")
        if idx is None:
            raise cur.fail("a register r0..r15" + (", cid or ncores" if kind == "sreg" else ""))
        return idx
    if kind == "expr":
        reg = _register(cur, table, writable=False)
        if reg is None:
            tok = cur.peek()
            if tok is None or not (tok.kind == "int" or tok.text in "+-"):
                raise cur.fail("an expression (register, integer, or register+integer)")
            return Expr(None, _signed_int(cur, "an integer"))
        if cur.accept("+"):
            return Expr(reg, cur.expect("int", "an integer").value)
        if cur.accept("-"):
            return Expr(reg, -cur.expect("int", "an integer").value)
        return Expr(reg, 0)
    if kind == "simm":
        return _signed_int(cur, "an integer")
    return _fimm(cur)


def _instruction(cur: _Cursor, spec: OpcodeSpec, table: OpcodeTable, where: _Where
                 ) -> Instruction:
    values = []
    for j, o in enumerate(spec.operands):
        if j:
            if not cur.accept(","):
                raise cur.fail(f"',' and operand {j + 1} ({o.name}) of {spec.mnemonic}")
        where.parts[j] = cur.column()
        values.append(_operand(cur, table, o.kind))
    if not cur.at_end():
        raise cur.fail(f"the end of the line ({spec.mnemonic} takes {len(spec.operands)} "
                       "operands)")
    return Instruction(spec.mnemonic, tuple(values), where.line)


def _tile_shape(cur: _Cursor) -> tuple[int, int]:
    """``HxW`` (the lexer reads ``64x1024`` as the integer 64 and the word ``x1024``)."""
    h = cur.expect("int", "the tile height, as in tile=64x1024").value
    tok = cur.peek()
    if tok is not None and tok.kind == "word" and tok.text.lower() == "x":
        cur.next()
        return h, cur.expect("int", "the tile width after 'x', as in tile=64x1024").value
    if tok is None or tok.kind != "word" or tok.text[:1].lower() != "x" \
            or not tok.text[1:].isdigit():
        raise cur.fail("'x' and the tile width, as in tile=64x1024")
    cur.next()
    return h, int(tok.text[1:])


def _declaration(cur: _Cursor, directive: str, where: _Where
                 ) -> TensorDecl | TileDecl | AccDecl:
    name = cur.expect("word", f"a name after {directive}")
    where.column = name.column
    where.parts["name"] = name.column
    keys = _DECL_KEYS[directive]
    seen: set[str] = set()
    shape = (0, 0)
    sparsity: tuple[int, int] | None = None
    tile: tuple[int, int] | None = None
    words: dict[str, str] = {}  # fmt, scale
    ints: dict[str, int] = {}  # block, reg, ddr, spm
    while not cur.at_end():
        key = cur.expect("word", f"an attribute ({', '.join(keys)})")
        if key.text not in keys:
            cur.i -= 1
            raise cur.fail(f"an attribute of {directive} ({', '.join(keys)})")
        if key.text in seen:
            cur.i -= 1
            raise cur.fail(f"each attribute once ({key.text} is repeated)")
        seen.add(key.text)
        where.parts[key.text] = key.column
        cur.expect("punct", f"'=' after {key.text}", "=")
        nxt = cur.peek()
        if key.text == "shape":
            cur.expect("punct", "'(' starting shape=(ROWS,COLS)", "(")
            r = cur.expect("int", "the number of rows").value
            cur.expect("punct", "',' between rows and columns", ",")
            c = cur.expect("int", "the number of columns").value
            cur.expect("punct", "')' closing the shape", ")")
            shape = (r, c)
        elif key.text == "fmt" and nxt is not None and nxt.kind == "string":
            words["fmt"] = cur.expect("string", "a format file name").text
        elif key.text in ("fmt", "scale"):
            words[key.text] = cur.expect("word", f"a {key.text} name").text
        elif key.text == "sparsity":
            g = cur.expect("int", "the sparsity group size (e.g. 8 in 8:4)").value
            cur.expect("punct", "':' in GROUP:KEPT", ":")
            sparsity = (g, cur.expect("int", "the kept count (e.g. 4 in 8:4)").value)
        elif key.text == "tile":
            tile = _tile_shape(cur)
        else:
            ints[key.text] = cur.expect("int", f"an integer {key.text}").value
    for req in ("shape",) if directive == ".acc" else ("shape", "fmt"):
        if req not in seen:
            raise AssemblyError(f"{directive} {name.text} needs {req}=...", file=cur.file,
                                line=where.line, column=name.column)
    if directive == ".acc":
        return AccDecl(name.text, shape, ints.get("reg"))
    base = Path(cur.file).parent if cur.file else None
    try:
        storage = isa_storage(words["fmt"], ints.get("block"), words.get("scale"), sparsity,
                              base=base)
    except ConfigError as err:
        part = next((k for k in ("sparsity", "scale", "block") if k in str(err) and k in seen),
                    "fmt")
        raise AssemblyError(str(err), file=cur.file, line=where.line,
                            column=where.parts.get(part, name.column)) from None
    if directive == ".tensor":
        return TensorDecl(name.text, shape, storage, ddr=ints.get("ddr"), tile=tile)
    return TileDecl(name.text, shape, storage, spm=ints.get("spm"))


def assemble(text: str, file: str | Path | None = None) -> Program:
    """Assemble program text into a :class:`Program`.

    ``file`` is only used in error locations. Raises :class:`~prodigy_sim.errors.AssemblyError`
    (with file, line and column) for anything that does not assemble.
    """
    table = opcode_table()
    fname = str(file) if file is not None else None
    decls: dict[str, list] = {".tensor": [], ".tile": [], ".acc": []}
    wheres: dict[str, list[_Where]] = {".tensor": [], ".tile": [], ".acc": [], "label": [],
                                      "instr": []}
    instrs: list[Instruction] = []
    labels: list[tuple[str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        toks = tokenize(raw, lineno, fname)
        cur = _Cursor(toks, lineno, len(raw.rstrip()) + 1, fname)
        if len(toks) >= 2 and toks[0].kind == "word" and toks[1].text == ":":
            labels.append((toks[0].text, len(instrs)))
            wheres["label"].append(_Where(lineno, toks[0].column, {"name": toks[0].column}))
            cur.i = 2
        head = cur.peek()
        if head is None:
            continue
        if head.kind != "word":
            raise cur.fail("a mnemonic, a declaration (.tensor, .tile, .acc) or a label")
        if head.text.startswith("."):
            if head.text not in decls:
                raise cur.fail("a declaration (.tensor, .tile or .acc)")
            if instrs or labels:
                raise AssemblyError("declarations must come before the first instruction or "
                                    "label", file=fname, line=lineno, column=head.column)
            cur.next()
            where = _Where(lineno, head.column)
            decls[head.text].append(_declaration(cur, head.text, where))
            wheres[head.text].append(where)
            continue
        spec = table.by_mnemonic.get(head.text.upper())
        if spec is None:
            raise cur.fail("a mnemonic (see isa/README.md), a declaration or a label")
        cur.next()
        where = _Where(lineno, head.column)
        instrs.append(_instruction(cur, spec, table, where))
        wheres["instr"].append(where)
    program = Program(tuple(decls[".tensor"]), tuple(decls[".tile"]), tuple(decls[".acc"]),
                      tuple(instrs), tuple(labels))
    issues = problems(program, table)
    if issues:
        issue = issues[0]
        key = {"tensor": ".tensor", "tile": ".tile", "acc": ".acc"}.get(issue.where, issue.where)
        seq = wheres[key]
        w = seq[min(issue.index, len(seq) - 1)] if seq else _Where(1, 1)
        fallback = w.parts.get("shape", w.parts.get("name", w.column))
        col = w.parts.get(issue.part, fallback) if issue.part is not None else w.column
        raise AssemblyError(issue.message, file=fname, line=w.line, column=col)
    return program


def assemble_file(path: str | Path) -> Program:
    """Assemble the program in the UTF-8 text file ``path``: :func:`assemble` of its text.

    A file that cannot be read or is not UTF-8 raises :class:`~prodigy_sim.errors.AssemblyError`
    naming it (and the line of the first bad byte).
    """
    return assemble(read_text(path, what="program", error=AssemblyError), file=path)
