"""Trends: more DDR channels, DDR5 speed or matrix throughput never make a run slower, more
cores never by more than :data:`CORES_TOLERANCE`; less shared L3 never means less DDR traffic
(shipped-style scenarios, small enough for CI).

Why cores get a tolerance (docs/timing.md, "Known limits"): a memory-bound step on more cores
runs more concurrent DDR streams, whose interleaving changes row hits and bank conflicts by a
percent or two either way, and a bigger derived mesh has longer hops, which a tiny model's
sub-microsecond operators feel (SmolLM2 b4 decode: +3.1% from 64 to 128 cores with the same
mappings on the same cores; +1.2% with half the hop latency - docs/timing.md, "Known
limits"). Neither is an artefact; a 15% flip (LLaMA-2-7B decode on 256 cores slower than on 128,
issue 11) would fail."""

import pytest

from prodigy_sim.hardware import resolve_hardware
from prodigy_sim.lowering import linear_op
from prodigy_sim.models import Scenario, load_scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.simulation import simulate_op

SCENARIOS = {
    "decode": Scenario(model="smollm2-135m", phase="decode", batch=4, context_length=512),
    "prefill": Scenario(model="all-minilm-l6-v2", phase="prefill", batch=4, sequence_length=128),
}

CORES_TOLERANCE = 0.05
"""More cores may be this much slower (relative) on a memory-bound or tiny step; see above."""

GRIDS = {
    "cores": ["cores=64", "cores=128", "cores=256"],
    "channels": ["memory.channels=8", "memory.channels=16", "memory.channels=32"],
    "ddr speed": ["memory.dram.timing=4800", "memory.dram.timing=6400",
                  "memory.dram.timing=7200"],
    "matrix rate": ["core.matrix_unit.tile_k=8", "core.matrix_unit.tile_k=16",
                    "core.matrix_unit.tile_k=32"],
}


def _seconds(scenario: Scenario, override: str) -> float:
    chip, _ = resolve_hardware("prodigy-t16128", [override])
    return simulate_scenario(scenario, config=chip).seconds


@pytest.mark.slow
@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("phase", sorted(SCENARIOS))
def test_more_hardware_is_never_slower(phase, grid):
    times = [_seconds(SCENARIOS[phase], o) for o in GRIDS[grid]]
    slack = 1 + (CORES_TOLERANCE if grid == "cores" else 0.001)
    assert all(b <= a * slack for a, b in zip(times, times[1:], strict=False)), \
        dict(zip(GRIDS[grid], times, strict=True))


@pytest.mark.slow
def test_llama2_7b_decode_on_more_cores_is_not_slower():
    """The flip issue 11 found (256 cores 15% slower than 128 on the default subset)."""
    sc = Scenario(model="llama-2-7b", phase="decode", batch=1, context_length=2048)
    t128, t256 = _seconds(sc, "cores=128"), _seconds(sc, "cores=256")
    assert t256 <= t128 * (1 + CORES_TOLERANCE), (t128, t256)


SHIPPED_ON_CORES = ["llama-2-7b-decode-tai4", "bert-base-prefill-fp8",
                    "llama-2-70b-decode-tai2-sparse"]
"""Shipped scenarios checked on 64 / 128 / 256 cores (``llama-2-70b-decode-tai2-sparse`` was 5.2%
slower on 128 than on 64 before single-step weights were packed: docs/timing.md, *Known
limits*). ``llama-3-8b-prefill-fp8`` is left out for CI time (about 130 s a run on the 2-core
machine)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED_ON_CORES)
def test_shipped_scenarios_on_more_cores_are_not_slower(name):
    """Issue 11's grid for the shipped scenarios: 64, 128, 256 cores, within
    :data:`CORES_TOLERANCE`."""
    sc = load_scenario(name)
    times = [_seconds(sc, f"cores={c}") for c in (64, 128, 256)]
    assert all(b <= a * (1 + CORES_TOLERANCE) for a, b in zip(times, times[1:], strict=False)), \
        times


def test_a_smaller_l3_never_reads_less_from_ddr():
    """A GEMM whose X row blocks are read by many cores: shrinking the L3 raises DDR traffic."""
    from prodigy_sim.hardware import load_preset
    from prodigy_sim.timing import simulate

    chip = load_preset("prodigy-t16128")
    op = linear_op("g", 512, 4096, 2048, Storage.of("tai4"), chip, cores=64)
    ddr = [simulate(op.kernel.program, chip, cores=64, l3_bytes=b).dram_bytes
           for b in (64 << 20, 4 << 20, 1 << 20, 0)]
    assert all(b >= a for a, b in zip(ddr, ddr[1:], strict=False)), ddr
    assert ddr[-1] > ddr[0]
    # and the op-level figures agree with the run
    r = simulate_op(op, chip)
    assert r.ddr_bytes <= ddr[-1]
