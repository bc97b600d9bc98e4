"""Number formats as data: :class:`FormatSpec`.

A format is fully described by a handful of fields; the value of every code follows from them
(:attr:`FormatSpec.values`). Three kinds exist:

``float``
    ``[sign | exponent E (e bits) | mantissa M (m bits)]``. Normal codes are
    ``(-1)^s * (1 + M / 2^m) * 2^(E - bias)``; with ``subnormals`` the codes with ``E == 0`` are
    ``(-1)^s * (M / 2^m) * 2^(1 - bias)``.
``log``
    ``[sign | exponent code E (e bits)]``: magnitudes are powers of two, ``2^(E - bias)``.
``int``
    Two's complement integers over ``bits`` (or plain unsigned integers when ``signed`` is false).

``zero_codes``, ``nan_codes`` and ``inf_codes`` override the value a code would otherwise have (a
zero or infinity takes the sign of its sign bit). The declared ``zero_codes`` must be exactly the
codes whose value is zero, so a spec cannot silently disagree with itself.

Formats of up to 8 bits list their special codes (``specials: listed``). The wide storage formats
(``bfloat16``, ``float16``, ``float32``: 16 or 32 bits) follow IEEE 754's conventions instead
(``specials: ieee``): exponent field all ones is Inf (mantissa 0) or NaN, exponent 0 is zero or
subnormal; they are stored unscaled by default (see :class:`~prodigy_sim.numerics.Storage`).

Rounding is to nearest, ties to the code whose least significant bit is 0 ("ties to even"; or,
with ``rounding: nearest_away``, to the larger magnitude, as ml_dtypes does for E8M0), and overflow
is decided after rounding (see :mod:`prodigy_sim.numerics._codec`).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from prodigy_sim.errors import FormatError

__all__ = ["FormatSpec", "NARROW_BITS"]

NARROW_BITS = 8
"""Widest format whose codes are listed (``specials: listed``) and packed as a bit stream; wider
formats are the IEEE-style 16- and 32-bit storage formats."""
_WIDE_BITS = (16, 32)
_TABLE_BITS = 16  # widest format whose every code gets a value in a table (2**16 entries)

_F32_MAX_EXP = 127  # largest unbiased exponent of a finite float32
_F32_MIN_EXP = -149  # exponent of the smallest float32 subnormal


class FormatSpec(BaseModel):
    """Definition of a number format: 1 to 8 bits with listed special codes, or a 16- or 32-bit
    IEEE-style float (``specials: ieee``); every field is data a user may write.

    The implied value set is :attr:`values` (``float64[2**bits]``, indexed by code; formats of at
    most 16 bits). Two specs are equal when their fields are equal; :attr:`ref` is how files
    name the format (a built-in name, or the path it was loaded from).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    _source: str | None = PrivateAttr(None)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="identifier, ml_dtypes style")
    description: str = Field("", description="one sentence: what the format is and its source")
    bits: int = Field(ge=1, le=32, description="total width of one code, in bits: 1..8, or 16 / "
                                               "32 for an IEEE-style float")
    kind: Literal["float", "log", "int"] = Field(description="how a code maps to a value")
    signed: bool = Field(True, description="sign bit (float, log) or two's complement (int)")
    exponent_bits: int = Field(0, ge=0, le=8, description="exponent field width, bits")
    mantissa_bits: int = Field(0, ge=0, le=23, description="mantissa field width, bits")
    bias: int = Field(0, ge=-1024, le=1024,
                      description="exponent bias: value exponent = field - bias")
    subnormals: bool = Field(False, description="float only: E == 0 codes are subnormal")
    zero_codes: tuple[int, ...] = Field((), description="codes whose value is (signed) zero")
    nan_codes: tuple[int, ...] = Field((), description="codes that mean NaN (or 'invalid')")
    inf_codes: tuple[int, ...] = Field((), description="codes that mean +-Inf (by sign bit)")
    canonical_nan: int | None = Field(
        None,
        description="code written for a positive NaN input (a negative NaN sets the sign bit "
        "if that is a NaN code too); default: the smallest NaN code",
    )
    overflow: Literal["saturate", "nonsaturating"] = Field(
        "saturate",
        description="default overflow policy: clamp to +-max finite, or go to Inf/NaN",
    )
    specials: Literal["listed", "ieee"] = Field(
        "listed",
        description="listed: zero/NaN/Inf codes are the lists above; ieee: IEEE 754 conventions "
        "(exponent all ones = Inf or NaN, exponent 0 = zero or subnormal; 16/32-bit floats)",
    )
    rounding: Literal["nearest_even", "nearest_away"] = Field(
        "nearest_even",
        description="round to nearest; ties to the code with LSB 0 (nearest_even) or to the "
        "larger magnitude (nearest_away)",
    )

    # ---- validation -------------------------------------------------------------------------

    @field_validator("zero_codes", "nan_codes", "inf_codes")
    @classmethod
    def _sorted_unique(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"lists a code twice: {list(v)}")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _consistent(self) -> FormatSpec:
        if self.specials == "ieee":
            self._check_ieee()
        elif self.bits > NARROW_BITS:
            raise ValueError(f"'bits' = {self.bits}: formats wider than {NARROW_BITS} bits must "
                             "be IEEE-style floats ('specials: ieee')")
        s = int(self.signed)
        e, m, b = self.exponent_bits, self.mantissa_bits, self.bits
        if self.kind == "float":
            if e < 1:
                raise ValueError("'exponent_bits' must be >= 1 for kind 'float'")
            if s + e + m != b:
                raise ValueError(
                    f"'bits' = {b} does not add up: sign ({s}) + exponent_bits ({e}) + "
                    f"mantissa_bits ({m}) = {s + e + m}"
                )
        elif self.kind == "log":
            if e < 1 or m != 0:
                raise ValueError("kind 'log' needs 'exponent_bits' >= 1 and 'mantissa_bits' = 0")
            if s + e != b:
                raise ValueError(
                    f"'bits' = {b} does not add up: sign ({s}) + exponent_bits ({e}) = {s + e}"
                )
        else:
            if e != 0 or m != 0:
                raise ValueError("kind 'int' takes no 'exponent_bits' or 'mantissa_bits'")
            if self.bias != 0:
                raise ValueError("kind 'int' takes no 'bias' (scale it with a block scale)")
        if self.subnormals and self.kind != "float":
            raise ValueError("'subnormals' applies only to kind 'float'")
        n = 1 << b
        groups = {"zero_codes": self.zero_codes, "nan_codes": self.nan_codes,
                  "inf_codes": self.inf_codes}
        for field, codes in groups.items():
            bad = [c for c in codes if not 0 <= c < n]
            if bad:
                raise ValueError(f"'{field}' has codes outside 0..{n - 1}: {bad}")
        seen: dict[int, str] = {}
        for field, codes in groups.items():
            for c in codes:
                if c in seen:
                    raise ValueError(f"code {c:#x} is in both '{seen[c]}' and '{field}'")
                seen[c] = field
        natural = self._natural_values()
        zeros = tuple(int(c) for c in np.flatnonzero(natural == 0) if int(c) not in seen)
        if zeros and self.specials == "listed":
            raise ValueError(
                "'zero_codes' must list every code whose value is zero; missing "
                + ", ".join(f"{c:#x}" for c in zeros)
            )
        vals = self._values_array()
        finite = vals[np.isfinite(vals) & (vals != 0)]
        if not np.any(finite > 0):
            raise ValueError("the format has no positive finite value")
        self._check_range(finite)
        if np.unique(finite).size != finite.size:
            raise ValueError("two codes have the same finite value: the encoding is ambiguous")
        if self.canonical_nan is not None and self.canonical_nan not in self.nan_codes:
            raise ValueError(
                f"'canonical_nan' = {self.canonical_nan:#x} is not one of 'nan_codes'"
            )
        if self.overflow == "nonsaturating" and not (self.inf_codes or self.nan_codes
                                                      or self.specials == "ieee"):
            raise ValueError(
                "'overflow' = 'nonsaturating' needs an Inf or NaN code to overflow to"
            )
        return self

    def _check_ieee(self) -> None:
        if self.kind != "float" or not self.signed or not self.subnormals:
            raise ValueError("'specials: ieee' needs kind 'float', 'signed' and 'subnormals'")
        if self.bits > NARROW_BITS and self.bits not in _WIDE_BITS:
            raise ValueError(f"'bits' = {self.bits}: a wide format has 16 or 32 bits")
        if self.zero_codes or self.nan_codes or self.inf_codes or self.canonical_nan is not None:
            raise ValueError("'specials: ieee' formats take no zero/nan/inf code lists")
        if self.exponent_bits < 2:
            raise ValueError("'specials: ieee' needs 'exponent_bits' >= 2")

    def _check_range(self, finite: np.ndarray) -> None:
        """Every finite value must be exactly a float32 (so decode to float32 is exact)."""
        mags = np.abs(finite)
        with np.errstate(over="ignore"):
            exact = np.all(mags.astype(np.float32).astype(np.float64) == mags)
        lo, hi = float(mags.min()), float(mags.max())
        if not exact or hi > float(np.finfo(np.float32).max) or lo < 2.0**_F32_MIN_EXP:
            raise ValueError(
                f"'bias' = {self.bias} is out of range: the finite values span "
                f"{lo:.6g} .. {hi:.6g}, but every value must be a float32 "
                f"(magnitudes 2^{_F32_MIN_EXP} .. 2^{_F32_MAX_EXP} x (2 - 2^-23))"
            )

    # ---- the value set ---------------------------------------------------------------------

    def _natural_values(self) -> np.ndarray:
        """Values of every code before special-code overrides (float64[2**bits]); for a 32-bit
        format only the codes of a sign-free sample that decides validation (see ``_codes``)."""
        with np.errstate(over="ignore", under="ignore"):
            return self._natural_values_unguarded(self._codes())

    def _codes(self) -> np.ndarray:
        """All codes (formats of <= 16 bits), or for wider ones the positive codes whose mantissa
        is 0 or all ones (enough to find zero, the range and the specials)."""
        if self.bits <= _TABLE_BITS:
            return np.arange(1 << self.bits, dtype=np.int64)
        m = self.mantissa_bits
        ex = np.arange(1 << self.exponent_bits, dtype=np.int64) << m
        return np.sort(np.concatenate([ex, ex | ((1 << m) - 1), [1]]))

    def _natural_values_unguarded(self, codes: np.ndarray) -> np.ndarray:
        n = 1 << self.bits
        if self.kind == "int":
            if self.signed:
                return np.where(codes >= n // 2, codes - n, codes).astype(np.float64)
            return codes.astype(np.float64)
        sign_shift = self.bits - 1
        mag = codes & ((1 << sign_shift) - 1) if self.signed else codes
        neg = (((codes >> sign_shift) & 1).astype(bool) if self.signed
               else np.zeros(codes.size, bool))
        if self.kind == "log":
            out = np.ldexp(1.0, (mag - self.bias).astype(np.int64))
        else:
            m = self.mantissa_bits
            ex = mag >> m
            man = mag & ((1 << m) - 1)
            normal = np.ldexp((1 << m) + man, (ex - self.bias - m).astype(np.int64))
            if self.subnormals:
                sub = np.ldexp(man.astype(np.float64), (1 - self.bias - m))
                out = np.where(ex == 0, sub, normal)
            else:
                out = normal.astype(np.float64)
        return np.where(neg, -out, out)

    def _values_array(self) -> np.ndarray:
        vals = self._natural_values()
        if self.specials == "ieee":
            codes = self._codes()
            m = self.mantissa_bits
            top = (1 << self.exponent_bits) - 1
            ex = (codes >> m) & top
            man = codes & ((1 << m) - 1)
            neg = ((codes >> (self.bits - 1)) & 1).astype(bool)
            vals = np.where((ex == top) & (man == 0), np.where(neg, -np.inf, np.inf), vals)
            vals = np.where((ex == top) & (man != 0), np.nan, vals)
            return np.where(vals == 0, np.where(neg, -0.0, 0.0), vals)
        n = 1 << self.bits
        neg = self.sign_bits()
        for c in self.zero_codes:
            vals[c] = -0.0 if neg[c] else 0.0
        for c in self.inf_codes:
            vals[c] = -np.inf if neg[c] else np.inf
        for c in self.nan_codes:
            vals[c] = np.nan
        assert vals.shape == (n,)
        return vals

    def sign_bits(self) -> np.ndarray:
        """bool[2**bits]: whether each code's sign is negative (two's complement: value < 0)."""
        n = 1 << self.bits
        codes = np.arange(n)
        if not self.signed:
            return np.zeros(n, dtype=bool)
        return ((codes >> (self.bits - 1)) & 1).astype(bool)

    @cached_property
    def values(self) -> np.ndarray:
        """float64[2**bits]: the value of every code (NaN for NaN codes). Read-only. Formats of
        at most 16 bits (a 32-bit format has no table: use :func:`~prodigy_sim.numerics.decode`).
        """
        if self.bits > _TABLE_BITS:
            raise FormatError(f"format '{self.name}' has 2^{self.bits} codes: no value table "
                              "(decode codes with numerics.decode)")
        v = self._values_array()
        v.flags.writeable = False
        return v

    @cached_property
    def values_f32(self) -> np.ndarray:
        """float32[2**bits]: :attr:`values` as float32 (exact: validation guarantees it)."""
        v = self.values.astype(np.float32)
        v.flags.writeable = False
        return v

    def nan_code_for(self, negative: bool) -> int:
        """The code a NaN input encodes to (-1 if the format has no NaN code)."""
        if not self.nan_codes:
            return -1
        code = self.canonical_nan if self.canonical_nan is not None else self.nan_codes[0]
        if negative and self.signed:
            flipped = code | (1 << (self.bits - 1))
            if flipped in self.nan_codes:
                return flipped
        return code

    @property
    def n_codes(self) -> int:
        return 1 << self.bits

    @cached_property
    def finite_values(self) -> np.ndarray:
        """Sorted distinct finite values (float64), -0 folded into 0 (formats of <= 16 bits)."""
        v = self.values
        return np.unique(v[np.isfinite(v)] + 0.0)

    @cached_property
    def _extremes(self) -> tuple[float, float]:
        """(largest finite value, smallest positive value)."""
        v = self._values_array()
        f = v[np.isfinite(v)]
        return float(f.max()), float(f[f > 0].min())

    @property
    def max_finite(self) -> float:
        """Largest finite value."""
        return self._extremes[0]

    @property
    def min_positive(self) -> float:
        """Smallest positive value."""
        return self._extremes[1]

    @property
    def emax(self) -> int:
        """floor(log2(max_finite)): the OCP MX 'emax_elem' of the element format."""
        return math.frexp(self.max_finite)[1] - 1

    @property
    def has_zero(self) -> bool:
        return bool(self.zero_codes) or self.specials == "ieee"

    @property
    def wide(self) -> bool:
        """True for the 16/32-bit IEEE-style storage formats (stored unscaled by default; codes
        are little-endian uint16/uint32, not a bit stream)."""
        return self.bits > NARROW_BITS

    @property
    def ref(self) -> str:
        """How a file names this format: the path it was loaded from, else its name."""
        return self._source or self.name

    def with_source(self, source: str) -> FormatSpec:
        """This spec remembering the file it was read from (see :attr:`ref`)."""
        spec = self.model_copy()
        spec._source = source
        return spec

    def _key(self) -> tuple:
        return tuple(getattr(self, f) for f in type(self).model_fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FormatSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def describe(self) -> str:
        """One line: kind, layout, bias, range and special codes."""
        parts = [f"{self.bits}-bit {self.kind}"]
        if self.kind == "float":
            parts.append(f"e{self.exponent_bits}m{self.mantissa_bits} bias {self.bias}")
        elif self.kind == "log":
            parts.append(f"e{self.exponent_bits} bias {self.bias}")
        parts.append(f"max {self.max_finite:g}, min>0 {self.min_positive:g}")
        specials = []
        if self.nan_codes:
            specials.append("NaN " + ",".join(f"{c:#04x}" for c in self.nan_codes))
        if self.inf_codes:
            specials.append("Inf " + ",".join(f"{c:#04x}" for c in self.inf_codes))
        if self.specials == "ieee":
            specials.append("IEEE Inf/NaN")
        elif not self.zero_codes:
            specials.append("no zero")
        if specials:
            parts.append("; ".join(specials))
        parts.append(f"overflow {self.overflow}")
        return ", ".join(parts)
