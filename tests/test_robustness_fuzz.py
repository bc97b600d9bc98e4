"""Bounded property-based fuzzing of every input kind (issue 14): mutated programs, binaries,
hardware / card / scenario / format files, traces, DDR5 request arrays, corrupted checkpoints and
the CLI on bad files. Each asserts: a clean result or a one-line ProdigySimError, never another
exception, never a hang (small step budgets). Example counts are small (the suite runs in CI);
``HYPOTHESIS_PROFILE=dev`` explores more."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodigy_sim.errors import ProdigySimError
from tests.strategies import hostile_values, mutated_bytes, mutated_text, trace_lines

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {p.name: p.read_text() for p in sorted((ROOT / "isa" / "examples").glob("*.s"))}
FEW = settings(max_examples=40)


def ours(fn, *args, **kwargs):
    """``fn(...)``, or None if it raised a ProdigySimError (whose message must be one line)."""
    try:
        return fn(*args, **kwargs)
    except ProdigySimError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


@pytest.fixture(scope="module")
def chip():
    from prodigy_sim.hardware import load_preset

    return load_preset("prodigy-t16128")


@FEW
@given(data=st.data())
def test_assembler_expander_and_timing(chip, data):
    from prodigy_sim.isa import assemble, decode, disassemble, encode, expand, validate
    from prodigy_sim.timing import simulate

    text = mutated_text(data, data.draw(st.sampled_from(sorted(EXAMPLES.values()))), 3)
    program = ours(assemble, text, file="fuzz.s")
    if program is None:
        return
    blob = ours(encode, program)
    if blob is not None:
        assert encode(decode(blob)) == blob
        assert encode(assemble(disassemble(program))) == blob
    layout = ours(validate, program)
    if layout is None:
        return
    cores = data.draw(st.sampled_from([1, 2, 3]))
    ours(lambda: list(expand(program, 0, cores, layout=layout, max_steps=20_000)))
    ours(simulate, program, chip, cores=cores, max_steps=5_000)


@FEW
@given(data=st.data())
def test_binary_decoder(data):
    from prodigy_sim.isa import assemble, decode, disassemble, encode, validate

    blob = encode(assemble(data.draw(st.sampled_from(sorted(EXAMPLES.values())))))
    program = ours(decode, mutated_bytes(data, blob), file="fuzz.bin")
    if program is not None:
        ours(validate, program)
        text = ours(disassemble, program)
        if text is not None:
            ours(assemble, text)


def _field_paths() -> list[str]:
    from prodigy_sim.hardware.presets import cited_values, flatten

    return sorted(flatten(cited_values("prodigy-t16128")[0]))


@FEW
@given(data=st.data())
def test_hardware_overrides_validate_and_simulate(data):
    """Whatever validates must simulate (a small GEMM on two cores)."""
    from prodigy_sim.hardware import load_config
    from prodigy_sim.isa import assemble
    from prodigy_sim.timing import simulate

    paths = _field_paths() + ["memory.dram.controller.write_low_watermark", "no.such.field"]
    overrides = {data.draw(st.sampled_from(paths)): data.draw(hostile_values())
                 for _ in range(data.draw(st.integers(1, 3)))}
    config = ours(load_config, overrides=overrides)
    if config is None:
        return
    config.derived()
    program = assemble(EXAMPLES["multicore_gemm.s"])
    ours(simulate, program, config, cores=min(2, config.cores), max_steps=50_000)


@FEW
@given(data=st.data())
def test_hardware_yaml_files(tmp_path_factory, data):
    from prodigy_sim.hardware import load_config

    text = ("preset: prodigy-t16128\ncores: 64\ncore:\n  matrix_unit:\n    latency_cycles: 12\n"
            "memory.dram.controller.write_low_watermark: 0.25\nnoc: {hop_latency_cycles: 3}\n")
    path = tmp_path_factory.mktemp("hw") / "chip.yaml"
    path.write_bytes(mutated_text(data, text).encode("utf-8", "surrogatepass"))
    ours(load_config, file=path)


def _data(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


@FEW
@given(data=st.data())
def test_model_cards(data):
    from prodigy_sim.models import Scenario, footprint_report, parse_card

    card = _data("workloads/models/smollm2-135m.yaml")
    for _ in range(data.draw(st.integers(1, 3))):
        card[data.draw(st.sampled_from(sorted(card) + ["extra"]))] = data.draw(hostile_values())
    parsed = ours(parse_card, card, source="fuzz card")
    if parsed is not None:
        parsed.tensors()
        scenario = Scenario(model="smollm2-135m", phase="decode", context_length=64)
        ours(footprint_report, parsed, scenario)


@FEW
@given(data=st.data())
def test_scenarios(data):
    from prodigy_sim.models import footprint_report, parse_scenario

    scenario = _data("workloads/scenarios/llama-2-7b-decode-tai4.yaml")
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(scenario) + ["sequence_length", "sparsity",
                                                            "hardware", "formats.weights"]))
        value = data.draw(st.one_of(hostile_values(), st.sampled_from(
            ["tai2", "int4", "bfloat16", "8:4", {"format": "tai4", "block": 0}])))
        if key == "formats.weights":
            scenario["formats"] = {**scenario["formats"], "weights": value}
        else:
            scenario[key] = value
    parsed = ours(parse_scenario, scenario, source="fuzz scenario")
    if parsed is not None:
        ours(lambda: footprint_report(parsed.card(), parsed))


@FEW
@given(data=st.data())
def test_format_files(tmp_path_factory, data):
    """Text-level damage to a format file: a FormatError or a format whose values are known.
    (Edge values of the fields themselves - bias, empty value sets - are issue 14's numerics
    items, fixed and tested with the format spec.)"""
    from prodigy_sim.numerics import load_format

    text = (ROOT / "prodigy_sim/numerics/formats/tai4.yaml").read_text()
    text = text.replace("bias: 7", "bias: 7  # kept")
    path = tmp_path_factory.mktemp("fmt") / "f.yaml"
    mutated = mutated_text(data, text)
    path.write_bytes(mutated.encode("utf-8", "surrogatepass"))
    if "bias:" not in mutated or "bias: 7  # kept" not in mutated:
        return  # the bias line was damaged: its edge values belong to the spec's own tests
    spec = ours(load_format, path)
    if spec is not None:
        assert len(spec.values) == 2 ** spec.bits


@settings(max_examples=60)
@given(lines=st.lists(trace_lines(), max_size=30), mode=st.sampled_from(["saturate", "chain"]))
def test_traces(lines, mode):
    from prodigy_sim.dram import memory_system_preset, parse_trace, run_trace

    trace = ours(parse_trace, lines)
    if trace is not None:
        result = ours(run_trace, trace, memory_system_preset(), mode=mode)
        if result is not None:
            json.dumps(result.to_dict(), allow_nan=False)


@settings(max_examples=60)
@given(blob=st.binary(max_size=200))
def test_trace_files_of_any_bytes(tmp_path_factory, blob):
    from prodigy_sim.dram import parse_trace

    path = tmp_path_factory.mktemp("trace") / "t.trace"
    path.write_bytes(blob)
    trace = ours(parse_trace, path)
    if trace is not None:
        assert trace.addr.dtype == np.uint64 and trace.addr.size <= blob.count(b"\n") + 1


_ARRAYS = st.one_of(st.lists(st.integers(-5, 2**64 + 5), max_size=6),
                    st.lists(st.floats(allow_nan=True), max_size=6),
                    st.lists(st.text(max_size=3), max_size=6), st.lists(st.booleans(), max_size=6))


@FEW
@given(arrive=_ARRAYS, addr=_ARRAYS, is_write=_ARRAYS)
def test_ddr5_request_arrays(arrive, addr, is_write):
    from prodigy_sim.dram import memory_system_preset, simulate_controllers, simulate_requests

    config = memory_system_preset()
    ours(simulate_requests, config, arrive, addr, is_write)
    ours(simulate_controllers, config, [0] * len(arrive), arrive, addr, is_write)


@FEW
@given(data=st.data())
def test_corrupted_gguf(tmp_path_factory, data):
    pytest.importorskip("gguf")
    from prodigy_sim.realmodels import load_smollm2, load_smollm2_tokenizer
    from prodigy_sim.realmodels._smollm2 import gguf_reader
    from tests.test_robustness_checkpoints import write_gguf

    folder = tmp_path_factory.mktemp("gguf")
    path = folder / "m.gguf"
    path.write_bytes(mutated_bytes(data, write_gguf(folder / "ok.gguf").read_bytes()))
    for load in (load_smollm2, load_smollm2_tokenizer):
        gguf_reader.cache_clear()
        ours(load, path)
    gguf_reader.cache_clear()


@FEW
@given(data=st.data())
def test_corrupted_safetensors_and_config_json(tmp_path_factory, data):
    save_file = pytest.importorskip("safetensors.numpy").save_file
    from prodigy_sim.realmodels import load_minilm

    folder = tmp_path_factory.mktemp("st")
    path = folder / "model.safetensors"
    save_file({"embeddings.word_embeddings.weight": np.ones((4, 4), np.float32)}, str(path))
    path.write_bytes(mutated_bytes(data, path.read_bytes()))
    config = data.draw(st.one_of(st.none(), st.binary(max_size=40), st.builds(
        lambda d: json.dumps(d).encode(), st.dictionaries(
            st.sampled_from(["hidden_size", "layer_norm_eps", "hidden_act"]),
            st.one_of(st.integers(-5, 5), st.text(max_size=4), st.none())))))
    if config is not None:
        (folder / "config.json").write_bytes(config)
    ours(load_minilm, path)


_CLI = {
    "asm": ("p.s", lambda f, d: ["asm", str(f), "-o", str(d / "o.bin")]),
    "run": ("p.s", lambda f, d: ["run", str(f), "--cores", "2", "--max-steps", "20000"]),
    "disasm": ("p.bin", lambda f, d: ["disasm", str(f)]),
    "formats": ("f.yaml", lambda f, d: ["formats", "--file", str(f)]),
    "presets": ("c.yaml", lambda f, d: ["presets", "--config", str(f)]),
    "footprint": ("card.yaml", lambda f, d: ["footprint", "--model", str(f)]),
    "dram": ("t.trace", lambda f, d: ["dram", "--trace", str(f)]),
}


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cli_on_bad_files(tmp_path_factory, capsys, data):
    from prodigy_sim.cli import main

    capsys.readouterr()  # the fixture is shared by the examples: start from nothing
    folder = tmp_path_factory.mktemp("cli")
    command = data.draw(st.sampled_from(sorted(_CLI)))
    name, argv = _CLI[command]
    base = data.draw(st.sampled_from(sorted(EXAMPLES.values())))
    blob = data.draw(st.one_of(st.binary(max_size=120), st.just(
        mutated_text(data, base).encode("utf-8", "surrogatepass"))))
    (folder / name).write_bytes(blob)
    status = main(argv(folder / name, folder))
    err = capsys.readouterr().err
    assert status in (0, 1, 2)
    if status == 2:
        errors = [line for line in err.splitlines() if ": warning: " not in line]
        assert len(errors) == 1 and errors[0].startswith(f"prodigy-sim {command}: error: "), err
