"""Number formats, codecs, block scaling, structured sparsity, packing and footprint.

Formats are data (:class:`FormatSpec`, built-ins in ``numerics/formats/*.yaml``, the wide
storage formats bfloat16/float16/float32 included); ``encode`` and ``decode`` convert between
real numbers and codes with one documented rounding rule for every format. :class:`Storage` is
how a tensor is stored - format, scale block, :class:`ScaleKind`, :class:`Sparsity` - with its
exact byte layout; ``quantize`` applies it (OCP MX E8M0 by default) and returns a
:class:`QuantizedTensor`; ``footprint`` counts its bytes without building it.

Each public name is imported from its module on first use (:mod:`prodigy_sim._lazy`): the
format descriptions and storage layouts (``FormatSpec``, ``Storage``, ``ScaleKind``) load without
the Numba kernels, so a command that only lists or counts starts fast.
"""

from typing import TYPE_CHECKING

from prodigy_sim._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from prodigy_sim.numerics._blocks import QuantizedTensor as QuantizedTensor
    from prodigy_sim.numerics._blocks import quantize as quantize
    from prodigy_sim.numerics._codec import decode as decode
    from prodigy_sim.numerics._codec import encode as encode
    from prodigy_sim.numerics._footprint import footprint as footprint
    from prodigy_sim.numerics._packing import pack as pack
    from prodigy_sim.numerics._packing import packed_row_bytes as packed_row_bytes
    from prodigy_sim.numerics._packing import unpack as unpack
    from prodigy_sim.numerics._registry import FORMAT_ALIASES as FORMAT_ALIASES
    from prodigy_sim.numerics._registry import builtin_formats as builtin_formats
    from prodigy_sim.numerics._registry import format_names as format_names
    from prodigy_sim.numerics._registry import get_format as get_format
    from prodigy_sim.numerics._registry import load_format as load_format
    from prodigy_sim.numerics._registry import parse_format as parse_format
    from prodigy_sim.numerics._scale import ScaleKind as ScaleKind
    from prodigy_sim.numerics._scale import scale_kind as scale_kind
    from prodigy_sim.numerics._sparsity import SparseTensor as SparseTensor
    from prodigy_sim.numerics._sparsity import compress as compress
    from prodigy_sim.numerics._sparsity import nm_mask as nm_mask
    from prodigy_sim.numerics._sparsity import prune as prune
    from prodigy_sim.numerics._sparsity import sparsity_metadata_nbytes as sparsity_metadata_nbytes
    from prodigy_sim.numerics._sparsity import unpack_mask as unpack_mask
    from prodigy_sim.numerics._sparsity import wanda_scores as wanda_scores
    from prodigy_sim.numerics._spec import NARROW_BITS as NARROW_BITS
    from prodigy_sim.numerics._spec import FormatSpec as FormatSpec
    from prodigy_sim.numerics._storage import Footprint as Footprint
    from prodigy_sim.numerics._storage import FormatField as FormatField
    from prodigy_sim.numerics._storage import RowBytes as RowBytes
    from prodigy_sim.numerics._storage import Sparsity as Sparsity
    from prodigy_sim.numerics._storage import Storage as Storage
    from prodigy_sim.numerics._storage import parse_sparsity as parse_sparsity

_EXPORTS = {
    "QuantizedTensor": "_blocks",
    "quantize": "_blocks",
    "decode": "_codec",
    "encode": "_codec",
    "footprint": "_footprint",
    "pack": "_packing",
    "packed_row_bytes": "_packing",
    "unpack": "_packing",
    "FORMAT_ALIASES": "_registry",
    "builtin_formats": "_registry",
    "format_names": "_registry",
    "get_format": "_registry",
    "load_format": "_registry",
    "parse_format": "_registry",
    "SparseTensor": "_sparsity",
    "compress": "_sparsity",
    "nm_mask": "_sparsity",
    "prune": "_sparsity",
    "sparsity_metadata_nbytes": "_sparsity",
    "unpack_mask": "_sparsity",
    "wanda_scores": "_sparsity",
    "NARROW_BITS": "_spec",
    "FormatSpec": "_spec",
    "Footprint": "_storage",
    "FormatField": "_storage",
    "RowBytes": "_storage",
    "ScaleKind": "_scale",
    "Sparsity": "_storage",
    "Storage": "_storage",
    "parse_sparsity": "_storage",
    "scale_kind": "_scale",
}
"""Public name -> the module of this package that defines it."""

__all__ = [
    "NARROW_BITS",
    "Footprint",
    "FormatField",
    "FormatSpec",
    "QuantizedTensor",
    "RowBytes",
    "ScaleKind",
    "SparseTensor",
    "Sparsity",
    "Storage",
    "builtin_formats",
    "compress",
    "decode",
    "encode",
    "footprint",
    "format_names",
    "FORMAT_ALIASES",
    "get_format",
    "load_format",
    "nm_mask",
    "pack",
    "packed_row_bytes",
    "parse_format",
    "parse_sparsity",
    "prune",
    "quantize",
    "scale_kind",
    "sparsity_metadata_nbytes",
    "unpack",
    "unpack_mask",
    "wanda_scores",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
