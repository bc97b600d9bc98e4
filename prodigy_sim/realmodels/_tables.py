"""The white paper's four accuracy tables in their shape on the two real models, and the
command that writes them (with the format grid) into docs/accuracy.md.

MiniLM stands in for BERT (metric: the mean and minimum cosine of each evaluation sentence's
embedding to its float32 embedding; the paper's is SQuAD exact match / F1), SmolLM2-135M for
LLaMA-2-7B (metric: perplexity on the public-domain text; the paper's is wikitext perplexity).
Every row has its linear-weight footprint and simulated throughput; see docs/accuracy.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.realmodels._accuracy import AccuracyRow, accuracy_table, format_table
from prodigy_sim.realmodels._quantize import QuantScheme

__all__ = ["PaperTable", "PAPER_TABLES", "table_rows", "format_paper_table", "comparison",
           "render_docs", "write_docs", "BEGIN", "END"]

BEGIN = "<!-- accuracy tables: begin (written by `prodigy-sim accuracy --tables --write`) -->"
END = "<!-- accuracy tables: end -->"


@dataclass(frozen=True)
class PaperTable:
    """One white-paper table: ``rows`` are ``(our scheme, the paper's row name, the paper's
    value)``; the paper's value is None for rows we add (other variants)."""

    number: int
    title: str
    model: str
    metric: str
    rows: tuple[tuple[QuantScheme, str, str | None], ...]


_S = QuantScheme
PAPER_TABLES: tuple[PaperTable, ...] = (
    PaperTable(1, "PTQ of BERT (SQuAD) - here all-MiniLM-L6-v2", "minilm",
               "exact match / F1", (
                   (_S(None), "FP32", "80.91 / 88.23"),
                   (_S("tai4"), "TAI vanilla", "74.97 / 84.23"),
                   (_S("tai4", method="gptq-act"), "TAI GPTQ", "78.77 / 86.91"),
                   (_S("tai4", method="hadamard"), "TAI Hadamard", "77.98 / 86.06"),
                   (_S("tai4", method="gptq"), "(GPTQ, scales in the sweep)", None),
                   (_S("tai4", method="hadamard-gptq"), "(Hadamard + GPTQ)", None),
                   (_S("tai4", method="gptq-act", damping=0.1), "(GPTQ, 10 % damping)", None),
                   (_S("tai4", method="hadamard-gptq", damping=0.1),
                    "(Hadamard + GPTQ, 10 % damping)", None),
               )),
    PaperTable(2, "PTQ of LLaMA-2-7B (wikitext) - here SmolLM2-135M", "smollm2",
               "perplexity", (
                   (_S(None), "FP16", "5.48"),
                   (_S("tai4", method="gptq-act"), "TAI GPTQ", "6.35"),
                   (_S("tai4", method="spqr"), "TAI SpQR", "5.86"),
                   (_S("tai4"), "(TAI round to nearest)", None),
                   (_S("tai4", method="gptq-act", damping=0.1), "(TAI GPTQ, 10 % damping)",
                    None),
               )),
    PaperTable(3, "PTQ + 8:4 pruning of BERT - here all-MiniLM-L6-v2", "minilm",
               "exact match / F1", (
                   (_S(None), "FP16", "80.9 / 88.23"),
                   (_S("tai4", "8:4", method="sparsegpt"), "TAI", "78.92 / 86.19"),
                   (_S("tai2", "8:4", method="sparsegpt"), "TAI2", "77.31 / 85.74"),
                   (_S("tai4", "8:4", "magnitude"), "(TAI, magnitude + RTN)", None),
                   (_S("tai2", "8:4", "magnitude"), "(TAI2, magnitude + RTN)", None),
                   (_S("tai4", "8:4", method="sparsegpt", damping=0.1),
                    "(TAI, SparseGPT, 10 % damping)", None),
                   (_S("tai4", "8:4", method="sparsegpt-act"),
                    "(TAI, SparseGPT with block act-order)", None),
                   (_S("tai2", "8:4", method="sparsegpt-act"),
                    "(TAI2, SparseGPT with block act-order)", None),
               )),
    PaperTable(4, "PTQ + 8:4 pruning of LLaMA-2, FP8 activations - here SmolLM2-135M",
               "smollm2", "perplexity", (
                   (_S("bfloat16"), "baseline (FP8 activations)", "5.68"),
                   (_S("tai2", "8:4", method="sparsegpt"), "SparseGPT TAI2", "8.63"),
                   (_S("tai4", "8:4", method="sparsegpt"), "SparseGPT TAI", "6.59"),
                   (_S("tai2", "8:4", "wanda", method="gptq-act"), "Wanda TAI2", "6.61"),
                   (_S("tai4", "8:4", "wanda", method="gptq-act"), "Wanda TAI", "8.57"),
                   (_S("tai2", "8:4", "wanda"), "(Wanda + RTN, TAI2)", None),
                   (_S("tai4", "8:4", "wanda"), "(Wanda + RTN, TAI)", None),
                   (_S("tai2", "8:4", method="sparsegpt-act"),
                    "(SparseGPT with block act-order, TAI2)", None),
                   (_S("tai4", "8:4", method="sparsegpt-act"),
                    "(SparseGPT with block act-order, TAI)", None),
               )),
)
"""The four tables (issue 12). ``TAI`` is ``tai4``, ``TAI2`` is ``tai2`` (docs/formats.md), MX
E8M0 scales per 32 with the OCP floor rule unless the label says otherwise; "GPTQ" is GPTQ with
act-order (static block scales), "SparseGPT" the paper's SparseGPT (columns in order; the rows
"with block act-order" sweep whole scale blocks by descending Hessian diagonal, docs/ptq.md);
rows in parentheses are not in the paper; ``damp=0.1`` rows use 10 % Hessian damping instead of
the reference's 1 % (docs/ptq.md, on overfitting)."""


def table_rows(tables: tuple[PaperTable, ...] = PAPER_TABLES, *, ppl_tokens: int = 512,
               throughput: bool = True, end_to_end: bool = False,
               hardware: str | ChipConfig | None = None,
               progress: Callable[[AccuracyRow], None] | None = None
               ) -> dict[int, list[AccuracyRow]]:
    """Measure every table's rows (each model loaded and calibrated once per table)."""
    out = {}
    for t in tables:
        out[t.number] = accuracy_table([s for s, _, _ in t.rows], ppl_tokens=ppl_tokens,
                                       models=(t.model,), throughput=throughput,
                                       end_to_end=end_to_end, hardware=hardware,
                                       progress=progress)
    return out


def _c(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_paper_table(t: PaperTable, rows: list[AccuracyRow]) -> str:
    """Markdown of one table: our row, its metric(s), bytes, simulated throughput, the lowered
    metric (when measured), and the paper's row and value."""
    mini = t.model == "minilm"
    e2e = any((r.e2e_minilm_mean_cosine if mini else r.e2e_smollm2_perplexity) is not None
              for r in rows)
    head = "| weights (FP8 E4M3 activations) |"
    head += " mean cos | min cos |" if mini else " perplexity |"
    head += " linear bytes | sim. " + ("sentences/s" if mini else "tokens/s") + " |"
    if e2e:
        head += " lowered: " + ("mean cos | lowered: min cos |" if mini else "perplexity |")
    head += f" white paper row | paper {t.metric} |"
    lines = [head, "|" + "---|" + "---:|" * (head.count("|") - 4) + "---|---:|"]
    for (_scheme, name, value), r in zip(t.rows, rows, strict=True):
        label = "float32 (float32 activations)" if r.scheme == "fp32" else r.scheme
        line = f"| {label} |"
        if mini:
            line += f" {_c(r.minilm_mean_cosine, '.5f')} | {_c(r.minilm_min_cosine, '.5f')} |"
            nbytes, tp = r.minilm_linear_bytes, r.minilm_sentences_per_s
        else:
            line += f" {_c(r.smollm2_perplexity, '.3f')} |"
            nbytes, tp = r.smollm2_linear_bytes, r.smollm2_tokens_per_s
        line += f" {_c(nbytes, ',')} | {_c(tp, ',.0f')} |"
        if e2e:
            line += (f" {_c(r.e2e_minilm_mean_cosine, '.5f')} | "
                     f"{_c(r.e2e_minilm_min_cosine, '.5f')} |" if mini
                     else f" {_c(r.e2e_smollm2_perplexity, '.3f')} |")
        line += f" {name} | {value or ''} |"
        lines.append(line)
    return "\n".join(lines)


def _measured(v: float | None) -> float:
    if v is None:
        raise ConfigError("comparison needs the rows' measured metric (a model was not run)")
    return v


def _paper(value: str | None) -> str:
    if value is None:
        raise ConfigError("a white-paper baseline row needs the paper's value")
    return value


def _paper_f1(value: str | None) -> float:
    value = _paper(value)
    return float(value.split("/")[1])


def comparison(tables: dict[int, list[AccuracyRow]]) -> str:
    """A paragraph comparing our relative drops with the paper's (computed from the rows)."""
    by = {t.number: t for t in PAPER_TABLES}
    parts = []
    for num, rows in sorted(tables.items()):
        t = by[num]
        base_row, base_paper = rows[0], t.rows[0][2]
        for (_scheme, name, value), r in zip(t.rows[1:], rows[1:], strict=True):
            if value is None:
                continue
            if t.model == "minilm":
                ours = 1.0 - _measured(r.minilm_mean_cosine)
                paper = 1.0 - _paper_f1(value) / _paper_f1(base_paper)
                parts.append(f"table {num} {name}: F1 -{100 * paper:.1f} % in the paper, "
                             f"1 - mean cosine {ours:.3f} here ({r.scheme})")
            else:
                ours = (_measured(r.smollm2_perplexity)
                        / _measured(base_row.smollm2_perplexity) - 1.0)
                paper = float(value) / float(_paper(base_paper)) - 1.0
                parts.append(f"table {num} {name}: perplexity +{100 * paper:.1f} % in the "
                             f"paper, {100 * ours:+.1f} % here ({r.scheme})")
    return "; ".join(parts) + "."


def render_docs(tables: dict[int, list[AccuracyRow]], grid: list[AccuracyRow] | None,
                command: str) -> str:
    """The generated section of docs/accuracy.md (between :data:`BEGIN` and :data:`END`)."""
    by = {t.number: t for t in PAPER_TABLES}
    out = [BEGIN, "", f"Generated by `{command}`. The throughput of the Hadamard and SpQR rows "
           "includes their lowered online transforms and outlier products (see *Throughput of "
           "the PTQ rows*).", ""]
    for num in sorted(tables):
        t = by[num]
        out += [f"### Table {num}: {t.title}", "", format_paper_table(t, tables[num]), ""]
    out += ["### Relative drops against the white paper", "",
            "Computed from the rows above (the paper's relative F1 drop for BERT against our "
            "1 - mean cosine for MiniLM - different measures, compare the ranking; "
            "perplexity ratios for LLaMA): " + comparison(tables), ""]
    if grid is not None:
        out += ["### Every format x sparsity, round to nearest (the default command)", "",
                format_table(grid), ""]
    out.append(END)
    return "\n".join(out)


def write_docs(path: str | Path, section: str) -> None:
    """Replace the generated section of ``path`` (between the markers) by ``section``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    pat = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pat.search(text):
        raise ConfigError(f"{path}: no generated section (a line '{BEGIN}' ... '{END}')")
    path.write_text(pat.sub(lambda _: section, text), encoding="utf-8")
