"""``python -m prodigy_sim.realmodels``: measure and print the accuracy table (docs/accuracy.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from prodigy_sim.errors import ProdigySimError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prodigy_sim.realmodels",
        description="Accuracy of every weight format x 8:4 sparsity with FP8 activations on "
                    "all-MiniLM-L6-v2 (cosine to float32 embeddings) and SmolLM2-135M-Instruct "
                    "(perplexity). Bytes are those of the blocks' linear weights.")
    parser.add_argument("--ppl-tokens", type=int, default=512,
                        help="tokens of the public-domain text scored for perplexity (count; "
                             "default 512)")
    parser.add_argument("--json", action="store_true", help="print rows as JSON lines")
    args = parser.parse_args(argv)
    from prodigy_sim.realmodels._accuracy import accuracy_table, format_table

    start = time.perf_counter()

    def show(row) -> None:
        print(json.dumps(row.as_dict()) if args.json else
              f"{row.scheme:28s} cos mean {row.minilm_mean_cosine:.5f} min "
              f"{row.minilm_min_cosine:.5f}  ppl {row.smollm2_perplexity:10.3f}  "
              f"({row.seconds:.1f} s)", flush=True)

    try:
        rows = accuracy_table(ppl_tokens=args.ppl_tokens, progress=show)
    except ProdigySimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.json:
        print()
        print(format_table(rows))
        print(f"\nwall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
