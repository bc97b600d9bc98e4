"""Issue 14 reproducers: programs that never end (``a: JMP a``, a LOOP of 2**50) stop with a
ProgramError naming the program, the core, the line and the opcode - within seconds with the
default budget; the tests use small budgets to stay fast."""

import inspect
from pathlib import Path

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import ProgramError
from prodigy_sim.functional import run
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import DEFAULT_MAX_STEPS, assemble, expand
from prodigy_sim.timing import roofline_bound, simulate

JMP = "a: JMP a\n"
LOOP_2_50 = ("    LI r3, 1024\n    MUL r3, r3, r3\n    MUL r3, r3, r3\n    MULI r3, r3, 1024\n"
             "    LOOP r1, r3, 1\n      ADDI r2, r2, 1\n    ENDLOOP\n    HALT\n")  # 2**50 turns


@pytest.fixture(scope="module")
def chip():
    return load_preset("prodigy-t16128")


@pytest.mark.parametrize("text, where", [(JMP, r"line 1 \(JMP\)"),
                                         (LOOP_2_50, r"line \d \((ENDLOOP|ADDI)\)")])
def test_expander_stops_runaway_programs(text, where):
    with pytest.raises(ProgramError, match=rf"core 0, {where}: more than 1000 instructions "
                                           r"executed \(the step budget 'max_steps'\)"):
        list(expand(assemble(text), max_steps=1000))


def test_every_executor_has_a_bounded_default():
    """None of the entry points defaults to an unbounded run."""
    assert 0 < DEFAULT_MAX_STEPS <= 10**8
    assert inspect.signature(expand).parameters["max_steps"].default == DEFAULT_MAX_STEPS
    for fn in (simulate, roofline_bound):
        assert inspect.signature(fn).parameters["max_steps"].default == DEFAULT_MAX_STEPS


@pytest.mark.parametrize("text", [JMP, LOOP_2_50])
def test_timing_simulate_stops_on_all_cores_together(chip, text):
    with pytest.raises(ProgramError, match=r"more than 5000 instructions"):
        simulate(assemble(text), chip, cores=128, max_steps=5000)


def test_timing_budget_counts_every_core(chip):
    # 8 cores x 1000 iterations x 2 instructions: over a 10,000-step budget only in total
    program = assemble("LOOP r1, 1000, 1\nADDI r2, r2, 1\nENDLOOP\n")
    assert simulate(program, chip, cores=1, max_steps=10_000).cycles > 0
    with pytest.raises(ProgramError, match="on its 8 core"):
        simulate(program, chip, cores=8, max_steps=10_000)


def test_roofline_bound_stops(chip):
    with pytest.raises(ProgramError, match="more than 2000"):
        roofline_bound(assemble(JMP), chip, cores=1, max_steps=2000)


@pytest.mark.slow
def test_functional_run_stops_with_the_default_budget():
    # the functional executor expands with the default budget (10 M steps, about 5 s)
    with pytest.raises(ProgramError, match=rf"core 0, line 1 \(JMP\): more than "
                                           rf"{DEFAULT_MAX_STEPS} instructions"):
        run(assemble(JMP), ddr={}, cores=1)


@pytest.mark.parametrize("text", [JMP, LOOP_2_50])
def test_cli_run_names_the_program(tmp_path, capsys, text):
    path = tmp_path / "forever.s"
    path.write_text(text)
    assert main(["run", str(path), "--max-steps", "20000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"prodigy-sim run: error: {path}: core " in err
    assert "more than 20000 instructions" in err


def test_cli_run_zero_means_no_budget(tmp_path, capsys):
    path = tmp_path / "short.s"
    path.write_text("LOOP r1, 100, 1\nADDI r2, r2, 1\nENDLOOP\n")
    assert main(["run", str(path), "--cores", "1", "--max-steps", "0"]) == 0
    assert "ADDI 100" in capsys.readouterr().out


def test_multicore_gemm_on_128_cores_says_no_mma_ran(capsys):
    example = Path(__file__).resolve().parents[1] / "isa" / "examples" / "multicore_gemm.s"
    assert main(["run", str(example)]) == 0
    cap = capsys.readouterr()
    assert "on 128 cores" in cap.out and "MMA" not in cap.out.split("instructions:")[1]
    assert "warning:" in cap.err and "no core executed any" in cap.err and "MMA" in cap.err
    assert main(["run", str(example), "--cores", "16"]) == 0
    cap = capsys.readouterr()
    assert "MMA 16" in cap.out and cap.err == ""
