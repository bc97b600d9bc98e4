"""DRAM-only trace mode: replay a Ramulator ``LoadStoreTrace`` file through the DDR5 model.

Trace format, one 64-B request per line: ``LD <addr>`` (read) or ``ST <addr>`` (write), the byte
address in hex (``0x...``) or decimal. Blank lines and ``#`` comments (whole-line or trailing) are
ignored; anything else is a :class:`~prodigy_sim.errors.TraceError` naming file and line.

Modes:

- ``saturate`` (Ramulator's frontend): one request offered per DRAM cycle, retried while its
  queue is full. The headline figures stop counting when the last request was *accepted*, as
  Ramulator does; the ``drained`` figures count until every request completed.
- ``chain``: exactly one request outstanding; the next is offered in the cycle the previous one
  completed (unloaded latency). Figures count until the last request completed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from prodigy_sim.dram.config import MemorySystemConfig
from prodigy_sim.dram.model import DramStats, RequestBatchResult, simulate_requests
from prodigy_sim.errors import ConfigError, TraceError

__all__ = ["ParsedTrace", "TraceRunResult", "parse_trace", "run_trace"]

TraceMode = Literal["saturate", "chain"]
_U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class ParsedTrace:
    """A parsed trace: ``addr`` uint64 byte addresses and ``is_write`` bools, shape (n,)."""

    name: str
    addr: np.ndarray
    is_write: np.ndarray


def _parse_lines(lines: Iterable[str], source: str) -> ParsedTrace:
    addrs: list[int] = []
    writes: list[bool] = []
    for lineno, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2:
            raise TraceError(f"expected '<LD|ST> <address>', got {text!r}", file=source,
                             line=lineno)
        op, tok = parts
        opu = op.upper()
        if opu not in ("LD", "ST"):
            raise TraceError(f"unknown operation {op!r}; expected LD or ST", file=source,
                             line=lineno, column=raw.find(op) + 1)
        try:
            value = int(tok, 16) if tok.lower().startswith("0x") else int(tok, 10)
        except ValueError:
            raise TraceError(f"bad address {tok!r}; expected hex (0x...) or decimal",
                             file=source, line=lineno, column=raw.find(tok) + 1) from None
        if not 0 <= value <= _U64_MAX:
            raise TraceError(f"address {tok} out of range; expected 0 <= address < 2**64",
                             file=source, line=lineno, column=raw.find(tok) + 1)
        addrs.append(value)
        writes.append(opu == "ST")
    return ParsedTrace(name=source, addr=np.array(addrs, dtype=np.uint64),
                       is_write=np.array(writes, dtype=np.bool_))


def parse_trace(path_or_lines: str | Path | Iterable[str], *, name: str | None = None
                ) -> ParsedTrace:
    """Parse a trace file (``str``/``Path``) or an iterable of lines.

    A ``str`` is taken as a path. Raises ``TraceError`` (with file and line) on a bad line and
    ``ConfigError`` if the file cannot be read.
    """
    if isinstance(path_or_lines, str | Path):
        path = Path(path_or_lines)
        try:
            with path.open("r", encoding="utf-8") as f:
                return _parse_lines(f, name or str(path))
        except OSError as exc:
            raise ConfigError(f"'trace': cannot read {str(path)!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TraceError("not a text file (UTF-8 decoding failed)", file=str(path)) from None
    return _parse_lines(path_or_lines, name or "<lines>")


@dataclass(frozen=True)
class TraceRunResult:
    """The outcome of :func:`run_trace`.

    ``stats`` are the headline figures (saturate: until the last acceptance, as Ramulator stops;
    chain: until the last completion); ``drained`` count until every request completed.
    """

    trace: str
    mode: TraceMode
    config: MemorySystemConfig
    stats: DramStats
    drained: DramStats
    requests: RequestBatchResult

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (no per-request arrays)."""
        t = self.config.timing
        return {
            "trace": self.trace,
            "mode": self.mode,
            "config": {
                "speed": t.name,
                "org": self.config.org.name,
                "channels": self.config.channels,
                "mapping": self.config.mapping,
                "tck_ps": t.tck_ps,
                "peak_bandwidth_GBps": self.config.peak_bandwidth_bytes_per_s / 1e9,
            },
            "stats": self.stats.to_dict(),
            "drained": self.drained.to_dict(),
        }


def run_trace(path_or_lines: str | Path | Iterable[str] | ParsedTrace,
              config: MemorySystemConfig, *, mode: TraceMode = "saturate") -> TraceRunResult:
    """Replay a trace (path, lines, or :class:`ParsedTrace`) through the memory system."""
    if mode not in ("saturate", "chain"):
        raise ConfigError(f"'mode' must be 'saturate' or 'chain' (got {mode!r})")
    tr = path_or_lines if isinstance(path_or_lines, ParsedTrace) else parse_trace(path_or_lines)
    n = tr.addr.size
    if n == 0:
        raise TraceError("the trace holds no requests (only blank lines and comments); expected "
                         "lines 'LD <address>' or 'ST <address>'", file=tr.name)
    res = simulate_requests(config, np.zeros(n, np.int64), tr.addr, tr.is_write,
                            chain=mode == "chain")
    drained = res.stats("drained")
    headline = res.stats("last_accept") if mode == "saturate" else drained
    return TraceRunResult(trace=tr.name, mode=mode, config=config, stats=headline,
                          drained=drained, requests=res)
