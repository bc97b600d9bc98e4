"""Simulated throughput of the two real models on a hardware preset (the timing model).

all-MiniLM-L6-v2: prefill, batch 1, 128-token sentences -> sentences per second (``1 /`` the
simulated time of one sentence). SmolLM2-135M: decode, batch 1, 512 tokens of context ->
tokens per second. The blocks' linear weights take the row's storage (format, MX block, scale)
and sparsity; everything else is the scenario defaults (FP8 E4M3 activations and KV cache, FP8
MX embeddings and head). Pruning method does not change the timing, so results are cached per
(model, storage, sparsity, preset).
"""

from __future__ import annotations

import functools

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import DEFAULT_PRESET, load_preset
from prodigy_sim.lowering import matrix_runs
from prodigy_sim.models import Formats, Scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.realmodels._quantize import QuantScheme
from prodigy_sim.simulation import simulate

__all__ = ["THROUGHPUT_SCENARIOS", "simulated_throughput"]

THROUGHPUT_SCENARIOS: dict[str, dict] = {
    "minilm": dict(model="all-minilm-l6-v2", phase="prefill", batch=1, sequence_length=128),
    "smollm2": dict(model="smollm2-135m", phase="decode", batch=1, context_length=512),
}
"""Scenario fields of each model's throughput (see the module docstring)."""


def simulated_throughput(model: str, scheme: QuantScheme,
                         hardware: str = DEFAULT_PRESET) -> float | None:
    """Simulated sentences/s (``"minilm"``) or tokens/s (``"smollm2"``) of ``scheme``; None when
    the weights do not run on the matrix unit (float32, or a format the preset does not run)."""
    storage = scheme.storage or Storage.of("float32")
    return _throughput(model, storage, scheme.sparsity or "none", hardware)


@functools.cache
def _throughput(model: str, storage: Storage, sparsity: str, hardware: str) -> float | None:
    if model not in THROUGHPUT_SCENARIOS:
        raise ConfigError(f"unknown model {model!r}; models: {', '.join(THROUGHPUT_SCENARIOS)}")
    config = load_preset(hardware)
    if not matrix_runs(storage.fmt, config):
        return None
    scenario = Scenario(formats=Formats(weights=storage), sparsity=sparsity, hardware=hardware,
                        **THROUGHPUT_SCENARIOS[model])
    sim = simulate(scenario, config)
    return scenario.batch / sim.seconds
