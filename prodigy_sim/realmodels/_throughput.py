"""Simulated throughput of the two real models on a hardware preset (the timing model).

all-MiniLM-L6-v2: prefill, batch 1, 128-token sentences -> sentences per second (``1 /`` the
simulated time of one sentence). SmolLM2-135M: decode, batch 1, 512 tokens of context ->
tokens per second. The blocks' linear weights take the row's format (MX block 32) and sparsity;
everything else is the scenario defaults (FP8 E4M3 activations and KV cache, FP8 MX embeddings
and head). The float32 row simulates float32 linear weights. Pruning method does not change the
timing, so results are cached per (model, format, sparsity, preset).
"""

from __future__ import annotations

import functools

from prodigy_sim.hardware import DEFAULT_PRESET
from prodigy_sim.realmodels._quantize import QuantScheme

__all__ = ["THROUGHPUT_SCENARIOS", "simulated_throughput"]

THROUGHPUT_SCENARIOS: dict[str, dict] = {
    "minilm": dict(model="all-minilm-l6-v2", phase="prefill", batch=1, sequence_length=128),
    "smollm2": dict(model="smollm2-135m", phase="decode", batch=1, context_length=512),
}
"""Scenario fields of each model's throughput (see the module docstring)."""


def simulated_throughput(model: str, scheme: QuantScheme,
                         hardware: str = DEFAULT_PRESET) -> float | None:
    """Simulated sentences/s (``"minilm"``) or tokens/s (``"smollm2"``) of ``scheme``; None when
    the weight format does not run on the matrix unit (the lowering rejects it: float32, int4)."""
    return _throughput(model, scheme.weight_format or "float32", scheme.sparsity or "none",
                       scheme.block, scheme.scale, hardware)


@functools.cache
def _throughput(model: str, fmt: str, sparsity: str, block: int, scale: str,
                hardware: str) -> float | None:
    from prodigy_sim.errors import ConfigError
    from prodigy_sim.models import Scenario
    from prodigy_sim.models.scenario import Formats, WeightFormat
    from prodigy_sim.reports import simulate_scenario

    if model not in THROUGHPUT_SCENARIOS:
        raise ConfigError(f"unknown model {model!r}; models: {', '.join(THROUGHPUT_SCENARIOS)}")
    weights = (WeightFormat(format="float32") if fmt == "float32"
               else WeightFormat(format=fmt, block=block, scale=scale))
    scenario = Scenario(formats=Formats(weights=weights), sparsity=sparsity, hardware=hardware,
                        **THROUGHPUT_SCENARIOS[model])
    if fmt not in _matrix_formats():
        return None
    report = simulate_scenario(scenario)
    return report.batch / report.seconds


def _matrix_formats() -> tuple[str, ...]:
    """Weight formats the lowering runs on the matrix unit."""
    from prodigy_sim.lowering._lower import MATRIX_FORMATS

    return tuple(MATRIX_FORMATS)
