"""The serving engine: continuous batching over a paged KV cache, one socket.

Iteration-level scheduling (Orca, Yu et al. OSDI 2022; vLLM, Kwon et al. SOSP 2023): after every
model iteration ("step") the engine admits waiting requests and retires finished ones, so a batch
changes from one step to the next. Time is integer nanoseconds; each step lasts what the injected
step-time model says (rounded to the nanosecond). Deterministic: the same trace and models give
the same result.

Per step, without chunked prefill (vLLM's default scheduler before chunked prefill):

1. Waiting requests are admitted first come, first served while the running sequences stay within
   ``max_batch``, the step's prompt tokens within ``max_prefill_tokens`` (one longer prompt is
   admitted alone) and the KV cache has blocks for their prompts. If any is admitted the step is a
   prefill of the admitted prompts (the decodes wait: prefills first); each prefill produces the
   request's first token.
2. Otherwise every running sequence decodes one token. A sequence whose next token needs a new
   KV block and finds none *preempts* the most recently admitted running sequence (possibly
   itself) until a block frees: the victim's blocks are freed and it returns to the head of the
   queue, to be *recomputed* (a prefill of its prompt and the tokens generated so far, which
   yields its next token). No admission is ever refused for lack of blocks while the cache could
   hold it after the running sequences finish; a request that alone needs more blocks than the
   whole cache is refused at arrival.

With chunked prefill (``chunk_tokens`` = token budget per step, as Sarathi-Serve and vLLM's
chunked prefill): every decoding sequence decodes one token (preempting as above), then prompts in
progress and then waiting requests fill the remaining budget with chunks; a sequence whose prompt
completes produces its first token at the end of that step.

A sequence with ``n`` tokens of keys and values holds ``ceil(n / block_tokens)`` blocks: the
prompt's blocks at admission (or per chunk), one more whenever a decode crosses a block boundary,
all freed when it finishes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prodigy_sim.errors import ConfigError
from prodigy_sim.serving._kvcache import BlockPool
from prodigy_sim.serving._result import ServingResult
from prodigy_sim.serving._steptime import StepShape, StepTimeModel
from prodigy_sim.serving._trace import MAX_REQUESTS, Request

__all__ = ["EngineConfig", "simulate_serving"]


class EngineConfig(BaseModel):
    """How the engine schedules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch: int = Field(64, ge=1, description="most sequences running at once (vLLM "
                                                 "max_num_seqs) (count)")
    max_prefill_tokens: int = Field(2048, ge=1, description="prompt tokens in one prefill step "
                                                            "without chunked prefill (tokens)")
    chunk_tokens: int | None = Field(None, ge=1, description="chunked prefill: tokens per step "
                                                             "(decodes + prompt chunks); None = "
                                                             "off (tokens)")
    block_tokens: int = Field(16, ge=1, description="tokens per KV-cache block (tokens)")
    kv_blocks: int | None = Field(None, ge=1, description="KV-cache blocks (None = unbounded) "
                                                          "(count)")
    preemption: Literal["recompute"] = Field(
        "recompute", description="what happens to a preempted sequence: recomputed later")

    @model_validator(mode="after")
    def _budget(self) -> EngineConfig:
        if self.chunk_tokens is not None and self.chunk_tokens <= self.max_batch:
            raise ValueError(f"'chunk_tokens' ({self.chunk_tokens}) must exceed 'max_batch' "
                             f"({self.max_batch}): every running sequence decodes in each step")
        return self


@dataclass(eq=False)
class _Seq:
    """A request in the engine (compared by identity)."""

    req: Request
    arrival_ns: int
    order: int = 0
    target: int = 0
    done: int = 0
    kv: int = 0
    blocks: int = 0
    generated: int = 0
    first_ns: int = -1
    preemptions: int = 0

    @property
    def prefilling(self) -> bool:
        return self.done < self.target


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def simulate_serving(trace: Sequence[Request], step_model: StepTimeModel,
                     config: EngineConfig | None = None, *,
                     progress: Callable[[int], None] | None = None) -> ServingResult:
    """Run ``trace`` through the engine; ``progress(1)`` after each finished request."""
    config = config or EngineConfig()
    if not 1 <= len(trace) <= MAX_REQUESTS:
        raise ConfigError(f"a trace needs 1..{MAX_REQUESTS} requests (got {len(trace)})")
    limit = getattr(step_model, "max_context", None)
    for r in trace:
        if limit is not None and r.prompt_tokens + r.output_tokens > limit:
            raise ConfigError(f"request {r.id}: prompt {r.prompt_tokens} + output "
                              f"{r.output_tokens} tokens exceed the {limit} positions the step "
                              "model can time")
    reqs = sorted(trace, key=lambda r: (r.arrival_s, r.id))
    big = 1 << 62
    pool = BlockPool(config.kv_blocks or big, config.block_tokens)
    seqs = [_Seq(r, _ns(r.arrival_s)) for r in reqs]
    waiting: deque[_Seq] = deque()
    running: list[_Seq] = []
    finished: dict[int, int] = {}
    refused: list[int] = []
    order = 0
    now, nxt = 0, 0
    rows: list[tuple[int, int, int, int, int, int, int]] = []
    n = len(seqs)

    def retire(s: _Seq) -> None:
        pool.give(s.blocks)
        s.blocks = 0
        running.remove(s)
        finished[s.req.id] = now
        if progress is not None:
            progress(1)

    def preempt(victim: _Seq) -> None:
        pool.give(victim.blocks)
        victim.blocks = victim.kv = victim.done = 0
        victim.target = victim.req.prompt_tokens + victim.generated
        victim.preemptions += 1
        running.remove(victim)
        waiting.appendleft(victim)

    def slot(s: _Seq) -> bool:
        """One more KV token for ``s``; preempts (newest first) until a block frees. False if
        ``s`` itself was preempted."""
        if pool.blocks_for(s.kv + 1) <= s.blocks:
            return True
        while not pool.take(1):
            victim = max(running, key=lambda x: x.order)
            preempt(victim)
            if victim is s:
                return False
        s.blocks += 1
        return True

    def admit(s: _Seq, tokens: int) -> bool:
        nonlocal order
        blocks = pool.blocks_for(tokens)
        if not pool.take(blocks):
            return False
        waiting.popleft()
        s.blocks = blocks
        s.order = order
        order += 1
        if s.target == 0:
            s.target = s.req.prompt_tokens
        running.append(s)
        return True

    while len(finished) + len(refused) < n:
        while nxt < n and seqs[nxt].arrival_ns <= now:
            s = seqs[nxt]
            nxt += 1
            whole = pool.blocks_for(s.req.prompt_tokens + s.req.output_tokens)
            if whole > pool.total:
                refused.append(s.req.id)
            else:
                waiting.append(s)
        if not running and not waiting:
            if nxt < n:
                now = max(now, seqs[nxt].arrival_ns)
            continue
        chunks: list[tuple[_Seq, int]] = []
        decodes: list[_Seq] = []
        if config.chunk_tokens is None:
            tokens = 0
            while waiting and len(running) < config.max_batch:
                s = waiting[0]
                need = s.target or s.req.prompt_tokens
                if chunks and tokens + need > config.max_prefill_tokens:
                    break
                if not admit(s, need):
                    break
                chunks.append((s, need))
                tokens += need
            if not chunks:
                for s in sorted(running, key=lambda x: x.order):
                    if s in running and slot(s):
                        decodes.append(s)
                decodes = [s for s in decodes if s in running]
        else:
            budget = config.chunk_tokens
            for s in sorted(running, key=lambda x: x.order):
                if s in running and not s.prefilling and slot(s):
                    decodes.append(s)
            decodes = [s for s in decodes if s in running]
            budget -= len(decodes)
            for s in sorted(running, key=lambda x: x.order):
                if budget <= 0:
                    break
                if s.prefilling:
                    c = min(s.target - s.done, budget)
                    extra = pool.blocks_for(s.done + c) - s.blocks
                    if pool.take(extra):
                        s.blocks += extra
                        chunks.append((s, c))
                        budget -= c
            while waiting and budget > 0 and len(running) < config.max_batch:
                s = waiting[0]
                if s.target == 0:
                    s.target = s.req.prompt_tokens
                c = min(s.target, budget)
                if not admit(s, c):
                    break
                chunks.append((s, c))
                budget -= c
        if not chunks and not decodes:
            raise ConfigError("the engine cannot make progress (a KV cache too small for one "
                              "sequence)")
        shape = StepShape(decodes=len(decodes),
                          decode_context_tokens=sum(s.kv + 1 for s in decodes),
                          prefill_chunks=tuple((c, s.done) for s, c in chunks))
        dt = max(1, _ns(step_model.step_seconds(shape)))
        rows.append((now, dt, len(decodes), shape.prefill_tokens, len(running), pool.used,
                     len(waiting)))
        now += dt
        for s in decodes:
            s.kv += 1
            s.generated += 1
            if s.generated >= s.req.output_tokens:
                retire(s)
        for s, c in chunks:
            s.done += c
            s.kv = s.done
            if not s.prefilling:
                s.generated += 1
                if s.first_ns < 0:
                    s.first_ns = now
                if s.generated >= s.req.output_tokens:
                    retire(s)
    if not finished:
        raise ConfigError(f"no request can be served: each needs more than the {pool.total} "
                          "KV-cache blocks there are (give more 'kv_blocks' or capacity)")
    timeline = np.array(rows, dtype=np.int64).reshape(-1, 7)
    return ServingResult.build(seqs, finished, refused, timeline, pool.total
                               if config.kv_blocks else None, config)
