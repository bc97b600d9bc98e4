"""Model cards, scenarios and footprint reports.

A :class:`ModelCard` is a model's architecture as data (from its published configuration) and lists
its weight tensors; a :class:`Scenario` says how it is run (phase, batch, context, number formats,
sparsity, hardware preset); :func:`footprint_report` counts the bytes of weights, KV cache and
activations exactly and says whether they fit the preset's DDR capacity. Cards live in
``workloads/models/``, scenarios in ``workloads/scenarios/``; see ``docs/models.md``.

Each public name is imported from its module on first use (:mod:`prodigy_sim._lazy`): listing the
cards does not load the number formats.
"""

from prodigy_sim._lazy import lazy_exports

_EXPORTS = {
    "LINEAR_CLASSES": "card",
    "TENSOR_CLASSES": "card",
    "ModelCard": "card",
    "TensorClass": "card",
    "TensorSpec": "card",
    "card_names": "card",
    "load_card": "card",
    "parse_card": "card",
    "ACTIVATION_RULE": "footprint",
    "ClassFootprint": "footprint",
    "FootprintReport": "footprint",
    "activation_bytes": "footprint",
    "footprint_report": "footprint",
    "kv_cache_bytes": "footprint",
    "tensor_footprint": "footprint",
    "WIDE_FORMAT_BITS": "scenario",
    "Formats": "scenario",
    "Scenario": "scenario",
    "WeightFormat": "scenario",
    "check_scenario": "scenario",
    "format_bits": "scenario",
    "load_scenario": "scenario",
    "parse_scenario": "scenario",
    "scenario_names": "scenario",
}
"""Public name -> the module of this package that defines it."""

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
