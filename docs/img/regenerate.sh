#!/bin/sh
# Regenerates the roofline and breakdown figures in docs/img/ (docs/lowering.md, "Reports").
# Run from the repository root: sh docs/img/regenerate.sh   (the 70B prefills take minutes)
set -e
sim="${PRODIGY_SIM:-prodigy-sim} simulate --quiet"
for d in llama-2-7b-decode-tai4 llama-2-7b-decode-tai4-8x4 llama-2-70b-prefill-tai4 \
         llama-2-70b-prefill-tai4-8x4; do mkdir -p "docs/img/$d"; done
$sim --model llama-2-7b --phase decode --batch 1 --context 2048 --weights tai4 \
    --plot docs/img/llama-2-7b-decode-tai4 > docs/img/llama-2-7b-decode-tai4/report.txt
$sim --model llama-2-7b --phase decode --batch 1 --context 2048 --weights tai4 --sparsity 8:4 \
    --plot docs/img/llama-2-7b-decode-tai4-8x4 > docs/img/llama-2-7b-decode-tai4-8x4/report.txt
$sim --model llama-2-70b --phase prefill --batch 1 --context 2048 --weights tai4 \
    --plot docs/img/llama-2-70b-prefill-tai4 > docs/img/llama-2-70b-prefill-tai4/report.txt
$sim --model llama-2-70b --phase prefill --batch 1 --context 2048 --weights tai4 \
    --sparsity 8:4 --plot docs/img/llama-2-70b-prefill-tai4-8x4 \
    > docs/img/llama-2-70b-prefill-tai4-8x4/report.txt
rm -f docs/img/*/*.svg   # the PNGs are what the docs show
