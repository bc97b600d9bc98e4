"""Packing sub-byte codes: documented bit order and exact round trips."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import EncodeError
from prodigy_sim.numerics import pack, packed_row_bytes, unpack


def test_documented_bit_order():
    assert pack(np.array([0x1, 0x2, 0x3]), 4).tolist() == [0x21, 0x03]
    assert pack(np.array([1, 2, 3, 0, 3]), 2).tolist() == [0b00111001, 0b11]
    # 6-bit: four codes in three bytes, little-endian bit stream
    c = np.array([0b111111, 0, 0b101010, 0b000001])
    stream = sum(int(v) << (6 * i) for i, v in enumerate(c))
    assert pack(c, 6).tolist() == list(stream.to_bytes(3, "little"))


@given(bits=st.integers(1, 8), rows=st.integers(1, 4), k=st.integers(1, 70),
       seed=st.integers(0, 99))
def test_pack_unpack_round_trip(bits, rows, k, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << bits, size=(rows, k), dtype=np.uint8)
    packed = pack(codes, bits)
    assert packed.shape == (rows, packed_row_bytes(k, bits)) == (rows, (k * bits + 7) // 8)
    np.testing.assert_array_equal(unpack(packed, bits, k), codes)
    # independent reference: the little-endian bit stream of each row
    for r in range(rows):
        stream = sum(int(v) << (bits * i) for i, v in enumerate(codes[r]))
        assert packed[r].tobytes() == stream.to_bytes(packed.shape[1], "little")


def test_bad_packing_input():
    with pytest.raises(EncodeError, match="< 2\\*\\*4"):
        pack(np.array([16]), 4)
    with pytest.raises(EncodeError, match="need 2 bytes per row"):
        unpack(np.zeros(3, np.uint8), 4, 4)
