"""Names of the timing model's methods, importable without the model (for the CLI's choices)."""

from __future__ import annotations

__all__ = ["DDR_METHODS"]

DDR_METHODS = ("batched", "persistent")
"""How DMA requests reach the DDR5 model. ``batched``: the requests issued until some core
waits for one are simulated together, each batch on fresh subchannels behind a seam rule
(:func:`~prodigy_sim.timing._ddr.run_batch`). ``persistent``: one DDR5 run per subchannel for
the whole simulation, no seam; a waiting core gets speculated completions
(:class:`~prodigy_sim.timing._ddr.StreamDdr`)."""
