"""Issue 14 reproducers: configuration values that validated but crashed, hung or made no sense,
and the DDR5 model's inputs. Each is refused with the field or argument named (CLI: one line,
exit 2; API: a ProdigySimError), or - for the controller - the model stops with an error."""

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from prodigy_sim.cli import main
from prodigy_sim.dram import (
    ControllerConfig,
    MemorySystemConfig,
    memory_system_preset,
    parse_trace,
    run_trace,
    simulate_controllers,
    simulate_requests,
)
from prodigy_sim.errors import ConfigError, ProdigySimError, SimulationError, TraceError
from prodigy_sim.hardware import load_config, load_preset
from prodigy_sim.isa import assemble
from prodigy_sim.timing import simulate


@pytest.mark.parametrize("yaml_text, field, why", [
    ("frequency_hz: .inf\n", "frequency_hz", "finite"),
    ("frequency_hz: 1.0e-300\n", "frequency_hz", "greater than or equal to 1000000"),
    ("core.vector_unit.op_latency_cycles.add: 1000000000000000000000\n",
     "core.vector_unit.op_latency_cycles", "1..1000000"),
    ("core.matrix_unit.latency_cycles: 1000000000000000000000\n",
     "core.matrix_unit.latency_cycles", "less than or equal to 1000000"),
    ("core.matrix_unit.sparsity_speedup: .inf\n", "core.matrix_unit.sparsity_speedup", "finite"),
    ("core.matrix_unit.sparsity_speedup: 3.0\n", "core.matrix_unit.sparsity_speedup",
     "less than or equal to 2"),
    ("core.matrix_unit.relative_throughput.tai4: .nan\n", "core.matrix_unit.relative_throughput",
     "finite"),
    ("memory.dram.controller.write_low_watermark: 0.0\n",
     "memory.dram.controller.write_low_watermark", "greater than 0"),
])
def test_absurd_hardware_values_are_refused_with_the_field(tmp_path, cli_error, yaml_text, field,
                                                           why):
    path = tmp_path / "chip.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(file=path)
    assert f"'{field}'" in str(info.value) and why in str(info.value)
    assert f"{path} (preset 'prodigy-t16128'): line 1:" in str(info.value)
    cli_error(["presets", "--config", str(path)], field)


def test_every_value_that_validates_simulates():
    """The edges of the accepted ranges run through the timing model without overflow."""
    program = assemble(".tile A shape=(64,256) fmt=float8_e4m3fn\n.tile W shape=(64,256) "
                       "fmt=float8_e4m3fn\n.tile Y shape=(64,64) fmt=float32\n"
                       ".acc C shape=(64,64)\nMMA C, A, W\nACC.ST Y, C\nVEXP Y, Y\n")
    edge = {"frequency_hz": 1e6, "core.matrix_unit.latency_cycles": 1_000_000,
            "core.vector_unit.op_latency_cycles.transcendental": 1_000_000,
            "core.matrix_unit.relative_throughput.float8_e5m2": 2.0**-12,
            "core.matrix_unit.sparsity_speedup": 2.0}
    res = simulate(program, load_config(overrides=edge), cores=1)
    assert res.cycles > 1_000_000 and math.isfinite(res.seconds) and res.seconds > 0


@pytest.mark.parametrize("argv, needle", [
    (["asm", "--onchip-bytes", "0", "x.s"], "argument --onchip-bytes: must be >= 1 (got '0')"),
    (["footprint", "--model", "llama-2-7b", "--capacity-gb", "nan"],
     "argument --capacity-gb: must be a finite number > 0 (got 'nan')"),
    (["footprint", "--model", "llama-2-7b", "--capacity-gb", "inf"],
     "argument --capacity-gb: must be a finite number > 0 (got 'inf')"),
    (["footprint", "--model", "llama-2-7b", "--capacity-gb", "1e300"], "'--capacity-gb' must be"),
    (["simulate", "--context", "0"], "argument --context: must be >= 1 (got '0')"),
    (["dram", "--trace", "t", "--channels", "0"], "argument --channels: must be >= 1"),
])
def test_absurd_arguments_are_refused(cli_error, argv, needle):
    cli_error(argv, needle)


def _stuck_controller() -> MemorySystemConfig:
    """write_low_watermark 0: the validator refuses it, so build it around the validation to
    check the kernel's own guard."""
    bad = ControllerConfig.model_construct(
        **{**ControllerConfig().model_dump(), "write_low_watermark": 0.0})
    assert bad.write_leave_threshold == -1  # write mode can never be left
    return MemorySystemConfig.model_construct(**{**dict(MemorySystemConfig()),
                                                 "controller": bad})


def test_controller_that_cannot_progress_is_refused(capsys):
    with pytest.raises(ConfigError, match="'memory.dram.controller.write_low_watermark'"):
        load_config(overrides={"memory.dram.controller.write_low_watermark": 0.0})
    with pytest.raises(ValidationError, match="write_low_watermark"):  # pydantic, as every Block
        ControllerConfig(write_low_watermark=0.0)


def test_dram_kernel_raises_when_it_stops_making_progress():
    cfg = _stuck_controller()
    n = 200
    addr = np.arange(n, dtype=np.uint64) * 64
    is_write = np.arange(n) < 100  # 100 writes fill the write buffer, then reads wait forever
    with pytest.raises(SimulationError, match="made no progress.*write_low_watermark 0.0"):
        simulate_requests(cfg, np.zeros(n, np.int64), addr, is_write)
    with pytest.raises(SimulationError, match="no progress in controller 0"):
        simulate_controllers(cfg, np.zeros(n, np.int64), np.zeros(n, np.int64), addr, is_write)


@pytest.mark.parametrize("addr, needle", [
    ([-64, 0], "'addr' must be non-negative (got -64)"),
    ([64.0, 128.5], "'addr' must be an array of non-negative integers (got dtype float64)"),
    (["64", "128"], "'addr' must be an array of non-negative integers (got dtype <U3)"),
    ([2**64, 0], "'addr' must be an array of non-negative integers (got dtype object)"),
])
def test_simulate_requests_refuses_bad_addresses(addr, needle):
    with pytest.raises(ConfigError) as info:
        simulate_requests(memory_system_preset(), np.zeros(2, np.int64), addr, [False, False])
    assert needle in str(info.value)


def test_simulate_requests_refuses_bad_cycles_and_flags():
    cfg = memory_system_preset()
    with pytest.raises(ConfigError, match="'arrive_cycle' must be an array"):
        simulate_requests(cfg, [0.5, 1.0], [0, 64], [False, True])
    with pytest.raises(ConfigError, match="'is_write' must be booleans"):
        simulate_requests(cfg, [0, 1], [0, 64], [0, 2])
    ok = simulate_requests(cfg, [0, 1], np.array([0, 64], np.int32), [0, 1])
    assert ok.is_write.tolist() == [False, True] and (ok.complete_cycle > 0).all()


def test_empty_trace_is_refused(tmp_path, cli_error):
    path = tmp_path / "empty.trace"
    path.write_text("# nothing\n\n")
    assert parse_trace(path).addr.size == 0
    with pytest.raises(TraceError, match="no requests"):
        run_trace(path, memory_system_preset())
    cli_error(["dram", "--trace", str(path)], f"{path}: the trace holds no requests")


def test_trace_without_reads_reports_no_latency(tmp_path, capsys):
    path = tmp_path / "w.trace"
    path.write_text("ST 0x0\nST 0x40\n")
    assert main(["dram", "--trace", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mean read latency (ns)" in out and "nan" not in out and "n/a" in out


def test_hardware_errors_are_prodigysim_errors():
    with pytest.raises(ProdigySimError):
        load_config(overrides={"frequency_hz": float("inf")})
    assert load_preset("prodigy-t16128").frequency_hz == 5.7e9


def test_card_sizes_are_bounded():
    """A card of a million layers would list ten million tensors (tens of GB): refused."""
    import yaml

    from prodigy_sim.models import parse_card

    card = yaml.safe_load((Path(__file__).resolve().parents[1] / "workloads" / "models" /
                           "smollm2-135m.yaml").read_text())
    for field, value in (("num_layers", 1_000_000), ("hidden_size", 2**40),
                         ("norm_eps", float("nan")), ("rope_theta", float("inf"))):
        with pytest.raises(ConfigError, match=f"'{field}'"):
            parse_card({**card, field: value}, source="card.yaml")
