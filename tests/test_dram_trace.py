"""DRAM-only trace mode: parsing, errors with file:line, replay modes, the CLI subcommand."""

import argparse
import json

import numpy as np
import pytest

from prodigy_sim.cli import _dram
from prodigy_sim.dram import memory_system_preset, parse_trace, run_trace
from prodigy_sim.errors import ConfigError, TraceError


def test_parse_hex_decimal_comments_and_blank_lines():
    tr = parse_trace(["# header", "LD 0x40", "", "st 128   # a store", "  LD 4096  "])
    assert tr.addr.tolist() == [64, 128, 4096]
    assert tr.is_write.tolist() == [False, True, False]


@pytest.mark.parametrize("line, where, what", [
    ("XX 0x40", ":2:1:", "unknown operation 'XX'"),
    ("LD 0xZZ", ":2:4:", "bad address '0xZZ'"),
    ("LD", ":2:", "expected '<LD|ST> <address>'"),
    ("LD 0x40 7", ":2:", "expected '<LD|ST> <address>'"),
    ("LD -5", ":2:4:", "out of range"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, where, what):
    path = tmp_path / "bad.trace"
    path.write_text(f"LD 0x0\n{line}\n")
    with pytest.raises(TraceError) as info:
        parse_trace(path)
    assert str(info.value).startswith(str(path) + where)
    assert what in str(info.value)
    assert info.value.line == 2


@pytest.mark.parametrize("tail", ["", "\n", "\r\n"])
def test_densest_file_fills_the_request_room(tmp_path, tail):
    """The shortest request lines ("LD 0", 4 bytes + newline): the scanner's output arrays are
    sized from the file length, with no line count first; every request must fit."""
    for n in (1, 2, 3, 4, 5, 6, 7, 1000):
        lines = [("ld" if i % 3 else "ST") + f" {i % 10}" for i in range(n)]
        path = tmp_path / f"dense{n}.trace"
        path.write_bytes(("\n".join(lines) + tail).encode())
        tr = parse_trace(path)
        assert tr.addr.tolist() == [i % 10 for i in range(n)]
        assert tr.is_write.tolist() == [i % 3 == 0 for i in range(n)]


def test_bad_line_after_many_dense_lines_is_located(tmp_path):
    path = tmp_path / "late.trace"
    path.write_bytes(b"LD 0\n" * 999 + b"LD 0x\n")
    with pytest.raises(TraceError) as info:
        parse_trace(path)
    assert info.value.line == 1000 and "bad address '0x'" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        parse_trace(tmp_path / "nope.trace")


def test_saturate_stops_at_last_accept_and_reports_drained():
    lines = [f"LD {64 * i:#x}" for i in range(2000)]
    res = run_trace(lines, memory_system_preset())
    s, d = res.stats, res.drained
    assert s.cycles == res.requests.last_accept_cycle < d.cycles
    assert s.row_hits + s.row_misses + s.row_conflicts < 2000
    assert d.row_hits + d.row_misses + d.row_conflicts == 2000
    assert s.bandwidth_GBps == pytest.approx(2000 * 64 / (s.cycles * 0.416))


def test_chain_mode_reports_unloaded_latency():
    res = run_trace([f"LD {i * 4096:#x}" for i in range(32)], memory_system_preset(),
                    mode="chain")
    t = res.config.timing
    assert res.stats.avg_read_latency_cycles == 1 + t.nRCD + t.nCL + t.nBL
    assert res.stats.cycles == 32 * (1 + t.nRCD + t.nCL + t.nBL)
    assert res.stats == res.drained


def test_to_dict_is_json():
    res = run_trace(["ST 0x0", "ST 0x40"], memory_system_preset(channels=2))
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["stats"]["avg_read_latency_cycles"] is None
    assert d["config"]["channels"] == 2
    assert len(d["drained"]["channel_bandwidth_GBps"]) == 2


def test_bad_mode_refused():
    with pytest.raises(ConfigError, match="'mode'"):
        run_trace(["LD 0x0"], memory_system_preset(), mode="burst")


def _cli(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _dram.add_parser(sub)
    return _dram.run(parser.parse_args(["dram", *argv]))


def test_cli_table_and_json(tmp_path, capsys):
    path = tmp_path / "t.trace"
    path.write_text("".join(f"LD {64 * i:#x}\n" for i in range(512)))
    assert _cli(["--trace", str(path), "--speed", "6400", "--channels", "2"]) == 0
    out = capsys.readouterr().out
    assert "bandwidth (GB/s)" in out and "DDR5_6400AN" in out and "channel 1" in out
    assert _cli(["--trace", str(path), "--mode", "chain", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["mode"] == "chain" and d["stats"]["n_reads"] == 512
    assert np.isclose(d["stats"]["avg_read_latency_cycles"],
                      d["drained"]["avg_read_latency_cycles"])


def test_cli_errors_propagate(tmp_path):
    path = tmp_path / "t.trace"
    path.write_text("LD 0x0\n")
    with pytest.raises(ConfigError, match="'channels'"):
        _cli(["--trace", str(path), "--channels", "3"])
    path.write_text("LOAD 0x0\n")
    with pytest.raises(TraceError, match=":1:1:"):
        _cli(["--trace", str(path)])


def test_trace_larger_than_the_limit_is_refused(tmp_path, monkeypatch):
    """The size limit holds for a regular file (read by its size) and a FIFO (no size)."""
    import os

    from prodigy_sim.dram import trace as trace_mod

    monkeypatch.setattr(trace_mod, "MAX_TRACE_BYTES", 10)
    path = tmp_path / "big.trace"
    path.write_bytes(b"LD 0\nLD 1\nLD 2\n")
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        parse_trace(path)
    path.write_bytes(b"LD 0\nLD 1\n")  # exactly 10 bytes
    assert parse_trace(path).addr.tolist() == [0, 1]
    fifo = tmp_path / "pipe.trace"
    os.mkfifo(fifo)
    import threading

    writer = threading.Thread(target=lambda: fifo.write_bytes(b"LD 0\nLD 1\nLD 2\n"),
                              daemon=True)
    writer.start()
    try:
        with pytest.raises(ConfigError, match="larger than 10 bytes"):
            parse_trace(fifo)
    finally:
        writer.join(timeout=10)
