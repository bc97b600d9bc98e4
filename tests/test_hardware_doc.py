"""docs/hardware.md is generated from the code; the presets CLI subcommand."""

import argparse
import json
from pathlib import Path

import pytest

from prodigy_sim.cli import _presets
from prodigy_sim.hardware.report import render_hardware_doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware.md"


def test_hardware_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render_hardware_doc(), (
        "docs/hardware.md is stale: run `python -m prodigy_sim.hardware.report > docs/hardware.md`")


def test_doc_lists_every_preset_and_assumptions():
    text = render_hardware_doc()
    for name in ("prodigy-t16128", "prodigy-192", "prodigy-2nm-ultimate"):
        assert f"### `{name}`" in text
    assert "| peak DDR bandwidth (GB/s) | 921.6 | 921.6 | 3379.2 |" in text
    assert "| peak FP8 8:4 sparse (PFLOPS) | 11.954 | 17.931 | 100.663 |" in text
    assert "| `core.matrix_unit.latency_cycles` | 8 | cycles | assumption (not public) |" in text


def _run(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _presets.add_parser(sub)
    return _presets.run(parser.parse_args(argv))


def test_presets_list(capsys):
    assert _run(["presets"]) == 0
    out = capsys.readouterr().out
    assert "prodigy-t16128 (default)" in out
    assert "11.95" in out and "921.6" in out and "3379.2" in out


def test_presets_list_json(capsys):
    assert _run(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["prodigy-t16128", "prodigy-192", "prodigy-2nm-ultimate"]
    assert rows[0]["peak_ddr_bandwidth_bytes_per_s"] == pytest.approx(921.6e9)


def test_presets_show_with_sources(capsys):
    assert _run(["presets", "--show", "prodigy-192"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("cores "))
    assert "192" in line and "192 Universal Cores" in line
    assert "# derived" in out


def test_presets_show_json_and_config_file(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cores: 64\n")
    assert _run(["presets", "--config", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["cores"] == 64
    assert data["sources"]["cores"] == f"override: {path}:1"
    assert data["derived"]["ddr_subchannels_32bit"] == 32
