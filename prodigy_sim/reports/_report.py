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
  excluded); ``l3_hit_rate``: the share of the DMAs' bytes that DDR did not move (served by
  the shared L3, resident tensors or a multicast, or stored on chip): ``1 - ddr_bytes /
  dma_bytes``, per op and in total; ``mapping``: the op's mapping (linear layers: accumulator tile,
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
from dataclasses import dataclass, field

from prodigy_sim.hardware import ChipConfig, changes_from_preset
from prodigy_sim.models import FootprintReport, Scenario, kv_cache_bytes
from prodigy_sim.simulation import ModelSimulation, onchip_share

__all__ = ["ModelReport", "build_report", "OP_COLUMNS"]

OP_COLUMNS = ("stage", "op", "kind", "repeat", "seconds", "total_seconds", "flops",
              "achieved_flops_per_s", "dma_bytes", "achieved_bytes_per_s", "ddr_bytes",
              "achieved_ddr_bytes_per_s", "compulsory_bytes", "l3_hit_rate",
              "matrix_utilization", "vector_utilization", "vector_flops",
              "vector_flop_utilization", "roofline_seconds", "method", "mapping",
              "ddr_batching_error")


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
    routing: str = ""
    """Mixture-of-experts routing model and plan (empty for dense models)."""
    formats: dict[str, str] = field(default_factory=dict)
    preset: str = ""
    hardware_changes: tuple[str, ...] = ()
    chip_cores: int = 0
    frequency_hz: float = 0.0
    memory: str = ""
    decoder: bool = True
    dense_peak_flops_per_s: float = 0.0
    matrix_peaks: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per format the matrix unit ran: (dense, 8:4-sparse) peak FLOP/s of the whole chip."""

    @property
    def tokens_per_s(self) -> float | None:
        """Decode: generated tokens per second (all sequences)."""
        return self.batch / self.seconds if self.phase == "decode" else None

    @property
    def time_to_first_token_s(self) -> float | None:
        """Prefill of a decoder: time to process the prompt (s)."""
        return self.seconds if self.phase == "prefill" and self.decoder else None

    @property
    def forward_pass_s(self) -> float | None:
        """Encoder-only model: time of one forward pass over the batch (s)."""
        return self.seconds if self.phase == "prefill" and not self.decoder else None

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
        """:func:`~prodigy_sim.simulation.onchip_share` of all the DMAs' bytes (the same ratio
        as each op's)."""
        return onchip_share(self.ddr_bytes, self.dma_bytes)

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
                   forward_pass_s=self.forward_pass_s,
                   roofline_tokens_per_s=self.roofline_tokens_per_s,
                   achieved_flops_per_s=self.achieved_flops_per_s,
                   achieved_bytes_per_s=self.achieved_bytes_per_s, bound=self.bound,
                   vector_flop_utilization=self.vector_flop_utilization,
                   ddr_batching_error=self.ddr_batching_error, ops=list(self.ops))
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
                    "mapping": "", "ddr_batching_error": self.ddr_batching_error})
        return buf.getvalue()

    def header(self) -> list[str]:
        """Every input that decides the result, one topic a line."""
        if self.phase == "decode":
            what = (f"decode step: 1 new token for each of {self.batch} sequence(s), "
                    f"{self.context} tokens of context each (KV cache, the new one included)")
        elif self.decoder:
            what = (f"prefill: a prompt of {self.context} tokens for each of {self.batch} "
                    f"sequence(s)")
        else:
            what = (f"forward pass (encoder): {self.context} tokens for each of {self.batch} "
                    f"sequence(s)")
        fmts = self.formats or {"weights": self.weights}
        changes = (f"{len(self.hardware_changes)} field(s) overridden: "
                   + ", ".join(self.hardware_changes)) if self.hardware_changes else \
            "no field overridden"
        cores = (f"{self.cores} of {self.chip_cores} cores" if self.chip_cores
                 else _count(self.cores, "core"))
        clock = f" at {self.frequency_hz / 1e9:.2f} GHz" if self.frequency_hz else ""
        sparse_peak = (f"{self.peak_flops_per_s / 1e15:.2f} PFLOP/s with {self.sparsity} "
                       f"sparsity, {self.dense_peak_flops_per_s / 1e15:.2f} dense"
                       if self.sparsity != "none" and self.dense_peak_flops_per_s
                       else f"{self.peak_flops_per_s / 1e15:.2f} PFLOP/s")
        return [
            f"model        {self.model}, {what}",
            "formats      " + ", ".join(f"{k} {v}" for k, v in fmts.items())
            + f"; sparsity {self.sparsity}"
            + (" (blocks' linear layers)" if self.sparsity != "none" else ""),
            f"hardware     {self.preset or self.hardware} ({changes}): {cores}{clock}",
            f"memory       {self.memory or '(not given)'}",
            *([f"routing      {self.routing}"] if self.routing else []),
            f"peaks        matrix {sparse_peak} ({self.weights}, whole chip), vector "
            f"{self.peak_vector_flops_per_s / 1e12:.1f} TFLOP/s (FP32 FMA, {self.cores} "
            f"cores), DDR "
            f"{self.peak_bytes_per_s / 1e9:.1f} GB/s",
        ]

    def table(self) -> str:
        """A table for people: the inputs, per op (per layer, x repeat) with a legend, then the
        totals and the method with its checked bounds."""
        lines = [*self.header(), "",
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
        lines += ["", *LEGEND, ""]
        if self.phase == "decode":
            lines.append(f"decode step          {self.seconds * 1e3:.3f} ms  "
                         f"({self.tokens_per_s:.1f} tokens/s; roofline "
                         f"{self.roofline_tokens_per_s:.1f} tokens/s)")
        elif self.decoder:
            lines.append(f"time to first token  {self.seconds * 1e3:.3f} ms  "
                         f"({self.batch * self.context / self.seconds:.0f} prompt tokens/s)")
        else:
            lines.append(f"time per forward pass {self.seconds * 1e3:.3f} ms  "
                         f"({self.batch * self.context / self.seconds:.0f} tokens/s)")
        minimum = "weights once + KV cache" if self.decoder else "weights once"
        lines += [
            f"roofline bound       {self.ideal_roofline_s * 1e3:.3f} ms ({self.bound}-bound: "
            f"{self.flops / 1e12:.3f} TFLOP at {self.peak_flops_per_s / 1e15:.2f} PFLOP/s, "
            f"{self.ideal_bytes / 1e9:.3f} GB ({minimum}) at "
            f"{self.peak_bytes_per_s / 1e9:.1f} GB/s); sum of the ops' bounds "
            f"{self.program_roofline_s * 1e3:.3f} ms",
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
            f"method               {self.method_line()}",
        ]
        worst, weighted = self.worst_batching_op(), self.ddr_batching_error
        if worst is not None and weighted is not None:
            lines.append(f"DDR batching         largest drain difference against one DDR5 batch "
                         f"per controller {100 * worst['ddr_batching_error']:+.1f}% "
                         f"({worst['stage']}/{worst['op']}; negative: the batches drained "
                         f"faster), weighted by time {100 * weighted:+.1f}% "
                         f"(every op: ddr_batching_error in --json / --csv)")
        return "\n".join(lines)

    def worst_batching_op(self) -> dict | None:
        """The op whose DDR batching check differs most from one batch (None: not checked)."""
        checked = [o for o in self.ops if o.get("ddr_batching_error") is not None]
        return max(checked, key=lambda o: abs(o["ddr_batching_error"])) if checked else None

    @property
    def ddr_batching_error(self) -> float | None:
        """The ops' DDR batching checks weighted by their share of the simulated time (None:
        not checked)."""
        checked = [o for o in self.ops if o.get("ddr_batching_error") is not None]
        if not checked:
            return None
        total = sum(o["total_seconds"] for o in checked)
        return sum(o["ddr_batching_error"] * o["total_seconds"] for o in checked) / total

    def method_line(self) -> str:
        """How the numbers were made: each approximation with its checked bound."""
        desc = self.settings.get("description")
        if desc:
            return str(desc).replace("full chip", f"every kernel on the "
                                                  f"{_count(self.cores, 'core')} it was lowered "
                                                  f"for and every DDR channel", 1)
        return ", ".join(f"{k} {v}" for k, v in self.settings.items())


def _count(n: int, noun: str) -> str:
    """``1 core``, ``16 cores``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


LEGEND = (
    "columns: stage = layers sharing one program; x = how many times the op runs per pass "
    "(once per layer of its stage);",
    "  time us = simulated time of one run (microseconds); roof us = that run's own roofline, "
    "max(MMA FLOPs / matrix peak, min MB / DDR peak);",
    "  GFLOP = standard FLOPs of one run (1e9); TFLOP/s = GFLOP / time; DDR MB = bytes DDR "
    "moved (1 MB = 1e6 B); min MB = compulsory bytes",
    "  (every input read and output written once); GB/s = DDR MB / time; L3% = share of the "
    "DMAs' reads served on chip (shared L3, multicast);",
    "  mat% / vec% = fraction of cycles the matrix / vector units are busy; vMFLOP = standard "
    "vector FLOPs of one run (1e6: norms, RoPE,",
    "  softmax, activations, adds); vfl% = vMFLOP / (time x vector peak); mapping (linear "
    "layers) = core grid rows x cols",
    "  (multicast: X and W tiles loaded once per grid row / column), output block (accumulator "
    "tiles x rows by tiles x cols),",
    "  kt = K elements per tile, loop order (mn: column blocks fastest, nm: row blocks "
    "fastest).",
)
"""The column legend of :meth:`ModelReport.table`."""


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
    peaks: dict[str, tuple[float, float]] = {}
    for st, lst in zip(sim.stages, lm.stages, strict=True):
        for o, lop in zip(st.ops, lst.ops, strict=True):
            k = lop.kernel
            if k.mma_flops:
                dense_peak = config.peak_matrix_flops(k.weight_format)
                sparse_peak = (config.peak_matrix_flops(k.weight_format, True)
                               if config.core.matrix_unit.runs_sparse(k.weight_format)
                               else dense_peak)
                peaks[k.weight_format.name] = (dense_peak, sparse_peak)
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
                        "mma_flops": o.mma_flops, "method": o.method,
                        "ddr_batching_error": o.ddr_batching_error,
                        "ddr_late_share": o.ddr_late_share, "ddr_late_ns": o.ddr_late_ns,
                        "matrix_format": k.weight_format.name, "sparse": k.sparse})
    kv = kv_cache_bytes(card, sc.batch, sc.context_tokens, sc.formats.kv_cache.bits)
    changed = changes_from_preset(config, sc.hardware)
    preset, changes = changed.preset, tuple(c.describe() for c in changed.changes)
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
        settings=dict(sim.settings), vector_flops=vfl, peak_vector_flops_per_s=vpeak,
        routing="; ".join(lm.moe),
        formats=_formats(sc), preset=preset, hardware_changes=changes,
        chip_cores=config.cores, frequency_hz=config.frequency_hz, memory=_memory(config),
        decoder=card.is_decoder, dense_peak_flops_per_s=config.peak_matrix_flops(wf.fmt),
        matrix_peaks=peaks)


def _formats(sc: Scenario) -> dict[str, str]:
    """Every format of the scenario by what it stores (weight overrides only where given)."""
    f = sc.formats
    out = {"weights": f.weights.label()}
    for name in ("attention", "mlp", "expert"):
        over = getattr(f, name)
        if over is not None:
            out[f"{name} weights"] = over.label()
    card = sc.card()
    out.update({"LM head" if card.is_decoder else "head (pooler)": f.head.label(),
                "embedding": f.embedding.label(), "norms": f.norm.label()})
    if card.num_experts:
        out["router"] = f.router.label()
    out["activations"] = f.activations.name
    if card.is_decoder:
        out["KV cache"] = f.kv_cache.name
    return out


def _memory(config: ChipConfig) -> str:
    """The memory system in one line: channels, DDR speed and clock, parts, controller."""
    m = config.memory
    d = m.dram
    t, org, ctl = d.timing, d.org, d.controller
    return (f"{m.channels} x {m.channel_width_bits}-bit DDR5-{t.rate_mts} channels "
            f"({t.name}, I/O clock {t.rate_mts / 2:.0f} MHz, "
            f"tCK {t.tck_ps} ps, CL {t.nCL}), {org.name} parts, {m.capacity_bytes / 1e12:.2f} "
            f"TB; controller {ctl.read_queue_entries}-entry queues, {ctl.scheduler} scheduling, "
            f"{ctl.row_policy}-page, {ctl.refresh} refresh; address map {d.mapping}, "
            f"interleave {m.interleave_bytes} B")
