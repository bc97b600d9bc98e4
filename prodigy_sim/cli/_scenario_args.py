"""A scenario from command-line flags, shared by ``simulate`` and ``footprint``: model names and
aliases, the phase and length defaults of a card, and one place that turns the flags into a
validated :class:`~prodigy_sim.models.Scenario`. The simulator is imported inside the functions
(``--help`` stays light)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from prodigy_sim.errors import ConfigError

if TYPE_CHECKING:
    from prodigy_sim.models import Scenario

__all__ = ["ALIASES", "DEFAULT_MODEL", "resolve_model", "scenario_from_flags"]

DEFAULT_MODEL = "llama-2-7b"

ALIASES = {
    "llama2-7b": "llama-2-7b", "llama2-13b": "llama-2-13b", "llama2-70b": "llama-2-70b",
    "llama3-8b": "llama-3-8b", "smollm2": "smollm2-135m", "bert-base": "bert-base-uncased",
    "bert-large": "bert-large-uncased", "minilm": "all-minilm-l6-v2",
}
"""Friendly model names -> card names."""


def resolve_model(name: str) -> str:
    """A card name (or file) for ``name``: exact card names, aliases, names without dashes
    (``llama27b`` -> ``llama-2-7b``), card files, and a Hugging Face model folder (one holding a
    ``config.json``)."""
    from prodigy_sim.models import card_names

    names = card_names()
    if name in names or name.endswith((".yaml", ".yml", ".json")):
        return name
    if (Path(name) / "config.json").is_file():
        return str(Path(name) / "config.json")
    key = name.lower()
    if key in ALIASES:
        return ALIASES[key]
    squash = {n.replace("-", "").replace("_", ""): n for n in names}
    got = squash.get(key.replace("-", "").replace("_", ""))
    if got is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(names)} (aliases: "
                          f"{', '.join(sorted(ALIASES))})")
    return got


def scenario_from_flags(args: argparse.Namespace, formats: dict,
                        extra: dict | None = None) -> Scenario:
    """The scenario of ``--model``, ``--phase``, ``--batch``, ``--context``, ``--sparsity`` and
    ``--hw`` with ``formats`` (a :class:`~prodigy_sim.models.Formats` mapping); the scenario's
    preset is ``--hw`` when it names one, else the default preset (a ``--hw FILE`` and ``--set``
    are resolved by :func:`~prodigy_sim.cli._hardware_args.hardware_from_args`, with the
    scenario's preset as the default). Defaults by the card: decode with 2048 tokens of context
    for decoders, prefill of 128 tokens for encoder-only models. Errors name the flag's field
    ("command line: 'batch': ...")."""
    from pydantic import ValidationError

    from prodigy_sim.errors import config_error_from_validation
    from prodigy_sim.hardware import DEFAULT_PRESET, preset_names
    from prodigy_sim.models import Scenario, check_scenario, load_card

    model = resolve_model(args.model or DEFAULT_MODEL)
    card = load_card(model)
    phase = args.phase or ("decode" if card.is_decoder else "prefill")
    length = args.context if args.context is not None else (2048 if card.is_decoder else 128)
    field = "context_length" if phase == "decode" else "sequence_length"
    data = {"model": model, "phase": phase, "batch": args.batch, field: length,
            "sparsity": args.sparsity,
            "hardware": args.hw if args.hw in preset_names() else DEFAULT_PRESET,
            "formats": formats, **(extra or {})}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err, source="command line") from None
    check_scenario(scenario, card, source="command line")
    return scenario
