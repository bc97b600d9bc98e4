"""Hypothesis strategies shared by the tests: the public ones of :mod:`prodigy_sim.testing`."""

from __future__ import annotations

from prodigy_sim.testing.strategies import float32_any as float32_any
from prodigy_sim.testing.strategies import float32_arrays as float32_arrays
from prodigy_sim.testing.strategies import float32_near as float32_near
from prodigy_sim.testing.strategies import format_names as format_names
from prodigy_sim.testing.strategies import narrow_format_names as narrow_format_names
