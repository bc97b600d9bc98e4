"""How a tensor is stored: :class:`Storage` = element format, scale block, scale kind, sparsity.

One typed object describes a stored 2-D tensor (rows x ``cols``; ``cols`` is the quantized axis,
the reduction axis K of a matmul's weights) for every room of the simulator: model cards and
scenarios (weights, activations, KV cache), ISA declarations, the functional core's byte
layout, the timing model and the footprint. Its byte counts are the exact sizes of what
:func:`~prodigy_sim.numerics.quantize` produces.

Row layout (ISA and DDR alike; ``isa/README.md``)::

    | codes: ceil(kept * bits / 8) B | scales: n_blocks * scale bytes | sparsity masks |

``kept`` = ``cols`` (dense) or ``cols * kept / group`` (n:m sparse); a per-tensor scale
(``block=0``) is one scale after all rows.

Scale kinds (:class:`ScaleKind`) say how a block scale is stored; the rule that chooses it is
:func:`~prodigy_sim.numerics.quantize`'s (see its module):

=========  ==========================  =================================================
kind       stored as                   chosen by
=========  ==========================  =================================================
e8m0       float8_e8m0fnu code, 1 B    OCP MX: 2^(floor(log2 amax) - emax_elem)
e4m3       float8_e4m3fn code, 1 B     amax / max_elem rounded to E4M3
fp32       float32, 4 B                amax / max_elem
absmean    float32, 4 B                mean |x| (BitNet b1.58)
none       nothing                     (unscaled)
=========  ==========================  =================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from prodigy_sim.errors import ConfigError, FormatError, config_error_from_validation
from prodigy_sim.numerics._registry import get_format
from prodigy_sim.numerics._scale import ScaleKind as ScaleKind
from prodigy_sim.numerics._scale import scale_kind as scale_kind
from prodigy_sim.numerics._spec import FormatSpec

__all__ = ["ScaleKind", "Sparsity", "Storage", "RowBytes", "Footprint", "parse_sparsity",
           "scale_kind"]


@dataclass(frozen=True)
class Sparsity:
    """n:m structured sparsity: ``kept`` of every ``group`` consecutive elements along a row.

    Written ``"group:kept"`` (Tachyum's ``8:4``). Not a tuple on purpose: fields are named.
    """

    group: int
    kept: int

    def __post_init__(self) -> None:
        if not (isinstance(self.group, int) and isinstance(self.kept, int)
                and 1 <= self.kept <= self.group <= 256):
            raise ConfigError(f"'sparsity' must keep 1..group of every group <= 256 elements "
                              f"(got group {self.group!r}, kept {self.kept!r})")

    def __str__(self) -> str:
        return f"{self.group}:{self.kept}"

    @property
    def density(self) -> float:
        """Fraction of elements kept."""
        return self.kept / self.group

    def kept_of(self, cols: int) -> int:
        """Kept elements of a row of ``cols`` (a multiple of ``group``)."""
        return cols * self.kept // self.group

    @property
    def mask_bytes_per_group(self) -> int:
        """Bytes of one group's keep-mask (one bit per position, whole bytes)."""
        return -(-self.group // 8)


def parse_sparsity(value: Sparsity | str | tuple[int, int] | None) -> Sparsity | None:
    """``None``/``"none"`` -> None; ``"A:B"`` or a pair ``(A, B)`` -> :class:`Sparsity`.

    The larger number is the group size, so Tachyum's ``"8:4"`` (group first) and NVIDIA's
    ``"2:4"`` (kept first) both read the way their authors mean them.
    """
    if value is None or isinstance(value, Sparsity):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "none":
            return None
        parts = text.split(":")
        if (len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit()
                                       and len(p.strip()) <= 4 for p in parts)):
            raise ConfigError(f"'sparsity' must be 'none' or look like '8:4' (got {value!r})")
        a, b = (int(p) for p in parts)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        a, b = value
    else:
        raise ConfigError(f"'sparsity' must be 'none', 'GROUP:KEPT' or a pair of ints "
                          f"(got {value!r})")
    return Sparsity(group=max(a, b), kept=min(a, b))


@dataclass(frozen=True)
class RowBytes:
    """Bytes per row of a stored (R, C) tensor - packed codes, scales, sparsity masks - and the
    bytes of a per-tensor scale (once per tensor)."""

    code: int
    scale: int
    meta: int
    per_tensor: int = 0

    @property
    def per_row(self) -> int:
        return self.code + self.scale + self.meta

    def total(self, rows: int) -> int:
        """Whole footprint in bytes of ``rows`` rows."""
        return rows * self.per_row + self.per_tensor


@dataclass(frozen=True)
class Footprint:
    """Bytes of one tensor, by part."""

    elements: int
    code_bytes: int
    scale_bytes: int
    metadata_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.scale_bytes + self.metadata_bytes

    @property
    def bits_per_element(self) -> float:
        """Average stored bits per dense element (codes, scales and metadata together)."""
        return 8.0 * self.total_bytes / self.elements if self.elements else 0.0


def _format(value: Any) -> FormatSpec:
    if isinstance(value, FormatSpec):
        return value
    if isinstance(value, str):
        try:
            return get_format(value)
        except FormatError as err:
            raise ValueError(str(err)) from None
    raise ValueError(f"expected a format name, file or FormatSpec (got {value!r})")


def _sparsity(value: Any) -> Sparsity | None:
    try:
        return parse_sparsity(value)
    except ConfigError as err:
        raise ValueError(str(err)) from None


FormatField = Annotated[FormatSpec, BeforeValidator(_format),
                        PlainSerializer(lambda f: f.ref, return_type=str)]
"""A format given by name, file path or :class:`FormatSpec`; serialized as its ``ref``."""

SparsityField = Annotated[Sparsity | None, BeforeValidator(_sparsity),
                          PlainSerializer(lambda s: "none" if s is None else str(s),
                                          return_type=str)]


class Storage(BaseModel):
    """How a tensor is stored: ``fmt``, ``block``, ``scale`` kind and ``sparsity``.

    ``block``: elements along a row sharing one scale (>= 1); ``None`` = one scale per row;
    ``0`` = one scale for the whole tensor. An unscaled storage (``scale='none'``) has no block
    (``None``; a given one is dropped). Defaults: formats of
    at most 8 bits take OCP MX (``block=32``, ``scale='e8m0'``); the wide formats (bfloat16,
    float16, float32) are stored unscaled. In YAML the format key may be written
    ``format`` or ``fmt``, and a bare string means the format with its defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    fmt: FormatField = Field(alias="format", description="element format")
    block: int | None = Field(None, ge=0, le=1 << 24,
                              description="elements per scale along a row; None = per row, "
                                          "0 = per tensor")
    scale: ScaleKind = Field(ScaleKind.NONE, description="how a block scale is stored")
    sparsity: SparsityField = Field(None, description="n:m structured sparsity along a row")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, (str, FormatSpec)):
            data = {"format": data}
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None or k == "block"}
        fmt = data.get("fmt", data.get("format"))
        spec = fmt if isinstance(fmt, FormatSpec) else None
        if isinstance(fmt, str):
            try:
                spec = get_format(fmt)
            except FormatError:
                return data                     # the field validator reports it
        if spec is not None and data.get("scale") is None:
            data["scale"] = ScaleKind.NONE if spec.wide else ScaleKind.E8M0
        if data.get("scale") in ("none", ScaleKind.NONE):
            data["block"] = None                  # an unscaled storage has no block
        elif "block" not in data and "scale" in data:
            data["block"] = 32
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Storage:
        if self.fmt.wide and self.scale != ScaleKind.NONE:
            raise ValueError(f"{self.fmt.name} is stored unscaled: expected scale=none (got "
                             f"scale={self.scale})")
        if self.sparsity is not None and self.block and self.block % self.sparsity.group:
            raise ValueError(f"block={self.block} must be a multiple of the sparsity group "
                             f"{self.sparsity.group}")
        return self

    @classmethod
    def of(cls, fmt: FormatSpec | str, block: int | None | str = "default",
           scale: ScaleKind | str | None = None,
           sparsity: Sparsity | str | tuple[int, int] | None = None) -> Storage:
        """A storage with the defaults of ``fmt`` for what is not given (``block="default"``,
        ``scale=None``); ConfigError if the combination is invalid. An unscaled storage has no
        block (a given one is ignored)."""
        data: dict[str, Any] = {"fmt": fmt, "scale": scale, "sparsity": sparsity}
        if block != "default" and scale not in ("none", ScaleKind.NONE):
            data["block"] = block
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise config_error_from_validation(err, source="storage") from None

    # ---- derived facts -----------------------------------------------------------------------

    @property
    def bits(self) -> int:
        """Bits of one element code."""
        return self.fmt.bits

    @property
    def scaled(self) -> bool:
        return self.scale != ScaleKind.NONE

    @property
    def per_tensor(self) -> bool:
        """One scale for the whole tensor (``block=0`` with a scale)."""
        return self.block == 0 and self.scaled

    def kept(self, cols: int) -> int:
        """Stored (kept) elements of a row of ``cols``."""
        return cols if self.sparsity is None else self.sparsity.kept_of(cols)

    def check_cols(self, cols: int, *, whole_blocks: bool = False) -> None:
        """ConfigError unless a row of ``cols`` elements can be stored: whole sparsity groups,
        and (``whole_blocks``, as the ISA requires) whole scale blocks."""
        if cols < 0:
            raise ConfigError(f"cols must be >= 0 (got {cols})")
        if whole_blocks and self.block and self.scaled and cols % self.block:
            raise ConfigError(f"cols ({cols}) must be a multiple of block ({self.block})")
        if self.sparsity is not None and cols % self.sparsity.group:
            raise ConfigError(f"cols ({cols}) must be a multiple of the sparsity group "
                              f"({self.sparsity.group})")

    def row_bytes(self, cols: int) -> RowBytes:
        """Byte sizes of one stored row of ``cols`` elements (see the module docstring; a last
        partial block has a scale of its own)."""
        self.check_cols(cols)
        kept = self.kept(cols)
        if not self.scaled or self.per_tensor:
            n_blocks = 0
        elif self.block is None:
            n_blocks = 1 if cols else 0
        else:
            n_blocks = -(-cols // self.block)
        meta = 0 if self.sparsity is None else (cols // self.sparsity.group
                                                * self.sparsity.mask_bytes_per_group)
        from prodigy_sim.numerics._packing import packed_row_bytes  # its module loads Numba

        return RowBytes(code=packed_row_bytes(kept, self.bits),
                        scale=n_blocks * self.scale.nbytes, meta=meta,
                        per_tensor=self.scale.nbytes if self.per_tensor else 0)

    def nbytes(self, rows: int, cols: int) -> int:
        """Bytes of a stored (rows, cols) tensor."""
        return self.row_bytes(cols).total(rows)

    def footprint(self, rows: int, cols: int) -> Footprint:
        """Bytes of a stored (rows, cols) tensor, by part."""
        rb = self.row_bytes(cols)
        return Footprint(elements=rows * cols, code_bytes=rows * rb.code,
                         scale_bytes=rows * rb.scale + rb.per_tensor,
                         metadata_bytes=rows * rb.meta)

    def label(self) -> str:
        """Short description, e.g. ``tai4/32 e8m0``, ``tai2/32 e8m0 8:4`` or ``float32``."""
        out = self.fmt.name
        if self.scaled:
            blk = "tensor" if self.block == 0 else (self.block or "row")
            out += f"/{blk} {self.scale}"
        if self.sparsity is not None:
            out += f" {self.sparsity}"
        return out

    def __str__(self) -> str:
        return self.label()
