"""The report of a simulated model: per-op and total figures beside their roofline bounds.

Definitions (all per pass: one decode step, or one prefill of the prompt):

- ``seconds``: simulated time, the sum of the kernels' times (each kernel ends at a barrier),
  identical layers counted ``repeat`` times.
- decode ``tokens_per_s = batch / seconds``; prefill ``time_to_first_token_s = seconds`` (the
  whole prompt, all sequences of the batch).
- ``flops``: the standard formulas of :mod:`prodigy_sim.lowering` (``2 T N K`` per linear, ``4 T C
  heads d`` per attention); achieved FLOPS = flops / seconds; peak FLOPS = the matrix unit's
  peak for the weight format (8:4 sparse if the scenario is).
- ``vector_flops``: the standard vector FLOPs of :mod:`prodigy_sim.lowering` (norms, RoPE,
  softmax, activations, bias and residual adds; one per elementwise operation, ``exp`` / ``erf``
  / ``rsqrt`` 1 each); ``vector_flop_utilization`` = vector FLOPs / (seconds x the vector peak,
  ``cores x FP32 lanes x units x 2 (FMA) x f``). ``vector_utilization`` is different: the
  fraction of cycles the vector units are busy (simulated; conversions, quantization, the
  online-softmax rescaling and masks included).
- ``dma_bytes``: the bytes the cores' DMAs move (from DDR, the shared L3 or a multicast);
  ``achieved_bytes_per_s`` = dma bytes / seconds.
- ``ddr_bytes``: the bytes DDR itself moves; ``achieved_ddr_bytes_per_s`` = DDR bytes / seconds
  (compare with the peak DDR bandwidth). ``compulsory_bytes``: every input of an op read once
  and its output written once (its tensors' sizes; activations that stay on chip between ops
  excluded); ``l3_hit_rate``: the fraction of the DMAs' reads served on chip (the shared L3 or a
  multicast) instead of DDR; ``mapping``: the op's mapping (linear layers: accumulator tile,
  K step, core grid, loop order, multicast), as the mapper chose it.
- ``roofline_s`` (per op): ``max(executed MMA FLOPs / peak, compulsory bytes / peak DDR
  bandwidth)``.
- ``ideal_roofline_s`` (total): ``max(flops / peak FLOPS, minimum bytes / peak bandwidth)`` with
  minimum bytes = every weight once + the KV cache read (decode) or written (prefill): the best
  any schedule could do. ``bound`` says which term is larger.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from prodigy_sim.hardware import ChipConfig
from prodigy_sim.models import FootprintReport, kv_cache_bytes
from prodigy_sim.simulation import ModelSimulation

__all__ = ["ModelReport", "build_report", "OP_COLUMNS"]

OP_COLUMNS = ("stage", "op", "kind", "repeat", "seconds", "total_seconds", "flops",
              "achieved_flops_per_s", "dma_bytes", "achieved_bytes_per_s", "ddr_bytes",
              "achieved_ddr_bytes_per_s", "compulsory_bytes", "l3_hit_rate",
              "matrix_utilization", "vector_utilization", "vector_flops",
              "vector_flop_utilization", "roofline_seconds", "method", "mapping")


@dataclass(frozen=True)
class ModelReport:
    """Figures of one simulated scenario (see the module docstring for definitions)."""

    model: str
    phase: str
    batch: int
    tokens: int
    context: int
    weights: str
    sparsity: str
    hardware: str
    cores: int
    seconds: float
    flops: int
    dma_bytes: int
    ddr_bytes: int
    compulsory_bytes: int
    peak_flops_per_s: float
    peak_bytes_per_s: float
    matrix_utilization: float
    vector_utilization: float
    ideal_bytes: int
    ideal_roofline_s: float
    program_roofline_s: float
    footprint_bytes: int
    weight_bytes: int
    kv_cache_bytes: int
    fits: bool
    ops: tuple[dict, ...]
    settings: dict
    vector_flops: int = 0
    peak_vector_flops_per_s: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        """Decode: generated tokens per second (all sequences)."""
        return self.batch / self.seconds if self.phase == "decode" else None

    @property
    def time_to_first_token_s(self) -> float | None:
        """Prefill: time to process the prompt (s)."""
        return self.seconds if self.phase == "prefill" else None

    @property
    def roofline_tokens_per_s(self) -> float | None:
        return self.batch / self.ideal_roofline_s if self.phase == "decode" else None

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops / self.seconds

    @property
    def achieved_bytes_per_s(self) -> float:
        return self.dma_bytes / self.seconds

    @property
    def achieved_ddr_bytes_per_s(self) -> float:
        return self.ddr_bytes / self.seconds

    @property
    def l3_hit_rate(self) -> float:
        """Fraction of the DMAs' bytes served on chip (the L3 or a multicast), not by DDR."""
        return max(0.0, 1 - self.ddr_bytes / self.dma_bytes) if self.dma_bytes else 0.0

    @property
    def vector_flop_utilization(self) -> float:
        """Standard vector FLOPs / (seconds x the vector peak)."""
        peak = self.peak_vector_flops_per_s * self.seconds
        return self.vector_flops / peak if peak else 0.0

    @property
    def bound(self) -> str:
        """``memory`` or ``compute``: the larger term of the ideal roofline."""
        t_c = self.flops / self.peak_flops_per_s
        t_m = self.ideal_bytes / self.peak_bytes_per_s
        return "memory" if t_m >= t_c else "compute"

    def to_dict(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if k != "ops"}
        out.update(tokens_per_s=self.tokens_per_s,
                   time_to_first_token_s=self.time_to_first_token_s,
                   roofline_tokens_per_s=self.roofline_tokens_per_s,
                   achieved_flops_per_s=self.achieved_flops_per_s,
                   achieved_bytes_per_s=self.achieved_bytes_per_s, bound=self.bound,
                   vector_flop_utilization=self.vector_flop_utilization,
                   ops=list(self.ops))
        return out

    def to_csv(self) -> str:
        """One row per op (per layer of its stage) plus a ``total`` row."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=OP_COLUMNS, lineterminator="\n")
        w.writeheader()
        for o in self.ops:
            w.writerow({k: o[k] for k in OP_COLUMNS})
        w.writerow({"stage": "total", "op": "", "kind": "", "repeat": 1,
                    "seconds": self.seconds, "total_seconds": self.seconds, "flops": self.flops,
                    "achieved_flops_per_s": self.achieved_flops_per_s,
                    "dma_bytes": self.dma_bytes, "achieved_bytes_per_s": self.achieved_bytes_per_s,
                    "matrix_utilization": self.matrix_utilization,
                    "vector_utilization": self.vector_utilization,
                    "vector_flops": self.vector_flops,
                    "vector_flop_utilization": self.vector_flop_utilization,
                    "ddr_bytes": self.ddr_bytes,
                    "achieved_ddr_bytes_per_s": self.ddr_bytes / self.seconds,
                    "compulsory_bytes": self.compulsory_bytes, "l3_hit_rate": "",
                    "roofline_seconds": self.program_roofline_s, "method": "",
                    "mapping": ""})
        return buf.getvalue()

    def table(self) -> str:
        """A table for people: per op (us per layer, x repeat), then the totals."""
        head = (f"{self.model} {self.phase}, batch {self.batch}, "
                f"{'context' if self.phase == 'decode' else 'sequence'} {self.context}, "
                f"weights {self.weights}, sparsity {self.sparsity}, {self.hardware} "
                f"({self.cores} cores)")
        lines = [head, "",
                 f"{'stage':<14} {'op':<11} {'x':>3} {'time us':>9} {'roof us':>9} "
                 f"{'GFLOP':>9} {'TFLOP/s':>8} {'DDR MB':>9} {'min MB':>9} {'GB/s':>7} "
                 f"{'L3%':>5} {'mat%':>5} {'vec%':>5} {'vMFLOP':>9} {'vfl%':>5}  mapping"]
        for o in self.ops:
            s = o["seconds"]
            lines.append(
                f"{o['stage'][:14]:<14} {o['op'][:11]:<11} {o['repeat']:>3} {s * 1e6:>9.1f} "
                f"{o['roofline_seconds'] * 1e6:>9.1f} {o['flops'] / 1e9:>9.3f} "
                f"{o['achieved_flops_per_s'] / 1e12:>8.2f} {o['ddr_bytes'] / 1e6:>9.2f} "
                f"{o['compulsory_bytes'] / 1e6:>9.2f} "
                f"{o['achieved_ddr_bytes_per_s'] / 1e9:>7.1f} {100 * o['l3_hit_rate']:>5.1f} "
                f"{100 * o['matrix_utilization']:>5.1f} "
                f"{100 * o['vector_utilization']:>5.1f} {o['vector_flops'] / 1e6:>9.3f} "
                f"{100 * o['vector_flop_utilization']:>5.2f}  {o['mapping']}")
        lines.append("")
        if self.phase == "decode":
            lines.append(f"decode step          {self.seconds * 1e3:.3f} ms  "
                         f"({self.tokens_per_s:.1f} tokens/s; roofline "
                         f"{self.roofline_tokens_per_s:.1f} tokens/s)")
        else:
            lines.append(f"time to first token  {self.seconds * 1e3:.3f} ms")
        lines += [
            f"roofline bound       {self.ideal_roofline_s * 1e3:.3f} ms ({self.bound}-bound: "
            f"{self.flops / 1e12:.3f} TFLOP at {self.peak_flops_per_s / 1e15:.2f} PFLOP/s, "
            f"{self.ideal_bytes / 1e9:.3f} GB at {self.peak_bytes_per_s / 1e9:.1f} GB/s); "
            f"programs' bound {self.program_roofline_s * 1e3:.3f} ms",
            f"achieved             {self.achieved_flops_per_s / 1e12:.2f} TFLOP/s "
            f"({100 * self.achieved_flops_per_s / self.peak_flops_per_s:.2f}% of peak), "
            f"DDR {self.achieved_ddr_bytes_per_s / 1e9:.1f} GB/s "
            f"({100 * self.achieved_ddr_bytes_per_s / self.peak_bytes_per_s:.1f}% of peak)",
            f"traffic              DDR {self.ddr_bytes / 1e9:.3f} GB (compulsory "
            f"{self.compulsory_bytes / 1e9:.3f} GB), DMAs {self.dma_bytes / 1e9:.3f} GB "
            f"({100 * self.l3_hit_rate:.1f}% served on chip)",
            f"utilization          matrix {100 * self.matrix_utilization:.1f}%, vector units "
            f"busy {100 * self.vector_utilization:.1f}%; vector FLOPs "
            f"{self.vector_flops / 1e9:.3f} GFLOP = {100 * self.vector_flop_utilization:.3f}% "
            f"of the vector peak ({self.peak_vector_flops_per_s / 1e12:.1f} TFLOP/s)",
            f"footprint            {self.footprint_bytes / 1e9:.3f} GB (weights "
            f"{self.weight_bytes / 1e9:.3f}, KV cache {self.kv_cache_bytes / 1e9:.3f}): "
            f"{'fits' if self.fits else 'DOES NOT FIT'}",
            f"method               {self.settings.get('description', self.settings)}",
        ]
        return "\n".join(lines)


def build_report(sim: ModelSimulation, config: ChipConfig, footprint: FootprintReport
                 ) -> ModelReport:
    """Combine a simulation with its footprint report into a :class:`ModelReport`."""
    lm = sim.lowered
    sc = lm.scenario
    card = sc.card()
    wf = sc.formats.for_class("mlp")
    sparse = sc.sparsity_nm is not None
    peak = config.peak_matrix_flops(wf.fmt, sparse)
    vu = config.core.vector_unit
    vpeak = lm.cores * vu.fp32_lanes * vu.count * 2 * config.frequency_hz
    ops, seconds, flops, nbytes, mat, vec, prog, vfl = [], 0.0, 0, 0, 0.0, 0.0, 0.0, 0
    ddr, compulsory = 0, 0
    for st in sim.stages:
        for o in st.ops:
            total = o.seconds * st.repeat
            seconds += total
            flops += o.flops * st.repeat
            nbytes += o.dma_bytes * st.repeat
            ddr += o.ddr_bytes * st.repeat
            compulsory += o.compulsory_bytes * st.repeat
            mat += o.matrix_utilization * total
            vec += o.vector_utilization * total
            prog += o.roofline_seconds * st.repeat
            vfl += o.vector_flops * st.repeat
            ops.append({"stage": st.name, "op": o.name, "kind": o.kind, "repeat": st.repeat,
                        "seconds": o.seconds, "total_seconds": total, "flops": o.flops,
                        "achieved_flops_per_s": o.flops / o.seconds if o.seconds else 0.0,
                        "dma_bytes": o.dma_bytes,
                        "achieved_bytes_per_s": o.dma_bytes / o.seconds if o.seconds else 0.0,
                        "ddr_bytes": o.ddr_bytes,
                        "achieved_ddr_bytes_per_s": o.ddr_bytes / o.seconds if o.seconds else 0.0,
                        "compulsory_bytes": o.compulsory_bytes, "l3_hit_rate": o.l3_hit_rate,
                        "mapping": o.mapping,
                        "matrix_utilization": o.matrix_utilization,
                        "vector_utilization": o.vector_utilization,
                        "vector_flops": o.vector_flops,
                        "vector_flop_utilization": (o.vector_flops / (o.seconds * vpeak)
                                                    if o.seconds else 0.0),
                        "roofline_seconds": o.roofline_seconds, "weight_bytes": o.weight_bytes,
                        "mma_flops": o.mma_flops, "method": o.method})
    kv = kv_cache_bytes(card, sc.batch, sc.context_tokens, sc.formats.kv_cache.bits)
    ideal_bytes = lm.weight_bytes + kv
    ideal = max(flops / peak, ideal_bytes / config.peak_ddr_bandwidth_bytes_per_s)
    return ModelReport(
        model=card.name, phase=sc.phase, batch=sc.batch, tokens=lm.tokens,
        context=sc.context_tokens, weights=wf.label(), sparsity=sc.sparsity,
        hardware=config.name, cores=lm.cores, seconds=seconds, flops=flops, dma_bytes=nbytes,
        ddr_bytes=ddr, compulsory_bytes=compulsory,
        peak_flops_per_s=peak, peak_bytes_per_s=config.peak_ddr_bandwidth_bytes_per_s,
        matrix_utilization=mat / seconds, vector_utilization=vec / seconds,
        ideal_bytes=ideal_bytes, ideal_roofline_s=ideal, program_roofline_s=prog,
        footprint_bytes=footprint.total_bytes, weight_bytes=footprint.weight_bytes,
        kv_cache_bytes=footprint.kv_cache_bytes, fits=footprint.fits, ops=tuple(ops),
        settings=dict(sim.settings), vector_flops=vfl, peak_vector_flops_per_s=vpeak)
