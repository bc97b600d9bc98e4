"""Simulated throughput of the two real models on a hardware preset (the timing model).

all-MiniLM-L6-v2: prefill, batch 1, 128-token sentences -> sentences per second (``1 /`` the
simulated time of one sentence). SmolLM2-135M: decode, batch 1, 512 tokens of context ->
tokens per second. The blocks' linear weights take the row's storage (format, MX block,
scale; SpQR: its dense part, ``QuantScheme.lowered_storage``) and sparsity; everything else is
the scenario defaults (FP8 E4M3 activations and KV cache, FP8 MX embeddings and head). Pruning
method does not change the timing, so results are cached per (model, storage, sparsity,
configuration, PTQ work). PTQ methods store the same format (GPTQ, SparseGPT: the same storage;
Hadamard folds into the weights), plus work the lowering adds as kernels: online Hadamard
transforms in every layer, SpQR's outlier products in the layers that have them
(:mod:`._overheads`, ``prodigy_sim.lowering.PtqWork``). A :class:`ThroughputCache` shared by
the rows of one table also reuses the timing-engine runs the scenarios have in common
(attention, norms, embeddings: the same kernels whatever the weights; exact,
``prodigy_sim.simulation``'s ``RunCache``).
"""

from __future__ import annotations

import functools

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import DEFAULT_PRESET, ChipConfig, base_preset, load_preset
from prodigy_sim.lowering import PtqWork, lower_model, matrix_runs
from prodigy_sim.models import Formats, Scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.realmodels._overheads import LoweringExtras, ptq_work
from prodigy_sim.realmodels._quantize import QuantScheme
from prodigy_sim.simulation import RunCache, simulate

__all__ = ["THROUGHPUT_SCENARIOS", "ThroughputCache", "chip_of", "simulated_throughput"]

THROUGHPUT_SCENARIOS: dict[str, dict] = {
    "minilm": dict(model="all-minilm-l6-v2", phase="prefill", batch=1, sequence_length=128),
    "smollm2": dict(model="smollm2-135m", phase="decode", batch=1, context_length=512),
}
"""Scenario fields of each model's throughput (see the module docstring)."""


def chip_of(hardware: str | ChipConfig | None) -> tuple[ChipConfig, str]:
    """``(configuration, the preset it is or is based on)`` of a preset name, a configuration
    (e.g. from :func:`~prodigy_sim.hardware.resolve_hardware`) or None (the default preset)."""
    if isinstance(hardware, ChipConfig):
        return hardware, base_preset(hardware)
    name = hardware or DEFAULT_PRESET
    return load_preset(name), name


class ThroughputCache:
    """Simulated seconds by scenario key, and the timing-engine runs behind them
    (:class:`~prodigy_sim.simulation.RunCache`), for the calls of one table run (passed
    explicitly; exact: the same values as without it)."""

    def __init__(self) -> None:
        self.seconds: dict[tuple, float | None] = {}
        self.runs = RunCache()


def simulated_throughput(model: str, scheme: QuantScheme,
                         hardware: str | ChipConfig = DEFAULT_PRESET,
                         extras: LoweringExtras | None = None,
                         cache: ThroughputCache | None = None) -> float | None:
    """Simulated sentences/s (``"minilm"``) or tokens/s (``"smollm2"``) of ``scheme`` on
    ``hardware`` (a preset name or a configuration); None when the weights do not run on the
    matrix unit (float32, or a format the chip does not run).

    ``extras`` (online Hadamard transforms, SpQR outliers; :mod:`._overheads`): lowered as
    kernels of the layers (:func:`ptq_work`, ``lower_model(..., ptq=)``) and simulated with
    the rest. ``cache``: see :class:`ThroughputCache` (without one, the seconds
    are still kept per scenario for the process)."""
    storage = scheme.lowered_storage or Storage.of("float32")
    config, _ = chip_of(hardware)
    family = "bert" if model == "minilm" else "llama"
    work = ptq_work(extras, family) if extras is not None and not extras.empty else None
    key = (model, storage, scheme.sparsity or "none", config.model_dump_json(), work)
    if cache is None:
        seconds = _seconds(*key)
    elif key in cache.seconds:
        seconds = cache.seconds[key]
    else:
        seconds = cache.seconds[key] = _simulated_seconds(*key, runs=cache.runs)
    if seconds is None:
        return None
    return THROUGHPUT_SCENARIOS[model]["batch"] / seconds


@functools.cache
def _seconds(model: str, storage: Storage, sparsity: str, config_json: str,
             work: PtqWork | None = None) -> float | None:
    """:func:`_simulated_seconds`, cached by the configuration's JSON (hashable)."""
    return _simulated_seconds(model, storage, sparsity, config_json, work)


def _simulated_seconds(model: str, storage: Storage, sparsity: str, config_json: str,
                       work: PtqWork | None = None, runs: RunCache | None = None
                       ) -> float | None:
    """The simulated seconds of one pass (``runs``: timing-engine runs to reuse)."""
    if model not in THROUGHPUT_SCENARIOS:
        raise ConfigError(f"unknown model {model!r}; models: {', '.join(THROUGHPUT_SCENARIOS)}")
    config = ChipConfig.model_validate_json(config_json)
    if not matrix_runs(storage.fmt, config):
        return None
    scenario = Scenario(formats=Formats(weights=storage), sparsity=sparsity,
                        hardware=base_preset(config),
                        **THROUGHPUT_SCENARIOS[model])
    lowered = lower_model(scenario.card(), scenario, config, ptq=work)
    # SpQR lowers every layer as a stage of its own; their common kernels run once
    return simulate(lowered, config, cache=runs if runs is not None else RunCache()).seconds
