"""One call from a model and a trace to a serving result, and a sweep over arrival rates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prodigy_sim.hardware import DEFAULT_PRESET, ChipConfig, load_preset
from prodigy_sim.models import Formats
from prodigy_sim.serving._engine import EngineConfig, simulate_serving
from prodigy_sim.serving._kvcache import KvBudget, kv_cache_blocks
from prodigy_sim.serving._result import ServingResult
from prodigy_sim.serving._simulated import SimulatedStepTimes
from prodigy_sim.serving._steptime import StepTimeModel
from prodigy_sim.serving._trace import LengthDist, Request, poisson_trace

__all__ = ["serve", "sweep_rates", "engine_kv_budget"]


def engine_kv_budget(model: str, engine: EngineConfig, *, formats: Formats | None = None,
                     sparsity: str = "none", config: ChipConfig | None = None,
                     hardware: str | None = None,
                     capacity_bytes: int | None = None) -> KvBudget:
    """The KV blocks of ``model`` on one socket: ``capacity_bytes`` (default the chip's DDR)
    minus weights and activations (:func:`~prodigy_sim.serving.kv_cache_blocks`)."""
    if capacity_bytes is None:
        chip = config or load_preset(hardware or DEFAULT_PRESET)
        capacity_bytes = chip.memory.capacity_bytes
    return kv_cache_blocks(model, capacity_bytes=capacity_bytes, formats=formats,
                           sparsity=sparsity, block_tokens=engine.block_tokens,
                           max_batch=engine.max_batch,
                           max_prefill_tokens=engine.chunk_tokens or engine.max_prefill_tokens)


def serve(trace: Sequence[Request], *, model: str = "llama-2-7b",
          formats: Formats | None = None, sparsity: str = "none", hardware: str | None = None,
          config: ChipConfig | None = None, engine: EngineConfig | None = None,
          capacity_bytes: int | None = None, step_times: StepTimeModel | None = None,
          progress: Callable[[int], None] | None = None) -> ServingResult:
    """Serve ``trace`` with ``model`` on one socket.

    Step times: ``step_times``, or a :class:`SimulatedStepTimes` of the model, formats and chip.
    KV cache: ``engine.kv_blocks``, or what ``capacity_bytes`` (default the chip's DDR) leaves
    after the weights and activations.
    """
    engine = engine or EngineConfig()
    if step_times is None:
        step_times = SimulatedStepTimes(model, formats=formats, sparsity=sparsity,
                                        hardware=hardware, config=config,
                                        max_batch=engine.max_batch)
    if engine.kv_blocks is None:
        budget = engine_kv_budget(model, engine, formats=formats, sparsity=sparsity,
                                  config=config, hardware=hardware,
                                  capacity_bytes=capacity_bytes)
        engine = engine.model_copy(update={"kv_blocks": budget.blocks})
    return simulate_serving(trace, step_times, engine, progress=progress)


def sweep_rates(rates: Sequence[float], step_times: StepTimeModel, *, requests: int,
                prompt: LengthDist | str, output: LengthDist | str, seed: int = 0,
                engine: EngineConfig | None = None,
                progress: Callable[[int], None] | None = None) -> list[ServingResult]:
    """One Poisson trace per arrival rate (the same seed: the same lengths, arrival gaps scaled),
    each served by ``step_times`` and ``engine``."""
    return [simulate_serving(poisson_trace(requests, rate, prompt, output, seed), step_times,
                             engine, progress=progress) for rate in rates]
