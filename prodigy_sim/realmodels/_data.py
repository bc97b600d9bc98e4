"""The fixed evaluation data (``workloads/data/``): sentences, their pairs, calibration sentences
and the public-domain perplexity text."""

from __future__ import annotations

from dataclasses import dataclass

from prodigy_sim.errors import ModelFileError
from prodigy_sim.realmodels._files import data_file

__all__ = ["SentencePair", "eval_sentences", "sentence_pairs", "calibration_sentences",
           "calibration_segments", "eval_text"]


@dataclass(frozen=True)
class SentencePair:
    """Two sentences (indices into :func:`eval_sentences`) and whether they are paraphrases."""

    kind: str
    first: int
    second: int


def _lines(name: str) -> list[str]:
    text = data_file(name).read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def eval_sentences() -> list[str]:
    """The 16 evaluation sentences of ``sentences.txt``."""
    return _lines("sentences.txt")


def calibration_sentences() -> list[str]:
    """The 8 calibration sentences of ``calibration.txt`` (disjoint from the evaluation data)."""
    return _lines("calibration.txt")


def calibration_segments() -> list[str]:
    """Everything the models are calibrated on, one forward pass each: the 8 sentences of
    ``calibration.txt`` and the paragraphs of ``calibration_text.txt`` (55 segments, 4,014
    SmolLM2 / 4,129 MiniLM tokens; workloads/data/README.md)."""
    return calibration_sentences() + _lines("calibration_text.txt")


def sentence_pairs() -> list[SentencePair]:
    """Paraphrase and unrelated pairs of ``sentence_pairs.txt``."""
    n = len(eval_sentences())
    out = []
    for lineno, line in enumerate(_lines("sentence_pairs.txt"), start=1):
        parts = line.split()
        ok = (len(parts) == 3 and parts[0] in ("paraphrase", "unrelated")
              and all(p.isdigit() and int(p) < n for p in parts[1:]))
        if not ok:
            raise ModelFileError(f"{data_file('sentence_pairs.txt')}: entry {lineno} must be "
                                 f"'paraphrase|unrelated I J' with I, J < {n} (got {line!r})")
        out.append(SentencePair(parts[0], int(parts[1]), int(parts[2])))
    return out


def eval_text() -> str:
    """The public-domain English text of ``public_domain_text.txt`` (paragraphs kept)."""
    return data_file("public_domain_text.txt").read_text(encoding="utf-8").strip()
