"""What a serving run measured: per-request latencies, their percentiles, throughput, and the
batch and KV-cache occupancy of every step.

Definitions (seconds; a request arrives at ``a``, its first token is ready at ``f``, its last at
``e``; ``n`` output tokens):

- time to first token ``TTFT = f - a`` (queueing and prefill included);
- time per output token ``TPOT = (e - f) / (n - 1)`` (requests with ``n >= 2``);
- end-to-end latency ``e - a``;
- percentiles p50 / p90 / p99 by ``numpy.percentile`` (linear interpolation between ranks);
- throughput over the run's span (first arrival to last finish): output tokens/s, requests/s.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from prodigy_sim.serving._engine import EngineConfig

__all__ = ["ServingResult", "PERCENTILES", "TIMELINE_COLUMNS"]

PERCENTILES = (50, 90, 99)
TIMELINE_COLUMNS = ("start_ns", "duration_ns", "decodes", "prefill_tokens", "running",
                    "kv_blocks_used", "waiting")
"""Columns of :attr:`ServingResult.timeline`, one row per engine step."""


@dataclass(frozen=True)
class ServingResult:
    """Per-request records (arrays in trace order) and the step timeline of one run."""

    ids: np.ndarray
    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    preemptions: np.ndarray
    refused: tuple[int, ...]
    timeline: np.ndarray
    kv_blocks: int | None
    config: dict

    @classmethod
    def build(cls, seqs, finished: dict[int, int], refused: list[int], timeline: np.ndarray,
              kv_blocks: int | None, config: EngineConfig) -> ServingResult:
        done = [s for s in seqs if s.req.id in finished]
        return cls(
            ids=np.array([s.req.id for s in done], dtype=np.int64),
            arrival_s=np.array([s.arrival_ns for s in done], dtype=np.int64) / 1e9,
            first_token_s=np.array([s.first_ns for s in done], dtype=np.int64) / 1e9,
            finish_s=np.array([finished[s.req.id] for s in done], dtype=np.int64) / 1e9,
            prompt_tokens=np.array([s.req.prompt_tokens for s in done], dtype=np.int64),
            output_tokens=np.array([s.req.output_tokens for s in done], dtype=np.int64),
            preemptions=np.array([s.preemptions for s in done], dtype=np.int64),
            refused=tuple(refused), timeline=timeline, kv_blocks=kv_blocks,
            config=config.model_dump())

    # --- per request ---------------------------------------------------------------------------

    @property
    def ttft_s(self) -> np.ndarray:
        """Time to first token of each request (s)."""
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> np.ndarray:
        """Time per output token after the first, of each request with >= 2 output tokens (s)."""
        many = self.output_tokens >= 2
        return (self.finish_s[many] - self.first_token_s[many]) / (self.output_tokens[many] - 1)

    @property
    def e2e_s(self) -> np.ndarray:
        """End-to-end latency of each request (s)."""
        return self.finish_s - self.arrival_s

    # --- totals --------------------------------------------------------------------------------

    @property
    def span_s(self) -> float:
        """First arrival to last finish (s)."""
        return float(self.finish_s.max() - self.arrival_s.min())

    @property
    def output_tokens_per_s(self) -> float:
        return float(self.output_tokens.sum()) / self.span_s

    @property
    def requests_per_s(self) -> float:
        return len(self.ids) / self.span_s

    @property
    def steps(self) -> int:
        return len(self.timeline)

    def percentiles(self) -> dict[str, dict[str, float]]:
        """``{"ttft_s" | "tpot_s" | "e2e_s": {"p50", "p90", "p99", "mean"}}``."""
        out = {}
        for name in ("ttft_s", "tpot_s", "e2e_s"):
            x = getattr(self, name)
            row = {f"p{q}": float(np.percentile(x, q)) if len(x) else float("nan")
                   for q in PERCENTILES}
            row["mean"] = float(x.mean()) if len(x) else float("nan")
            out[name] = row
        return out

    def kv_occupancy(self) -> np.ndarray:
        """Fraction of the KV blocks in use after each step's allocations (NaN if unbounded)."""
        if not self.kv_blocks:
            return np.full(len(self.timeline), np.nan)
        return self.timeline[:, 5] / self.kv_blocks

    def summary(self) -> dict:
        """Headline figures (seconds, tokens/s, requests/s, counts)."""
        t = self.timeline
        busy = float(t[:, 1].sum()) / 1e9 if len(t) else 0.0
        occ = self.kv_occupancy()
        return {
            "requests": len(self.ids), "refused": len(self.refused),
            "output_tokens": int(self.output_tokens.sum()),
            "span_s": self.span_s, "busy_s": busy, "steps": self.steps,
            "output_tokens_per_s": self.output_tokens_per_s,
            "requests_per_s": self.requests_per_s,
            "mean_decode_batch": float(t[t[:, 2] > 0, 2].mean()) if (t[:, 2] > 0).any() else 0.0,
            "max_running": int(t[:, 4].max()) if len(t) else 0,
            "preemptions": int(self.preemptions.sum()),
            "kv_blocks": self.kv_blocks,
            "peak_kv_occupancy": None if np.isnan(occ).all() else float(np.nanmax(occ)),
            **{f"{k}_{q}": v for k, row in self.percentiles().items() for q, v in row.items()},
        }

    def to_dict(self) -> dict:
        """JSON-ready: the summary, the engine settings and the per-request rows."""
        return {"summary": self.summary(), "config": self.config,
                "refused": list(self.refused), "requests": self.rows()}

    def rows(self) -> list[dict]:
        """One dict per finished request (seconds)."""
        ttft, e2e = self.ttft_s, self.e2e_s
        out = []
        for i in range(len(self.ids)):
            n = int(self.output_tokens[i])
            tpot = (self.finish_s[i] - self.first_token_s[i]) / (n - 1) if n >= 2 else None
            out.append({"id": int(self.ids[i]), "arrival_s": float(self.arrival_s[i]),
                        "prompt_tokens": int(self.prompt_tokens[i]), "output_tokens": n,
                        "ttft_s": float(ttft[i]), "tpot_s": tpot, "e2e_s": float(e2e[i]),
                        "preemptions": int(self.preemptions[i])})
        return out

    def to_csv(self) -> str:
        """The per-request rows as CSV."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=("id", "arrival_s", "prompt_tokens", "output_tokens",
                                            "ttft_s", "tpot_s", "e2e_s", "preemptions"),
                           lineterminator="\n")
        w.writeheader()
        for r in self.rows():
            w.writerow(r)
        return buf.getvalue()

    def table(self) -> str:
        """A tidy table: one row per latency metric (ms), then throughput and occupancy."""
        s = self.summary()
        lines = [f"{'metric':<24} {'p50':>10} {'p90':>10} {'p99':>10} {'mean':>10}"]
        for name, label in (("ttft_s", "time to first token ms"),
                            ("tpot_s", "time per output token ms"),
                            ("e2e_s", "end-to-end latency ms")):
            row = self.percentiles()[name]
            lines.append(f"{label:<24} " + " ".join(f"{row[k] * 1e3:>10.2f}"
                                                  for k in ("p50", "p90", "p99", "mean")))
        occ = s["peak_kv_occupancy"]
        lines += [
            f"requests                 {s['requests']} finished, {s['refused']} refused, "
            f"{s['preemptions']} preemptions",
            f"throughput               {s['output_tokens_per_s']:.1f} output tokens/s, "
            f"{s['requests_per_s']:.3f} requests/s over {s['span_s']:.2f} s",
            f"steps                    {s['steps']} (busy {s['busy_s']:.2f} s), mean decode "
            f"batch {s['mean_decode_batch']:.1f}, at most {s['max_running']} running",
            "KV cache                 " + ("unbounded" if occ is None else
                                           f"{self.kv_blocks} blocks of "
                                           f"{self.config['block_tokens']} tokens, peak "
                                           f"{occ:.1%} used"),
        ]
        return "\n".join(lines)
