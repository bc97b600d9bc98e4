"""Routing models of mixture-of-experts layers: which experts ``T`` tokens use, and how many rows
each expert's buffer holds. Closed forms, so the same scenario always gives the same plan.

A token picks ``k`` distinct experts of ``E``. The probability that a token picks expert ``i`` is
``q_i`` (``sum q_i = k``), and tokens pick independently, so the expected number of distinct
experts the ``T`` tokens use is ``sum_i 1 - (1 - q_i)^T`` and expert ``i`` expects ``T q_i``
tokens.

``uniform``  ``q_i = k / E``: ``E (1 - (1 - k/E)^T)`` experts hit (the default; the load a router
             trained with a balancing loss aims at).
``zipf``     ``q_i = min(1, k p_i)`` with ``p_i`` proportional to ``i^-s`` (``zipf_exponent`` s;
             expert 1 the most popular): a skewed router. The clipped mass of an expert every
             token would pick is not handed on, so ``sum q_i`` may fall short of ``k``.
``trace``    recorded choices, one list of ``k`` expert ids per token (``trace``); a pass over
             ``T`` tokens uses the first ``T`` rows, cycling when the trace is shorter. Experts
             hit and loads are counted, not expected.

Capacity (rows of each expert's buffer, the rows its GEMMs compute): with a ``capacity_factor``
cf, ``C = max(1, ceil(cf T k / E))`` (GShard/Switch; tokens beyond it are dropped); with
``capacity_factor: null`` (dropless, as Mixtral serves) ``C`` = the largest expected load of an
expert, rounded up.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.models._files import read_mapping

__all__ = ["Routing", "DEFAULT_CAPACITY_FACTOR"]

DEFAULT_CAPACITY_FACTOR = 1.25
"""The capacity factor the Switch Transformer paper uses (Fedus et al. 2022, section 2.2)."""


class Routing(BaseModel):
    """How tokens are routed to experts (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Literal["uniform", "zipf", "trace"] = Field(
        "uniform", description="uniform, zipf (skewed) or trace (recorded choices)")
    zipf_exponent: float | None = Field(
        None, gt=0, description="zipf: exponent s of expert popularity i^-s")
    trace: tuple[tuple[int, ...], ...] | None = Field(
        None, description="trace: expert ids chosen by each token (k per row)")
    capacity_factor: float | None = Field(
        DEFAULT_CAPACITY_FACTOR, gt=0,
        description="expert buffer rows = ceil(cf T k / E); null = dropless (largest load)")

    @model_validator(mode="after")
    def _fields(self) -> Routing:
        if (self.model == "zipf") != (self.zipf_exponent is not None):
            raise ValueError("'zipf_exponent' is required with model 'zipf' and refused otherwise")
        if (self.model == "trace") != (self.trace is not None):
            raise ValueError("'trace' is required with model 'trace' and refused otherwise")
        if self.trace is not None and not self.trace:
            raise ValueError("'trace' is empty")
        return self

    @classmethod
    def from_spec(cls, text: str, capacity_factor: str | None = None, *,
                  source: str = "routing") -> Routing:
        """A routing model from a command-line text: ``uniform``, ``zipf:S`` (exponent S) or
        ``trace:FILE`` (a YAML/JSON mapping whose ``trace`` is a list of expert-id lists, one
        per token); ``capacity_factor``: a number or ``none`` (dropless), default 1.25."""
        kind, _, arg = text.partition(":")
        data: dict[str, object] = {"model": kind}
        if kind == "zipf":
            data["zipf_exponent"] = arg
        elif kind == "trace":
            data["trace"] = read_mapping(Path(arg), what="routing trace").get("trace")
        elif arg or kind != "uniform":
            raise ConfigError(f"{source}: {text!r}: give uniform, zipf:S or trace:FILE")
        if capacity_factor is not None:
            data["capacity_factor"] = (None if capacity_factor.lower() in ("none", "null")
                                       else capacity_factor)
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise config_error_from_validation(err, source=source) from None

    def describe(self) -> str:
        """The routing model in words, for reports."""
        what = {"uniform": "uniform routing",
                "zipf": f"Zipf-skewed routing (exponent {self.zipf_exponent})",
                "trace": f"a trace of {len(self.trace or ())} tokens' expert choices"}[self.model]
        cap = ("dropless" if self.capacity_factor is None
               else f"capacity factor {self.capacity_factor}")
        return f"{what}, {cap}"

    def check(self, top_k: int, num_experts: int, *, source: str = "routing") -> None:
        """Refuse a trace whose rows are not ``top_k`` distinct ids in ``0..num_experts-1``."""
        for n, row in enumerate(self.trace or ()):
            if len(row) != top_k or len(set(row)) != top_k or not all(
                    0 <= e < num_experts for e in row):
                raise ConfigError(f"{source}: 'trace' row {n}: {list(row)} is not {top_k} "
                                  f"distinct expert ids in 0..{num_experts - 1}")

    def _trace_rows(self, tokens: int) -> list[tuple[int, ...]]:
        rows = self.trace or ()
        return [rows[i % len(rows)] for i in range(tokens)]

    def pick_probabilities(self, top_k: int, num_experts: int) -> list[float]:
        """``q_i``: the probability that one token picks expert ``i`` (uniform, zipf)."""
        if self.model == "uniform":
            return [top_k / num_experts] * num_experts
        if self.model == "zipf":
            s = float(self.zipf_exponent or 0.0)
            w = [(i + 1) ** -s for i in range(num_experts)]
            total = math.fsum(w)
            return [min(1.0, top_k * x / total) for x in w]
        raise ConfigError("a trace has counts, not pick probabilities")

    def loads(self, tokens: int, top_k: int, num_experts: int) -> list[float]:
        """Tokens each expert gets (expected; counted for a trace)."""
        if self.model == "trace":
            self.check(top_k, num_experts)
            out = [0.0] * num_experts
            for row in self._trace_rows(tokens):
                for e in row:
                    out[e] += 1
            return out
        return [tokens * q for q in self.pick_probabilities(top_k, num_experts)]

    def experts_hit(self, tokens: int, top_k: int, num_experts: int) -> float:
        """Distinct experts the ``tokens`` tokens use (expected; counted for a trace)."""
        if self.model == "trace":
            return float(sum(1 for x in self.loads(tokens, top_k, num_experts) if x))
        return math.fsum(1.0 - (1.0 - q) ** tokens
                         for q in self.pick_probabilities(top_k, num_experts))

    def capacity(self, tokens: int, top_k: int, num_experts: int) -> int:
        """Rows of each expert's buffer ``C`` (see the module docstring)."""
        if self.capacity_factor is not None:
            return max(1, math.ceil(self.capacity_factor * tokens * top_k / num_experts - 1e-9))
        return max(1, math.ceil(max(self.loads(tokens, top_k, num_experts)) - 1e-9))

    def kept(self, tokens: int, top_k: int, num_experts: int) -> float:
        """(token, choice) copies that fit the buffers, ``sum_i min(load_i, C)`` (expected; the
        rest, of ``T k``, are dropped)."""
        c = self.capacity(tokens, top_k, num_experts)
        return math.fsum(min(x, c) for x in self.loads(tokens, top_k, num_experts))
