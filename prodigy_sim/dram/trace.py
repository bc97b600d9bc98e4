"""DRAM-only trace mode: replay a Ramulator ``LoadStoreTrace`` file through the DDR5 model.

Trace format, one 64-B request per line: ``LD <addr>`` (read) or ``ST <addr>`` (write), the
operation in any case, the byte address in hex (``0x...``) or decimal, below 2**64, separated by
ASCII spaces or tabs. Blank lines and ``#`` comments (whole-line or trailing) are ignored; anything
else is a :class:`~prodigy_sim.errors.TraceError` naming file, line and column. The file is read
as bytes and parsed by one compiled pass (:func:`_scan`, about 1 GB/s); only the line it refuses
is decoded, to say what is wrong with it.

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
from numba import njit

from prodigy_sim._datafile import read_binary
from prodigy_sim.dram.config import MemorySystemConfig
from prodigy_sim.dram.model import DramStats, RequestBatchResult, simulate_requests
from prodigy_sim.errors import ConfigError, TraceError

__all__ = ["ParsedTrace", "TraceRunResult", "parse_trace", "run_trace"]

TraceMode = Literal["saturate", "chain"]
_U64_MAX = (1 << 64) - 1
MAX_TRACE_BYTES = 4 << 30
"""Largest trace file read (bytes): about 280 million requests."""


@dataclass(frozen=True)
class ParsedTrace:
    """A parsed trace: ``addr`` uint64 byte addresses and ``is_write`` bools, shape (n,)."""

    name: str
    addr: np.ndarray
    is_write: np.ndarray


# -- the scanner: one pass over the bytes (Numba) ---------------------------------------------
# A line is  [ws] (LD|ST) ws+ ADDRESS [ws] [# comment]  or  [ws] [# comment], ws = space, \t,
# \r, \v, \f; LD / ST in any case; ADDRESS = 0x<hex digits> or <decimal digits>, < 2**64.


_CLASS = np.zeros(256, np.int8)
"""Byte class for the scanner: 0 other, 1 whitespace (space \\t \\r \\v \\f), 2 newline, 3 '#'."""
_CLASS[list(b" \t\r\v\f")] = 1
_CLASS[10] = 2
_CLASS[35] = 3
_DIGIT = np.full(256, -1, np.int8)
"""Byte -> hex digit value (0-15), -1 if not a hex digit."""
_DIGIT[list(b"0123456789abcdef")] = range(16)
_DIGIT[list(b"ABCDEF")] = range(10, 16)


@njit(cache=True)
def _scan(buf, addr, is_write):
    """Parse ``buf`` (uint8, the file) into ``addr`` (uint64) / ``is_write`` (bool), both at
    least as long as the number of requests. Returns ``(requests, first bad line)``, the line
    1-based, 0 if none (then ``requests`` is the count; otherwise the requests before that
    line). Table lookups per byte (:data:`_CLASS`, :data:`_DIGIT`): 2x faster than
    comparisons."""
    n = buf.size
    cls = _CLASS
    dig = _DIGIT
    pos = 0
    line = 0
    count = 0
    while pos < n:
        line += 1
        while pos < n and cls[buf[pos]] == 1:
            pos += 1
        if pos < n and cls[buf[pos]] < 2:       # not blank, not a comment: a request
            if pos + 3 > n:
                return count, line
            c0 = buf[pos] | 32                  # ASCII lower case
            c1 = buf[pos + 1] | 32
            if c0 == 108 and c1 == 100:         # ld
                w = False
            elif c0 == 115 and c1 == 116:       # st
                w = True
            else:
                return count, line
            pos += 2
            if cls[buf[pos]] != 1:
                return count, line
            while pos < n and cls[buf[pos]] == 1:
                pos += 1
            value = np.uint64(0)
            digits = 0
            if pos + 1 < n and buf[pos] == 48 and (buf[pos + 1] | 32) == 120:  # 0x
                pos += 2
                while pos < n:
                    d = dig[buf[pos]]
                    if d < 0:
                        break
                    if value >> np.uint64(60):
                        return count, line      # >= 2**64
                    value = (value << np.uint64(4)) | np.uint64(d)
                    digits += 1
                    pos += 1
            else:
                limit = np.uint64(1844674407370955161)  # (2**64 - 1) // 10
                while pos < n:
                    d = dig[buf[pos]]
                    if d < 0 or d > 9:
                        break
                    du = np.uint64(d)
                    if value > limit or (value == limit and du > np.uint64(5)):
                        return count, line      # >= 2**64
                    value = value * np.uint64(10) + du
                    digits += 1
                    pos += 1
            if digits == 0:
                return count, line
            while pos < n and cls[buf[pos]] == 1:
                pos += 1
            if pos < n and cls[buf[pos]] < 2:   # more than two fields
                return count, line
            addr[count] = value
            is_write[count] = w
            count += 1
        while pos < n and buf[pos] != 10:       # the rest of the line is a comment
            pos += 1
        pos += 1
    return count, 0


# -- what is wrong with a line the scanner refused (Python, for the message only) --------------

_WS = " \t\r\v\f"


def _line_error(raw: str, source: str, lineno: int) -> TraceError:
    """The located error for a line that does not follow the trace format."""
    text = raw.split("#", 1)[0].strip(_WS)
    parts = [p for p in text.replace("\t", " ").replace("\r", " ").replace("\v", " ")
             .replace("\f", " ").split(" ") if p]
    if len(parts) != 2:
        return TraceError(f"expected '<LD|ST> <address>', got {text[:60]!r}", file=source,
                          line=lineno)
    op, tok = parts
    if op.upper() not in ("LD", "ST") or not op.isascii():
        return TraceError(f"unknown operation {op[:20]!r}; expected LD or ST", file=source,
                          line=lineno, column=raw.find(op) + 1)
    column = raw.find(tok, raw.find(op) + len(op)) + 1
    low = tok.lower()
    digits = low[2:] if low.startswith("0x") else low.removeprefix("-")
    ok = digits.isascii() and digits != "" and all(
        c in ("0123456789abcdef" if low.startswith("0x") else "0123456789") for c in digits)
    if not ok:
        return TraceError(f"bad address {tok[:30]!r}; expected hex (0x...) or decimal",
                          file=source, line=lineno, column=column)
    return TraceError(f"address {tok[:30]} out of range; expected 0 <= address < 2**64",
                      file=source, line=lineno, column=column)


def _parse_bytes(data: bytes, source: str) -> ParsedTrace:
    buf = np.frombuffer(data, dtype=np.uint8)
    # a request line is at least 4 bytes ("LD 0") and all but the last end in a newline, so n
    # requests take >= 5n - 1 bytes: room for every request without counting the lines first
    room = (len(data) + 1) // 5 + 1
    addr = np.empty(room, np.uint64)
    is_write = np.empty(room, np.bool_)
    count, bad = _scan(buf, addr, is_write)
    if bad:
        ends = np.flatnonzero(buf == 10)
        start = int(ends[bad - 2]) + 1 if bad > 1 else 0
        stop = int(ends[bad - 1]) if bad - 1 < ends.size else len(data)
        raise _line_error(data[start:stop].decode("utf-8", "replace"), source, bad)
    return ParsedTrace(name=source, addr=addr[:count], is_write=is_write[:count])


def parse_trace(path_or_lines: str | Path | Iterable[str], *, name: str | None = None
                ) -> ParsedTrace:
    """Parse a trace file (``str``/``Path``) or an iterable of lines.

    A ``str`` is taken as a path. The file is read as bytes and scanned in one compiled pass
    (a few ms per million requests). Raises ``TraceError`` (with file, line and column) on the
    first line that is not ``LD|ST <address>``, a blank line or a comment, and ``ConfigError``
    if the file cannot be read.
    """
    if isinstance(path_or_lines, str | Path):
        path = Path(path_or_lines)
        data = read_binary(path, what="trace", error=ConfigError, max_bytes=MAX_TRACE_BYTES)
        return _parse_bytes(data, name or str(path))
    text = "\n".join(str(line).rstrip("\n") for line in path_or_lines)
    return _parse_bytes(text.encode("utf-8"), name or "<lines>")


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
