"""Issue 14 reproducers found by a first-time user of the CLI, and issue 15's startup: one-line
argument errors, --version, output cut by its reader, defaults that fit the model, lazy imports,
the first-run compile notice, and ddr_image with a NaN per-tensor scale."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prodigy_sim import __version__
from prodigy_sim.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("argv, needle", [
    (["simulate", "--batch", "x"], "prodigy-sim simulate: error: argument --batch: expected an "
                                   "integer (got 'x')"),
    (["simulate", "--nope"], "error: unrecognized arguments: --nope"),
    (["footprint", "--phase", "train"], "argument --phase: invalid choice: 'train'"),
    (["nonsense"], "prodigy-sim: error: argument COMMAND: invalid choice: 'nonsense'"),
    ([], "the following arguments are required: COMMAND"),
    (["dram", "--trace", "t", "--speed", "9999"], "argument --speed: invalid choice: 9999"),
])
def test_argparse_errors_are_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and needle in cap.err and "usage:" not in cap.err
    assert cap.out == ""


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"prodigy-sim {__version__}\n"


def test_output_cut_by_its_reader_is_quiet():
    """``prodigy-sim formats --json | head -c 1``: no 'Broken pipe', status 0."""
    code = ("import sys; from prodigy_sim.cli import main; sys.exit(main(['formats', '--json']))")
    shell = f"{sys.executable} -c \"{code}\" | head -c 1; exit ${{PIPESTATUS[0]}}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[", "")


def test_help_and_bad_arguments_import_no_simulator():
    """Startup: --help, every command's --help and an argument error load neither numpy nor
    Numba (``python -X importtime -m prodigy_sim --help`` shows what is left); footprint's help
    lists the model cards, scenarios and scale kinds from modules that load neither."""
    commands = [[], *[[c] for c in COMMANDS]]
    code = ("import sys, contextlib, io\nfrom prodigy_sim.cli import main\n"
            f"for c in {commands!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        main(c + ['--help'])\n"
            "main(['simulate', '--context', '0'])\n"
            "print(sorted(m for m in ('numpy', 'numba', 'simpy') if m in sys.modules))\n")
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, summary in COMMANDS.items():
        assert name in out and summary[:30] in out


def test_full_parser_builds_every_subcommand():
    parser = build_parser()
    for name in COMMANDS:
        extra = {"asm": ["x"], "run": ["x"], "disasm": ["x"], "dram": ["--trace", "x"],
                 "sweep": ["x"]}
        args = parser.parse_args([name, *extra.get(name, [])])
        assert callable(args._run)


def test_footprint_defaults_fit_an_encoder_only_model(capsys):
    assert main(["footprint", "--model", "bert-base-uncased", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["phase"], data["query_tokens"], data["context_tokens"]) == ("prefill", 128, 128)


def test_explicit_context_is_not_a_default(capsys):
    assert main(["footprint", "--model", "llama-2-7b", "--context", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["context_tokens"] == 1


def test_first_run_compile_notice_follows_the_kernel_cache():
    from prodigy_sim.dram import compile_kernels, kernels_compiled

    compile_kernels()
    assert kernels_compiled()
    code = ("import sys\nfrom prodigy_sim.dram import kernels_compiled\n"
            "print(kernels_compiled(), 'numba' in sys.modules)\n")
    done = _python(code)
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_ddr_image_with_a_nan_per_tensor_scale():
    from prodigy_sim.functional import ddr_image, run
    from prodigy_sim.isa import assemble

    program = assemble(".tensor X shape=(4,32) fmt=float8_e4m3fn block=0 scale=fp32\n"
                       ".tile A shape=(4,32) fmt=float8_e4m3fn block=0 scale=fp32\n"
                       "DMA.LD A, X, 0, 0\nDMA.WAIT\n")
    for bad in (np.nan, np.inf):
        x = np.ones((4, 32), np.float32)
        x[1, 3] = bad
        image = ddr_image(program, {"X": x})
        scale = image[4 * 32:4 * 32 + 4].view(np.float32)[0]
        assert np.isnan(scale) or np.isinf(scale)
        state = run(program, ddr=image)
        assert state is not None
