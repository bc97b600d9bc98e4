"""The throughput the step times predict for a saturated engine (fixed lengths).

With every request of ``P`` prompt and ``N`` output tokens, a queue that never empties, no
chunked prefill and an unbounded KV cache, the engine runs in cycles: one prefill step admits
``B`` requests (``B = max_batch``, or fewer if ``B P`` exceeds ``max_prefill_tokens``: then
``ceil(max_batch / per_step)`` prefill steps), then ``N - 1`` decode steps of all ``B``, the
``j``-th at context ``P + j``; then they all finish together. So::

    requests/s = B / (sum of prefill steps + sum_{j=1}^{N-1} t_decode(B, B (P + j)))

When the prefills do not fit one step, the first admitted decode while later ones prefill; this
closed form assumes one prefill step per cycle and raises otherwise.
"""

from __future__ import annotations

from prodigy_sim.errors import ConfigError
from prodigy_sim.serving._engine import EngineConfig
from prodigy_sim.serving._steptime import StepShape, StepTimeModel

__all__ = ["saturation_requests_per_s"]


def saturation_requests_per_s(step_model: StepTimeModel, prompt_tokens: int,
                              output_tokens: int, config: EngineConfig | None = None) -> float:
    """Requests/s of the saturated engine (see the module docstring)."""
    config = config or EngineConfig()
    if config.chunk_tokens is not None or config.kv_blocks is not None:
        raise ConfigError("the closed form assumes no chunked prefill and an unbounded KV cache")
    b = config.max_batch
    if b > 1 and b * prompt_tokens > config.max_prefill_tokens:
        raise ConfigError(f"{b} prompts of {prompt_tokens} tokens exceed max_prefill_tokens "
                          f"{config.max_prefill_tokens}: the cycle has several prefill steps")
    cycle = step_model.step_seconds(StepShape(prefill_chunks=((prompt_tokens, 0),) * b))
    for j in range(1, output_tokens):
        cycle += step_model.step_seconds(StepShape(decodes=b,
                                                   decode_context_tokens=b * (prompt_tokens + j)))
    return b / cycle
