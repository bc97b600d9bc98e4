"""The shared L3's state ("virtual L3" in idle L2): an LRU over 4 KiB blocks with a valid bit per
64-B line, looked up a batch at a time by a Numba kernel.

An *entry* is a block's record: its valid lines (a 64-bit mask), the cycle its data is in its
home slice (``ready``) and its block index. Blocks find their entries through an open-addressing
hash table in two arrays (linear probing, deletion by backward shift), so the whole state is
numpy arrays. A block evicted during a batch keeps its entry until the batch ends (the batch's
fills and hits may still refer to it); its slot is reused from the next batch on.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["BLOCK_SHIFT", "LINES_PER_BLOCK", "L3Blocks", "fill_ready"]

BLOCK_SHIFT = 6
"""L3 blocks are 2**6 lines (4 KiB of 64-B lines)."""
LINES_PER_BLOCK = 1 << BLOCK_SHIFT

# meta: head (LRU), tail (MRU), entries cached, free slots, retired slots
_HEAD, _TAIL, _COUNT, _NFREE, _NRET = range(5)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _home(key, shift):
    """Home slot of ``key`` in a table of ``2**(64 - shift)`` slots (multiplicative hashing)."""
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@njit(cache=True)
def _find(keys, key, shift):
    """Slot of ``key`` in the open-addressing table ``keys`` (-1 = empty slot), or the empty
    slot where it would go, as ``(slot, found)`` (linear probing)."""
    mask = keys.shape[0] - 1
    i = _home(key, shift)
    while keys[i] != -1:
        if keys[i] == key:
            return i, True
        i = (i + 1) & mask
    return i, False


@njit(cache=True)
def _delete(keys, vals, i, shift):
    """Empty slot ``i`` of the table, moving later keys of its probe run back (Knuth's
    algorithm R: no tombstones, every key stays reachable from its home slot)."""
    mask = keys.shape[0] - 1
    j = i
    while True:
        j = (j + 1) & mask
        if keys[j] == -1:
            break
        k = _home(keys[j], shift)
        # move keys[j] into the hole at i unless its home lies cyclically in (i, j]
        if (i <= j and (k <= i or k > j)) or (i > j and k <= i and k > j):
            keys[i] = keys[j]
            vals[i] = vals[j]
            i = j
    keys[i] = -1


@njit(cache=True)
def _lookup(lines, first, keys, vals, shift, valid, ready, block, prev, nxt, free, retired,
            meta, cap, hit, ent):
    """Look ``lines`` (int64, shape (n,): the loads of a batch, DMA after DMA; ``first`` marks
    each DMA's first line) up in issue order. A run of consecutive lines of one block within
    one DMA is one lookup: a miss allocates the block (evicting the least recently used one when
    ``cap`` blocks are cached) with those lines valid; a hit moves the block to the most
    recently used end, and its lines that were valid before are hits. Sets ``hit`` (bool) and
    ``ent`` (the entry of the line's block) per line; returns the number of hits."""
    head, tail, count = meta[_HEAD], meta[_TAIL], meta[_COUNT]
    nfree, nret = meta[_NFREE], meta[_NRET]
    n = lines.shape[0]
    hits = 0
    i = 0
    while i < n:
        b = lines[i] >> BLOCK_SHIFT
        m = np.uint64(0)
        j = i
        while True:
            m |= np.uint64(1) << np.uint64(lines[j] & (LINES_PER_BLOCK - 1))
            j += 1
            if j >= n or first[j] or (lines[j] >> BLOCK_SHIFT) != b:
                break
        slot, found = _find(keys, b, shift)
        e = vals[slot] if found else np.int64(-1)
        if e < 0:
            if count >= cap:                        # evict the least recently used block
                v = head
                head = nxt[v]
                if head >= 0:
                    prev[head] = -1
                else:
                    tail = -1
                _delete(keys, vals, _find(keys, block[v], shift)[0], shift)
                retired[nret] = v
                nret += 1
                count -= 1
            nfree -= 1
            e = free[nfree]
            valid[e] = m
            ready[e] = 0
            block[e] = b
            prev[e] = tail
            nxt[e] = -1
            if tail >= 0:
                nxt[tail] = e
            else:
                head = e
            tail = e
            slot = _find(keys, b, shift)[0]         # (the eviction may have moved keys)
            keys[slot] = b
            vals[slot] = e
            count += 1
            hm = np.uint64(0)
        else:
            if e != tail:                           # to the most recently used end
                p, q = prev[e], nxt[e]
                if p >= 0:
                    nxt[p] = q
                else:
                    head = q
                prev[q] = p
                prev[e] = tail
                nxt[e] = -1
                nxt[tail] = e
                tail = e
            hm = m & valid[e]
            valid[e] |= m
        for k in range(i, j):
            ent[k] = e
            h = (hm >> np.uint64(lines[k] & (LINES_PER_BLOCK - 1))) & np.uint64(1)
            hit[k] = h != 0
            hits += np.int64(h)
        i = j
    meta[_HEAD], meta[_TAIL], meta[_COUNT] = head, tail, count
    meta[_NFREE], meta[_NRET] = nfree, nret
    return hits


@njit(cache=True)
def _count_lookups(lines, first):
    """The lookups :func:`_lookup` makes of ``lines`` (n >= 1): runs of one block within one
    DMA."""
    count = 1
    for i in range(1, lines.shape[0]):
        if first[i] or (lines[i] >> BLOCK_SHIFT) != (lines[i - 1] >> BLOCK_SHIFT):
            count += 1
    return count


class L3Blocks:
    """The L3 of ``capacity`` blocks (>= 1). ``ready[entry]`` is the cycle a block's data is in
    its home slice; :meth:`lookup` returns entries, which stay valid until the next lookup."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an L3 holds >= 1 block (got {capacity})")
        self.capacity = capacity
        bits = max(4, (2 * capacity - 1).bit_length())  # >= 2x the blocks: load <= 1/2
        self._keys = np.full(1 << bits, -1, np.int64)
        self._vals = np.zeros(1 << bits, np.int64)
        self._shift = 64 - bits
        self._meta = np.array([-1, -1, 0, 0, 0], np.int64)
        self.valid = np.zeros(0, np.uint64)
        """Valid lines of every entry (bit ``l`` = line ``l`` of the block)."""
        self.ready = np.zeros(0, np.int64)
        """Cycle every entry's data is in its home slice (set by the caller on fills)."""
        self.block = np.zeros(0, np.int64)
        self._prev = np.zeros(0, np.int64)
        self._next = np.zeros(0, np.int64)
        self._free = np.zeros(0, np.int64)
        self._retired = np.zeros(0, np.int64)
        self._grow(1024)

    def _grow(self, extra: int) -> None:
        """``extra`` more entry slots, on the free stack."""
        old = self.valid.size
        size = old + extra

        def ext(a: np.ndarray, fill: int) -> np.ndarray:
            out = np.full(size, fill, a.dtype)
            out[:old] = a
            return out

        self.valid, self.ready, self.block = ext(self.valid, 0), ext(self.ready, 0), \
            ext(self.block, 0)
        self._prev, self._next = ext(self._prev, -1), ext(self._next, -1)
        nfree = int(self._meta[_NFREE])
        free = np.zeros(size, np.int64)
        free[:nfree] = self._free[:nfree]
        free[nfree:nfree + extra] = np.arange(size - 1, old - 1, -1)
        self._free = free
        self._meta[_NFREE] = nfree + extra
        self._retired = ext(self._retired, 0)

    def lookup(self, lines: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """One batch's loads (see :func:`_lookup`): per line hit (bool) and entry (int64), and
        the number of hits. Frees the entries the previous batch evicted."""
        meta = self._meta
        nret = int(meta[_NRET])
        if nret:                                    # the previous batch is over
            nfree = int(meta[_NFREE])
            self._free[nfree:nfree + nret] = self._retired[:nret]
            meta[_NFREE] = nfree + nret
            meta[_NRET] = 0
        n = lines.size
        if not n:
            return np.zeros(0, np.bool_), np.zeros(0, np.int64), 0
        hit = np.empty(n, np.bool_)                 # (_lookup sets every line's)
        ent = np.empty(n, np.int64)
        lines = np.ascontiguousarray(lines, np.int64)
        first = np.ascontiguousarray(first, np.bool_)
        lookups = int(_count_lookups(lines, first))
        # each lookup may allocate an entry (from the free slots) and retire one (the retired
        # slots fit: there are as many as entries, and lookups <= free slots <= entries)
        short = lookups - int(meta[_NFREE])
        if short > 0:
            self._grow(max(short, self.valid.size))
        hits = _lookup(lines, first, self._keys, self._vals, self._shift, self.valid,
                       self.ready, self.block, self._prev, self._next, self._free,
                       self._retired, meta, self.capacity, hit, ent)
        return hit, ent, int(hits)



@njit(cache=True)
def _fill_ready(ready, fill_ent, line, ctrl, comp, ctrl_slice_lat, slices):
    for i in range(fill_ent.shape[0]):
        e = fill_ent[i]
        if e >= 0:
            v = comp[i] + ctrl_slice_lat[ctrl[i], line[i] % slices]
            if v > ready[e]:
                ready[e] = v


def fill_ready(ready: np.ndarray, fill_ent: np.ndarray, line: np.ndarray, ctrl: np.ndarray,
               comp: np.ndarray, ctrl_slice_lat: np.ndarray, slices: int) -> None:
    """Raise ``ready[fill_ent[i]]`` (the cycle an L3 entry's data is in its home slice) to
    ``comp[i] + ctrl_slice_lat[ctrl[i], line[i] % slices]`` for every DDR line ``i`` that fills
    an entry (``fill_ent[i] >= 0``; -1: fills none). All int64, shape (n,) but ``ready``
    (entries) and ``ctrl_slice_lat`` (controllers, slices); ``ready`` updated in place."""
    if fill_ent.size:
        _fill_ready(ready, fill_ent, line, ctrl, comp, ctrl_slice_lat, np.int64(slices))
