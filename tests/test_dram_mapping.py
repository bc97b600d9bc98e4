"""Address mapping: the bit layouts of the calibration document, bank-group interleaving."""

import numpy as np
import pytest

from prodigy_sim.dram import bit_layout, map_addresses, memory_system_preset

# tests/data/calibration/ddr5_memory_system.md section 2 (verified against Ramulator command traces)
LAYOUTS = {
    1: {"offset": (0, 5), "column": (6, 11), "bank_group": (12, 14), "bank": (15, 16),
        "row": (17, 32)},
    2: {"offset": (0, 5), "channel": (6, 6), "column": (7, 12), "bank_group": (13, 15),
        "bank": (16, 17), "row": (18, 33)},
    4: {"offset": (0, 5), "channel": (6, 7), "column": (8, 13), "bank_group": (14, 16),
        "bank": (17, 18), "row": (19, 34)},
}


@pytest.mark.parametrize("channels", sorted(LAYOUTS))
def test_robaracoch_layout(channels):
    cfg = memory_system_preset(channels=channels)
    assert bit_layout(cfg) == LAYOUTS[channels]
    for field, (lo, hi) in LAYOUTS[channels].items():
        if field == "offset":
            continue
        top = np.uint64(1) << np.uint64(hi)
        m = map_addresses(cfg, np.array([np.uint64(1) << np.uint64(lo), top], np.uint64))
        value = {"bank": m.bank % 4, "bank_group": m.bank_group}.get(field, getattr(m, field, None))
        assert list(value) == [1, 1 << (hi - lo)]


def test_bits_above_the_row_wrap():
    cfg = memory_system_preset()
    m = map_addresses(cfg, np.array([0x40, 0x40 + (1 << 33)], np.uint64))
    assert m.row[0] == m.row[1] and m.bank[0] == m.bank[1]


def test_same_bank_different_rows_for_high_bits():
    m = map_addresses(memory_system_preset(), np.array([0, 64 << 20, 128 << 20], np.uint64))
    assert len(set(m.bank)) == 1 and len(set(m.row)) == 3


def test_robaracoch_keeps_a_page_in_one_bank():
    m = map_addresses(memory_system_preset(), np.arange(128, dtype=np.uint64) * 64)
    assert set(m.bank[:64]) == {0} and set(m.bank_group[64:]) == {1}


def test_bank_group_interleave_rotates_consecutive_lines():
    cfg = memory_system_preset(mapping="RoCoBaBgCh")
    m = map_addresses(cfg, np.arange(64, dtype=np.uint64) * 64)
    assert list(m.bank_group[:8]) == list(range(8))
    assert np.all(m.bank_group[1:] != m.bank_group[:-1])
    assert len(set(m.bank)) == 32 and set(m.row) == {0}
    assert bit_layout(cfg)["bank_group"] == (6, 8)


def test_channel_interleave_is_per_cache_line():
    m = map_addresses(memory_system_preset(channels=4), np.arange(8, dtype=np.uint64) * 64)
    assert list(m.channel) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert set(m.column[:4]) == {0} and set(m.column[4:]) == {1}


def test_bank_group_xor_is_one_to_one_and_rotates_bank_groups_inside_a_row():
    plain = memory_system_preset(speed=7200)
    hashed = plain.model_copy(update={"bank_group_xor": True})
    addr = np.arange(1 << 16, dtype=np.uint64) * np.uint64(64)       # 4 MiB of lines
    a, b = map_addresses(plain, addr), map_addresses(hashed, addr)
    assert np.array_equal(a.row, b.row) and np.array_equal(a.column, b.column)
    assert np.array_equal(b.bank_group, a.bank_group ^ (a.column % 8))
    keys = b.row * 10**6 + b.bank * 10**3 + b.column
    assert np.unique(keys).size == addr.size                          # one-to-one
    assert len(set(a.bank_group[:8])) == 1 and len(set(b.bank_group[:8])) == 8


def test_bank_group_xor_lifts_a_single_stream_from_tccd_l_to_tccd_s():
    """One sequential stream at DDR5-7200: without the hash consecutive row hits of one bank
    group are tCCD_L (18 cycles) apart, so the scheduler depends on the next row-block (another
    bank group) being in the queue; with it every next line is tCCD_S (8 = one burst) away."""
    from prodigy_sim.dram import simulate_requests

    plain = memory_system_preset(speed=7200)
    hashed = plain.model_copy(update={"bank_group_xor": True})
    n = 8192
    addr = np.arange(n, dtype=np.uint64) * np.uint64(64)
    zero, reads = np.zeros(n, np.int64), np.zeros(n, np.bool_)
    t_plain = simulate_requests(plain, zero, addr, reads).complete_cycle.max()
    t_hashed = simulate_requests(hashed, zero, addr, reads).complete_cycle.max()
    assert t_hashed / n < 9 and t_plain > 1.2 * t_hashed
