"""Tokenizers of the two real models, built with the ``tokenizers`` library from shipped files.

- all-MiniLM-L6-v2: the package's ``tokenizer.json`` (BERT WordPiece, lower-casing, ``[CLS] ...
  [SEP]`` added by its post-processor).
- SmolLM2: rebuilt from the GGUF metadata (``tokenizer.ggml.tokens``, ``.merges``,
  ``.token_type``), as llama.cpp does for ``tokenizer.ggml.pre = "smollm"``: GPT-2 byte-level BPE
  whose pre-tokenizer first splits every digit off (``Digits(individual_digits=True)``) and then
  applies the GPT-2 regex (``ByteLevel(add_prefix_space=False, use_regex=True)``); no
  normalizer; tokens of type 3 ("control": ``<|endoftext|>``, ``<|im_start|>``, ...) are special
  tokens matched before BPE. No BOS is added (``tokenizer.ggml.add_bos_token = false``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from prodigy_sim.errors import ModelFileError
from prodigy_sim.realmodels._files import (
    checkpoint_errors,
    minilm_dir,
    optional_module,
    smollm2_gguf_path,
)
from prodigy_sim.realmodels._smollm2 import gguf_metadata, gguf_reader

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["minilm_tokenizer", "smollm2_tokenizer", "load_minilm_tokenizer",
           "load_smollm2_tokenizer"]

_CONTROL = 3  # llama.cpp LLAMA_TOKEN_TYPE_CONTROL


def load_minilm_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """The BERT WordPiece tokenizer of a ``tokenizer.json`` (default: all-MiniLM-L6-v2's)."""
    tokenizer = optional_module("tokenizers").Tokenizer
    file = Path(path) if path is not None else minilm_dir() / "tokenizer.json"
    with checkpoint_errors(file, "tokenizer.json"):  # tokenizers raises a bare Exception
        tok = tokenizer.from_file(str(file))
    tok.no_padding()  # the file pads to 128; the forward pads each batch itself
    return tok


def load_smollm2_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """The byte-level BPE tokenizer described by a GGUF file's metadata (default: SmolLM2's)."""
    tk = optional_module("tokenizers")
    file = Path(path).resolve() if path is not None else smollm2_gguf_path()
    reader = gguf_reader(file)
    model = gguf_metadata(reader, "tokenizer.ggml.model", file)
    pre = gguf_metadata(reader, "tokenizer.ggml.pre", file, required=False)
    if model != "gpt2" or pre not in ("smollm", None):
        raise ModelFileError(f"{file}: tokenizer.ggml.model = {model!r}, .pre = {pre!r}; only "
                             "'gpt2' byte-level BPE with the 'smollm' pre-tokenizer is supported")
    tokens = _strings(gguf_metadata(reader, "tokenizer.ggml.tokens", file), file,
                      "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in _strings(
        gguf_metadata(reader, "tokenizer.ggml.merges", file), file, "tokenizer.ggml.merges")]
    bad = next((i for i, m in enumerate(merges) if len(m) != 2), None)
    if bad is not None:
        raise ModelFileError(f"{file}: tokenizer.ggml.merges[{bad}] is not two symbols separated "
                             "by one space")
    types = gguf_metadata(reader, "tokenizer.ggml.token_type", file)
    if not isinstance(types, list | tuple):
        raise ModelFileError(f"{file}: GGUF metadata 'tokenizer.ggml.token_type' must be a list "
                             "of integers")
    if len(types) != len(tokens) or len(set(tokens)) != len(tokens):
        raise ModelFileError(f"{file}: {len(tokens)} tokens, {len(types)} token types and "
                             f"{len(set(tokens))} distinct tokens; expected equal counts")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    # tokenizers panics (a PanicException, not an Exception) on a merge whose parts or result
    # are not tokens: check every one first
    unknown = next((i for i, (a, b) in enumerate(merges)
                    if a not in vocab or b not in vocab or a + b not in vocab), None)
    if unknown is not None:
        raise ModelFileError(f"{file}: tokenizer.ggml.merges[{unknown}] = "
                             f"{' '.join(merges[unknown])!r}: a part or the merged token is not "
                             "in tokenizer.ggml.tokens")
    with checkpoint_errors(file, "GGUF tokenizer", "tokenizer.ggml.merges"):
        tok = tk.Tokenizer(tk.models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = tk.pre_tokenizers.Sequence([
        tk.pre_tokenizers.Digits(individual_digits=True),
        tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = tk.decoders.ByteLevel()
    tok.add_special_tokens([tk.AddedToken(t, special=True, normalized=False)
                            for t, kind in zip(tokens, types, strict=True) if kind == _CONTROL])
    return tok


def _strings(values, file: Path, key: str) -> list[str]:
    """GGUF metadata ``key`` as a list of strings, or ModelFileError naming it."""
    out = list(values) if isinstance(values, list | tuple) else None
    if out is None or not all(isinstance(v, str) for v in out):
        raise ModelFileError(f"{file}: GGUF metadata {key!r} must be a list of strings")
    return out


@functools.lru_cache(maxsize=1)
def minilm_tokenizer() -> Tokenizer:
    """all-MiniLM-L6-v2's tokenizer, built once per process."""
    return load_minilm_tokenizer()


@functools.lru_cache(maxsize=1)
def smollm2_tokenizer() -> Tokenizer:
    """SmolLM2's tokenizer, built once per process."""
    return load_smollm2_tokenizer()
