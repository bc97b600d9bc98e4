"""Hypothesis strategies shared by the tests: the public ones of :mod:`prodigy_sim.testing`."""

from __future__ import annotations

from hypothesis import strategies as st

from prodigy_sim.testing.strategies import float32_any as float32_any
from prodigy_sim.testing.strategies import float32_arrays as float32_arrays
from prodigy_sim.testing.strategies import float32_near as float32_near
from prodigy_sim.testing.strategies import format_names as format_names
from prodigy_sim.testing.strategies import narrow_format_names as narrow_format_names

# -- hostile inputs (tests/test_robustness_fuzz.py) ---------------------------------------------

HOSTILE_TOKENS = [
    "", " ", ",", "(", ")", ":", "=", "-", "+", "#", "\n", "\t", "0", "1", "-1", "64", "9" * 30,
    "0x" + "f" * 17, "0b" + "1" * 70, "1e400", "nan", "inf", "r0", "r15", "r16", "cid",
    "ncores", "MMA", "LOOP", "ENDLOOP", "JMP", "HALT", "DMA.LD", "DMA.ST", "BARRIER", "VQUANT",
    "LI", "DIV", "shape=(0,0)", "shape=(1,1)", "shape=(99999999,99999999)", "fmt=tai4",
    "fmt=xx", "block=0", "block=3", "scale=fp32", "sparsity=8:4", "sparsity=0:0", ".tile",
    ".tensor", ".acc", "reg=99", "spm=-5", "ddr=18446744073709551615", "\u00e9", "\x00", "&a",
    "*a", "[", "]", "{", "}", "- ", "!!python/object:os.system", ".inf", ".nan", "~",
]
"""Fragments a hostile user splices into program text and YAML files."""


def mutated_text(data, text: str, max_edits: int = 6) -> str:
    """``text`` with up to ``max_edits`` spans replaced by :data:`HOSTILE_TOKENS` (drawn from a
    Hypothesis ``data`` object)."""
    for _ in range(data.draw(st.integers(1, max_edits))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 20)))
        text = text[:i] + data.draw(st.sampled_from(HOSTILE_TOKENS)) + text[j:]
    return text


def mutated_bytes(data, blob: bytes, max_edits: int = 6) -> bytes:
    """``blob`` with bit flips, overwritten bytes, insertions and a possible truncation."""
    b = bytearray(blob)
    for _ in range(data.draw(st.integers(1, max_edits))):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "truncate"]))
        if kind == "truncate":
            del b[data.draw(st.integers(0, len(b))):]
        elif kind == "insert":
            i = data.draw(st.integers(0, len(b)))
            b[i:i] = data.draw(st.binary(max_size=8))
        elif b:
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] = (b[i] ^ (1 << data.draw(st.integers(0, 7))) if kind == "flip"
                    else data.draw(st.sampled_from([0, 0x7F, 0x80, 0xFF])))
    return bytes(b)


def hostile_values():
    """Values a configuration field should refuse or survive: huge, negative, non-finite, wrong
    type."""
    return st.one_of(
        st.integers(-10**30, 10**30),
        st.sampled_from([0, -1, 1, 2**63, 2**64, 10**21, 1e-300, 1e300, -0.0, True]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8), st.none(), st.lists(st.integers(-3, 300), max_size=3),
        st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=2),
    )


def trace_lines():
    """Lines of a memory trace, mostly almost right."""
    address = st.one_of(st.integers(-5, 2**66).map(str), st.integers(0, 2**66).map(hex),
                        st.text(max_size=6))
    op = st.sampled_from(["LD", "ST", "ld", "st", "Ld", "XX", ""])
    return st.one_of(st.builds(lambda o, a: f"{o} {a}", op, address), st.text(max_size=20),
                     st.just("# comment"), st.just(""))
