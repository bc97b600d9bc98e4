"""Model cards, scenarios and footprint reports.

A :class:`ModelCard` is a model's architecture as data (from its published configuration) and lists
its weight tensors; a :class:`Scenario` says how it is run (phase, batch, context, number formats,
sparsity, hardware preset); :func:`footprint_report` counts the bytes of weights, KV cache and
activations exactly and says whether they fit the preset's DDR capacity. Cards live in
``workloads/models/``, scenarios in ``workloads/scenarios/``; see ``docs/models.md``.

Each public name is imported from its module on first use (:mod:`prodigy_sim._lazy`): listing the
cards does not load the number formats.
"""

from typing import TYPE_CHECKING

from prodigy_sim._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from prodigy_sim.models._files import card_names as card_names
    from prodigy_sim.models._files import scenario_names as scenario_names
    from prodigy_sim.models.card import LINEAR_CLASSES as LINEAR_CLASSES
    from prodigy_sim.models.card import TENSOR_CLASSES as TENSOR_CLASSES
    from prodigy_sim.models.card import ModelCard as ModelCard
    from prodigy_sim.models.card import TensorClass as TensorClass
    from prodigy_sim.models.card import TensorSpec as TensorSpec
    from prodigy_sim.models.card import load_card as load_card
    from prodigy_sim.models.card import parse_card as parse_card
    from prodigy_sim.models.footprint import ACTIVATION_RULE as ACTIVATION_RULE
    from prodigy_sim.models.footprint import ClassFootprint as ClassFootprint
    from prodigy_sim.models.footprint import FootprintReport as FootprintReport
    from prodigy_sim.models.footprint import activation_bytes as activation_bytes
    from prodigy_sim.models.footprint import footprint_report as footprint_report
    from prodigy_sim.models.footprint import kv_cache_bytes as kv_cache_bytes
    from prodigy_sim.models.footprint import tensor_footprint as tensor_footprint
    from prodigy_sim.models.routing import DEFAULT_CAPACITY_FACTOR as DEFAULT_CAPACITY_FACTOR
    from prodigy_sim.models.routing import Routing as Routing
    from prodigy_sim.models.scenario import Formats as Formats
    from prodigy_sim.models.scenario import Scenario as Scenario
    from prodigy_sim.models.scenario import check_scenario as check_scenario
    from prodigy_sim.models.scenario import load_scenario as load_scenario
    from prodigy_sim.models.scenario import parse_scenario as parse_scenario

_EXPORTS = {
    "LINEAR_CLASSES": "card",
    "TENSOR_CLASSES": "card",
    "ModelCard": "card",
    "TensorClass": "card",
    "TensorSpec": "card",
    "card_names": "_files",
    "load_card": "card",
    "parse_card": "card",
    "ACTIVATION_RULE": "footprint",
    "ClassFootprint": "footprint",
    "FootprintReport": "footprint",
    "activation_bytes": "footprint",
    "footprint_report": "footprint",
    "kv_cache_bytes": "footprint",
    "tensor_footprint": "footprint",
    "DEFAULT_CAPACITY_FACTOR": "routing",
    "Routing": "routing",
    "Formats": "scenario",
    "Scenario": "scenario",
    "check_scenario": "scenario",
    "load_scenario": "scenario",
    "parse_scenario": "scenario",
    "scenario_names": "_files",
}
"""Public name -> the module of this package that defines it."""

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
