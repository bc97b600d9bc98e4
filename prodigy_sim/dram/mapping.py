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

``bank_group_xor`` (permutation-based interleaving, as real controllers hash bank bits with lower
address bits): the bank group becomes ``bank_group XOR (column mod bank_groups)``. The map stays
one-to-one; consecutive lines of a row-sized block go to different bank groups (tCCD_S apart
instead of tCCD_L), and each (bank group, bank, row) still holds a whole row of lines.
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
def _map_kernel(addr, offset_bits, channel_bits, shift, mask, banks_per_group, bg_xor, out):
    """Slice ``addr`` (uint64, shape (n,)) into ``out`` (int64, shape (5, n)): channel, bank
    group, flat bank, row, column. ``shift`` / ``mask`` (uint64, shape (4,)): position and mask of
    column, bank group, bank and row in the per-channel line index (one branch-free pass).
    ``bg_xor``: the bank group is XORed with the column's low bits."""
    ob = np.uint64(offset_bits)
    cbits = np.uint64(channel_bits)
    ch_mask = (np.uint64(1) << cbits) - np.uint64(1)
    s_col, s_bg, s_bk, s_row = shift[0], shift[1], shift[2], shift[3]
    m_col, m_bg, m_bk, m_row = mask[0], mask[1], mask[2], mask[3]
    bpg = np.uint64(banks_per_group)
    for i in range(addr.shape[0]):
        line = addr[i] >> ob
        a = line >> cbits
        bg = (a >> s_bg) & m_bg
        if bg_xor:
            bg ^= (a >> s_col) & m_col & m_bg
        out[0, i] = np.int64(line & ch_mask)
        out[1, i] = np.int64(bg)
        out[2, i] = np.int64(bg * bpg + ((a >> s_bk) & m_bk))
        out[3, i] = np.int64((a >> s_row) & m_row)
        out[4, i] = np.int64((a >> s_col) & m_col)


# slicing parameters of recently used configurations, by object identity (see model._params)
_LAYOUT_CACHE: dict[int, tuple] = {}


def _layout(config: MemorySystemConfig) -> tuple:
    hit = _LAYOUT_CACHE.get(id(config))
    if hit is None or hit[0] is not config:
        if len(_LAYOUT_CACHE) >= 64:
            _LAYOUT_CACHE.clear()
        w = _widths(config)
        pos = 0
        shift = np.zeros(4, np.uint64)
        mask = np.zeros(4, np.uint64)
        for field in _order(config):
            k = _FIELD_IDS[field]
            shift[k] = pos
            mask[k] = (1 << w[field]) - 1
            pos += w[field]
        hit = (config, w["offset"], w["channel"], shift, mask, config.org.banks_per_group)
        _LAYOUT_CACHE[id(config)] = hit
    return hit


def map_addresses(config: MemorySystemConfig, addr: np.ndarray) -> MappedAddresses:
    """Map byte addresses (uint64 or int64, shape (n,)) to DRAM coordinates (int64 arrays)."""
    a = np.ascontiguousarray(np.asarray(addr).astype(np.uint64, copy=False))
    out = np.empty((5, a.size), np.int64)
    _, offset_bits, channel_bits, shift, mask, banks_per_group = _layout(config)
    _map_kernel(a, offset_bits, channel_bits, shift, mask, banks_per_group,
                config.bank_group_xor, out)
    return MappedAddresses(channel=out[0], bank_group=out[1], bank=out[2], row=out[3],
                           column=out[4])
