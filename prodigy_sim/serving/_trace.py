"""Request traces: when each request arrives, how long its prompt is, how many tokens it wants.

A trace is a tuple of :class:`Request`, sorted by arrival time (ties by id). It is read from a
file (:func:`load_trace`) or generated (:func:`poisson_trace`).

Files:

- CSV with a header naming the columns ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (any
  order; an ``id`` column is optional, other columns are refused); ``#`` lines are comments.
- JSON: a list of objects with the same fields, or ``{"requests": [...]}``.

A bad row raises :class:`~prodigy_sim.errors.TraceError` naming the file and the line (CSV) or the
request index (JSON) and the field. A trace holds at most ``MAX_REQUESTS`` requests.

Generation: arrivals form a Poisson process of ``rate_per_s`` requests per second (exponential
gaps, the first request at the first gap), lengths are drawn from :class:`LengthDist`
(``fixed``, ``uniform`` integers in ``[low, high]``, or ``lognormal`` with a given mean and
sigma of the log, rounded to the nearest integer and clipped to ``[1, max]``), all from one
``numpy.random.Generator(PCG64(seed))``: the same seed gives the same trace (for a given numpy
version).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prodigy_sim._datafile import load_json
from prodigy_sim.errors import ConfigError, TraceError

__all__ = ["Request", "LengthDist", "parse_length_dist", "load_trace", "write_trace",
           "poisson_trace", "TRACE_FIELDS", "MAX_REQUESTS"]

TRACE_FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")
MAX_ARRIVAL_S = 1e15
"""Latest arrival (s, about 30 million years): the engine counts time in integer ns."""
MAX_REQUESTS = 100_000
"""Most requests in one trace (read or generated). The engine keeps a timeline row per step (one
to a few hundred steps per request): 100,000 requests of the default lengths at 8 requests/s take
about 12 s and 0.8 GB without simulations."""


def _check_count(n: int, source: str) -> None:
    if n > MAX_REQUESTS:
        raise TraceError(f"{n} requests; a trace holds at most {MAX_REQUESTS}", file=source)


@dataclass(frozen=True)
class Request:
    """One request: arrival time (s), prompt tokens, tokens to generate (>= 1)."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


def _field(value: object, name: str, where: str, *, integer: bool) -> float | int:
    if isinstance(value, bool):
        raise TraceError(f"{name!r} must be a number (got {value!r})", file=where)
    try:
        number = value if isinstance(value, (int, float)) else float(str(value))
    except (TypeError, ValueError):
        raise TraceError(f"{name!r} must be a number (got {value!r})", file=where) from None
    if not math.isfinite(number):
        raise TraceError(f"{name!r} must be finite (got {value!r})", file=where)
    if integer:
        if float(number) != int(number) or int(number) < 1:
            raise TraceError(f"{name!r} must be an integer >= 1 (got {value!r})", file=where)
        return int(number)
    if number < 0:
        raise TraceError(f"{name!r} must be >= 0 seconds (got {value!r})", file=where)
    if number > MAX_ARRIVAL_S:
        raise TraceError(f"{name!r} must be <= {MAX_ARRIVAL_S:g} seconds (got {value!r})",
                         file=where)
    return float(number)


def _request(row: dict, index: int, where: str) -> Request:
    ident = row.get("id", index)
    if ident in (None, ""):
        ident = index
    ident = _field(ident, "id", where, integer=False)
    if ident != int(ident):
        raise TraceError(f"'id' must be an integer (got {row.get('id')!r})", file=where)
    return Request(id=int(ident),
                   arrival_s=_field(row.get("arrival_s"), "arrival_s", where, integer=False),
                   prompt_tokens=int(_field(row.get("prompt_tokens"), "prompt_tokens", where,
                                            integer=True)),
                   output_tokens=int(_field(row.get("output_tokens"), "output_tokens", where,
                                            integer=True)))


def _sorted(requests: Iterable[Request], source: str) -> tuple[Request, ...]:
    out = tuple(sorted(requests, key=lambda r: (r.arrival_s, r.id)))
    _check_count(len(out), source)
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TraceError(f"request id {dup} appears more than once", file=source)
    if not out:
        raise TraceError("the trace has no requests", file=source)
    return out


def load_trace(path: str | Path) -> tuple[Request, ...]:
    """Read a CSV or JSON request trace (see the module docstring), sorted by arrival."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise TraceError(f"cannot read the trace ({err.strerror})", file=str(p)) from None
    except UnicodeDecodeError:
        raise TraceError("not a text file (UTF-8 decoding failed)", file=str(p)) from None
    if p.suffix.lower() == ".json":
        return _sorted(_json_rows(text, str(p)), str(p))
    return _sorted(_csv_rows(text, str(p)), str(p))


def _json_rows(text: str, source: str) -> list[Request]:
    data = load_json(text, source=source, error=TraceError)
    if isinstance(data, dict):
        data = data.get("requests")
    if not isinstance(data, list):
        raise TraceError("a JSON trace is a list of requests or {\"requests\": [...]}",
                         file=source)
    out = []
    for i, row in enumerate(data):
        where = f"{source}: request {i}"
        if not isinstance(row, dict):
            raise TraceError(f"a request is an object with {', '.join(TRACE_FIELDS)} "
                             f"(got {type(row).__name__})", file=where)
        unknown = sorted(set(row) - set(TRACE_FIELDS) - {"id"})
        if unknown:
            raise TraceError(f"unknown field(s) {', '.join(map(repr, unknown))} (known: id, "
                             f"{', '.join(TRACE_FIELDS)})", file=where)
        out.append(_request(row, i, where))
    return out


def _csv_rows(text: str, source: str) -> list[Request]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise TraceError("the trace has no header and no requests", file=source)
    head_line, head = lines[0]
    names = [c.strip() for c in next(csv.reader([head]))]
    missing = [f for f in TRACE_FIELDS if f not in names]
    unknown = [c for c in names if c not in TRACE_FIELDS and c != "id"]
    if missing or unknown:
        raise TraceError(f"header must name {', '.join(TRACE_FIELDS)} (and optionally id): "
                         + (f"missing {', '.join(missing)}" if missing else "")
                         + ("; " if missing and unknown else "")
                         + (f"unknown {', '.join(unknown)}" if unknown else ""),
                         file=source, line=head_line)
    _check_count(len(lines) - 1, source)
    out = []
    for i, (n, line) in enumerate(lines[1:]):
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != len(names):
            raise TraceError(f"expected {len(names)} values ({', '.join(names)}), got "
                             f"{len(cells)}", file=source, line=n)
        row = dict(zip(names, cells, strict=True))
        try:
            out.append(_request(row, i, source))
        except TraceError as err:
            raise TraceError(err.reason, file=source, line=n) from None
    return out


def write_trace(requests: Sequence[Request], path: str | Path) -> Path:
    """Write a trace as CSV (or JSON for a ``.json`` path) that :func:`load_trace` reads back."""
    p = Path(path)
    rows = [asdict(r) for r in requests]
    if p.suffix.lower() == ".json":
        p.write_text(json.dumps({"requests": rows}, indent=1) + "\n")
        return p
    with p.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=("id",) + TRACE_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "arrival_s": repr(r["arrival_s"])})
    return p


class LengthDist(BaseModel):
    """A distribution of token counts (integers >= 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["fixed", "uniform", "lognormal"] = Field(description="distribution family")
    value: int | None = Field(None, ge=1, description="fixed: the length (tokens)")
    low: int | None = Field(None, ge=1, description="uniform: smallest length (tokens)")
    high: int | None = Field(None, ge=1, description="uniform: largest length (tokens)")
    mean: float | None = Field(None, gt=0, description="lognormal: mean length (tokens)")
    sigma: float | None = Field(None, ge=0, description="lognormal: standard deviation of the "
                                                        "log of the length")
    max: int | None = Field(None, ge=1, description="lognormal: longest length (tokens)")

    @model_validator(mode="after")
    def _fields(self) -> LengthDist:
        need = {"fixed": ("value",), "uniform": ("low", "high"),
                "lognormal": ("mean", "sigma")}[self.kind]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.kind} needs {', '.join(missing)}")
        if (self.kind == "uniform" and self.low is not None and self.high is not None
                and self.low > self.high):
            raise ValueError(f"uniform needs low <= high (got {self.low} > {self.high})")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` lengths (int64)."""
        if self.kind == "fixed":
            return np.full(n, self.value, dtype=np.int64)
        if self.kind == "uniform":
            assert self.low is not None and self.high is not None   # checked by _fields
            return rng.integers(self.low, self.high, size=n, endpoint=True, dtype=np.int64)
        assert self.mean is not None and self.sigma is not None     # checked by _fields
        mu = math.log(self.mean) - self.sigma ** 2 / 2
        x = np.rint(rng.lognormal(mu, self.sigma, size=n)).astype(np.int64)
        return np.clip(x, 1, self.max or np.iinfo(np.int64).max)

    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.value}"
        if self.kind == "uniform":
            return f"uniform:{self.low},{self.high}"
        tail = f",{self.max}" if self.max else ""
        return f"lognormal:{self.mean:g},{self.sigma:g}{tail}"


def parse_length_dist(text: str, *, what: str = "length") -> LengthDist:
    """``fixed:N``, ``uniform:LOW,HIGH`` or ``lognormal:MEAN,SIGMA[,MAX]`` -> :class:`LengthDist`.
    """
    kind, _, args = str(text).partition(":")
    try:
        values = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        raise ConfigError(f"{what} distribution {text!r}: values must be numbers "
                          "(fixed:N, uniform:LOW,HIGH, lognormal:MEAN,SIGMA[,MAX])") from None
    names = {"fixed": ("value",), "uniform": ("low", "high"),
             "lognormal": ("mean", "sigma", "max")}.get(kind)
    if names is None or not (len(names) - (kind == "lognormal") <= len(values) <= len(names)):
        raise ConfigError(f"{what} distribution {text!r}: expected fixed:N, uniform:LOW,HIGH or "
                          "lognormal:MEAN,SIGMA[,MAX]")
    data: dict = {"kind": kind}
    for name, v in zip(names, values, strict=False):
        data[name] = int(v) if name in ("value", "low", "high", "max") and v == int(v) else v
    try:
        return LengthDist.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{what} distribution {text!r}: {err.errors()[0]['msg']}") from None


def poisson_trace(n: int, rate_per_s: float, prompt: LengthDist | str,
                  output: LengthDist | str, seed: int = 0) -> tuple[Request, ...]:
    """``n`` requests arriving as a Poisson process of ``rate_per_s`` (requests/s), lengths from
    ``prompt`` and ``output`` (distributions or their text form), deterministic in ``seed``."""
    if not 1 <= n <= MAX_REQUESTS:
        raise ConfigError(f"a trace needs 1..{MAX_REQUESTS} requests (got {n})")
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ConfigError(f"the arrival rate must be a finite number > 0 requests/s (got "
                          f"{rate_per_s})")
    prompt = parse_length_dist(prompt, what="prompt") if isinstance(prompt, str) else prompt
    output = parse_length_dist(output, what="output") if isinstance(output, str) else output
    rng = np.random.Generator(np.random.PCG64(seed))
    arrivals = np.cumsum(rng.exponential(1.0 / rate_per_s, size=n))
    if not arrivals[-1] <= MAX_ARRIVAL_S:
        raise ConfigError(f"the arrival rate {rate_per_s:g} requests/s puts arrivals beyond "
                          f"{MAX_ARRIVAL_S:g} s")
    prompts = prompt.sample(rng, n)
    outputs = output.sample(rng, n)
    return tuple(Request(i, float(a), int(p), int(o))
                 for i, (a, p, o) in enumerate(zip(arrivals, prompts, outputs, strict=True)))
