"""The throughput the step times predict for a saturated engine (fixed lengths).

With every request of ``P`` prompt and ``N`` output tokens, a queue that never empties, no
chunked prefill and an unbounded KV cache, ``B = max_batch`` sequences are always running
(prefills come first, so a finished request is replaced before the next decode step): every
``N - 1`` decode steps of ``B`` sequences retire ``B`` requests, and the ``B`` prompts that replace
them are prefilled ``k`` at a time. So::

    requests/s = B / ((B / k) t_prefill(k P) + sum_{j=1}^{N-1} t_decode(B, B (P + j)))

``k = B`` is the synchronous cycle (all ``B`` admitted together, all finishing together: what a
burst of arrivals produces, and what the engine keeps once it is in it); ``k = 1`` is the fully
staggered engine (one admission per finished request). Poisson arrivals ramping up to saturation
leave the engine somewhere between (``docs/serving.md`` measures it).
"""

from __future__ import annotations

from prodigy_sim.errors import ConfigError
from prodigy_sim.serving._engine import EngineConfig
from prodigy_sim.serving._steptime import StepShape, StepTimeModel

__all__ = ["saturation_requests_per_s"]


def saturation_requests_per_s(step_model: StepTimeModel, prompt_tokens: int,
                              output_tokens: int, config: EngineConfig | None = None, *,
                              prompts_per_prefill: int | None = None) -> float:
    """Requests/s of the saturated engine (see the module docstring); ``prompts_per_prefill``
    is ``k`` (default ``max_batch``), a divisor of ``max_batch``."""
    config = config or EngineConfig()
    if config.chunk_tokens is not None or config.kv_blocks is not None:
        raise ConfigError("the closed form assumes no chunked prefill and an unbounded KV cache")
    b = config.max_batch
    k = prompts_per_prefill or b
    if b % k:
        raise ConfigError(f"prompts_per_prefill {k} must divide max_batch {b}")
    if k > 1 and k * prompt_tokens > config.max_prefill_tokens:
        raise ConfigError(f"{k} prompts of {prompt_tokens} tokens exceed max_prefill_tokens "
                          f"{config.max_prefill_tokens}")
    cycle = b // k * step_model.step_seconds(StepShape(prefill_chunks=((prompt_tokens, 0),) * k))
    for j in range(1, output_tokens):
        cycle += step_model.step_seconds(StepShape(decodes=b,
                                                   decode_context_tokens=b * (prompt_tokens + j)))
    return b / cycle
