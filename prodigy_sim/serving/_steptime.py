"""Step times: how long one engine iteration takes, given what it computes.

The engine asks a *step-time model* (any object with :meth:`StepTimeModel.step_seconds`) for
the time of each iteration, described by a :class:`StepShape`: how many sequences decode one
token and their total context, and the prefill chunks (new tokens, tokens already cached). The
model is injected, so tests use :class:`AnalyticStepTimes`, the command line uses
:class:`~prodigy_sim.serving.SimulatedStepTimes` (step times from the simulator), and a
mixture-of-experts or multi-socket step-time provider can plug in later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["StepShape", "StepTimeModel", "AnalyticStepTimes"]


@dataclass(frozen=True)
class StepShape:
    """What one iteration computes.

    ``decodes`` sequences each decode one token; ``decode_context_tokens`` is the sum of their
    contexts (tokens in their KV cache after the step, the new one included).
    ``prefill_chunks`` holds one ``(new_tokens, cached_tokens)`` pair per sequence that runs
    (part of) its prompt this step.
    """

    decodes: int = 0
    decode_context_tokens: int = 0
    prefill_chunks: tuple[tuple[int, int], ...] = ()

    @property
    def prefill_tokens(self) -> int:
        """New prompt tokens of the step."""
        return sum(n for n, _ in self.prefill_chunks)

    @property
    def mean_context(self) -> float:
        """Mean context of the decoding sequences (tokens; 0 without decodes)."""
        return self.decode_context_tokens / self.decodes if self.decodes else 0.0

    @property
    def tokens(self) -> int:
        """Tokens the step feeds through the model: prompt chunks plus one per decode."""
        return self.prefill_tokens + self.decodes


@runtime_checkable
class StepTimeModel(Protocol):
    """Anything that times an engine iteration.

    ``max_context`` is the longest sequence (prompt + output tokens) it can time, or None.
    """

    max_context: int | None

    def step_seconds(self, step: StepShape) -> float:
        """Seconds one iteration of ``step`` takes (> 0)."""
        ...


@dataclass(frozen=True)
class AnalyticStepTimes:
    """A closed-form step time, linear in what the step does (for tests and what-ifs)::

        seconds = fixed_s + decode_s * decodes + context_token_s * decode_context_tokens
                  + prefill_token_s * prefill_tokens
                  + prefill_attention_s * sum(new * (cached + new))

    ``fixed_s`` is paid once per step (e.g. streaming the weights); the other terms model the
    per-sequence, KV-read, per-token and attention work.
    """

    fixed_s: float = 5e-3
    decode_s: float = 1e-4
    context_token_s: float = 2e-7
    prefill_token_s: float = 5e-5
    prefill_attention_s: float = 0.0
    max_context: int | None = None

    def step_seconds(self, step: StepShape) -> float:
        attention = sum(n * (c + n) for n, c in step.prefill_chunks)
        return (self.fixed_s + self.decode_s * step.decodes
                + self.context_token_s * step.decode_context_tokens
                + self.prefill_token_s * step.prefill_tokens
                + self.prefill_attention_s * attention)
