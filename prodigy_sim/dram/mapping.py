"""Physical byte address -> (channel, bank group, bank, row, column), vectorized with numpy.

Both mappings first split off the 6-bit offset inside a 64-B transaction and the channel, as
Ramulator 2's ``CacheLineInterleave`` channel mapper does (``channel = line % C`` for ``C`` a power
of two; the rest of the line index, ``line // C``, goes to the per-channel address mapper). The
per-channel line index ``a`` is then sliced from the LSB:

``RoBaRaCoCh``::

    a = | row | bank | bank group | (rank: 0 bits) | column |
        MSB                                              LSB

``RoCoBaBgCh`` (bank-group interleave)::

    a = | row | column | bank | bank group |

Bits above the row field are discarded (the address space wraps), as in Ramulator. The column
field is the line index inside the row (columns / prefetch values, 64 for 16Gb x8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from prodigy_sim.dram.config import MemorySystemConfig

__all__ = ["MappedAddresses", "map_addresses", "bit_layout"]


@dataclass(frozen=True)
class MappedAddresses:
    """Per-request DRAM coordinates, each an int64 array of shape (n,)."""

    channel: np.ndarray
    bank_group: np.ndarray
    bank: np.ndarray
    """Flat bank id inside the rank: bank_group x banks_per_group + bank in group."""
    row: np.ndarray
    column: np.ndarray


def _widths(config: MemorySystemConfig) -> dict[str, int]:
    org = config.org
    return {
        "offset": org.tx_bytes.bit_length() - 1,
        "channel": config.channels.bit_length() - 1,
        "column": org.lines_per_row.bit_length() - 1,
        "bank_group": org.bank_groups.bit_length() - 1,
        "bank": org.banks_per_group.bit_length() - 1,
        "row": org.rows.bit_length() - 1,
    }


def _order(config: MemorySystemConfig) -> tuple[str, ...]:
    """Fields of the per-channel line index from LSB to MSB."""
    if config.mapping == "RoBaRaCoCh":
        return ("column", "bank_group", "bank", "row")
    return ("bank_group", "bank", "column", "row")


def bit_layout(config: MemorySystemConfig) -> dict[str, tuple[int, int]]:
    """Byte-address bit range ``(lsb, msb)`` (inclusive) of every field; empty fields are omitted.

    Example (1 channel, RoBaRaCoCh, 16Gb x8): offset (0, 5), column (6, 11), bank_group (12, 14),
    bank (15, 16), row (17, 32).
    """
    w = _widths(config)
    out: dict[str, tuple[int, int]] = {}
    pos = 0
    for field in ("offset", "channel", *_order(config)):
        if w[field]:
            out[field] = (pos, pos + w[field] - 1)
            pos += w[field]
    return out


_FIELD_IDS = {"column": 0, "bank_group": 1, "bank": 2, "row": 3}


@njit(cache=True)
def _map_kernel(addr, offset_bits, channel_bits, order, widths, banks_per_group, out):
    """Slice ``addr`` (uint64, shape (n,)) into ``out`` (int64, shape (5, n)): channel, bank
    group, flat bank, row, column. ``order``/``widths`` (shape (4,)) list the per-channel fields
    (0 column, 1 bank group, 2 bank, 3 row) from the LSB and their widths in bits."""
    ch_mask = (np.uint64(1) << np.uint64(channel_bits)) - np.uint64(1)
    f = np.zeros(4, np.int64)
    for i in range(addr.shape[0]):
        line = addr[i] >> np.uint64(offset_bits)
        a = line >> np.uint64(channel_bits)
        for k in range(4):
            wk = np.uint64(widths[k])
            f[order[k]] = np.int64(a & ((np.uint64(1) << wk) - np.uint64(1)))
            a = a >> wk
        out[0, i] = np.int64(line & ch_mask)
        out[1, i] = f[1]
        out[2, i] = f[1] * banks_per_group + f[2]
        out[3, i] = f[3]
        out[4, i] = f[0]


def map_addresses(config: MemorySystemConfig, addr: np.ndarray) -> MappedAddresses:
    """Map byte addresses (uint64 or int64, shape (n,)) to DRAM coordinates (int64 arrays)."""
    a = np.ascontiguousarray(np.asarray(addr).astype(np.uint64, copy=False))
    w = _widths(config)
    order = _order(config)
    out = np.empty((5, a.size), np.int64)
    _map_kernel(a, w["offset"], w["channel"], np.array([_FIELD_IDS[f] for f in order], np.int64),
                np.array([w[f] for f in order], np.int64), config.org.banks_per_group, out)
    return MappedAddresses(channel=out[0], bank_group=out[1], bank=out[2], row=out[3],
                           column=out[4])
