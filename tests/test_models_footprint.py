"""Footprint reports: exact bytes, KV cache and activation rules, Tachyum's footprint claims."""

import csv
import io
import json
import math

import pytest

from prodigy_sim.hardware import load_preset
from prodigy_sim.models import (
    Formats,
    Scenario,
    footprint_report,
    load_card,
    tensor_footprint,
)
from prodigy_sim.numerics import Storage, footprint

TB = 1e12
GB = 1e9
FP8_UNSCALED = Storage.of("float8_e4m3fn", scale="none")


def _per_trillion(fmt, sparsity="none"):
    """Weight bytes of a 1e12-parameter LLM: LLaMA-2 70B's bytes per parameter x 1e12."""
    report = footprint_report("llama-2-70b", Formats.uniform(fmt), sparsity=sparsity)
    return report.weight_bytes / report.parameters * 1e12, report.bits_per_weight


def test_claim_1t_params_fp8_is_1tb():
    size, bits = _per_trillion(FP8_UNSCALED)
    assert bits == 8.0
    assert size == pytest.approx(1.0 * TB, rel=1e-12)


def test_claim_1t_params_tai4_is_about_500gb():
    # The claim (500 GB) implies 4.0 bits/weight; MX E8M0 scales per 32 weights add 8/32 bit:
    # 4.25 bits = 531.25 GB, 6.25% above. Tolerance: 7% (the scale overhead).
    size, bits = _per_trillion("tai4")
    assert bits == 4.25
    assert size == pytest.approx(531.25 * GB, rel=1e-12)
    assert size == pytest.approx(500 * GB, rel=0.07)


def test_claim_1t_params_2bit_is_about_250gb():
    # tai2 + E8M0/32 = 2.25 bits (281.25 GB, +12.5%), and tai2 pruned 8:4 = 1 bit of code +
    # 1 bit of mask + 0.25 bit of scale = 2.25 bits too. Tolerance 12.5% (scale + mask overhead).
    dense, bits = _per_trillion("tai2")
    assert bits == 2.25 and dense == pytest.approx(281.25 * GB, rel=1e-12)
    assert dense == pytest.approx(250 * GB, rel=0.125 + 1e-9)
    sparse, sbits = _per_trillion("tai2", sparsity="8:4")
    assert sbits == pytest.approx(2.25, abs=1e-9)


def _switch(formats, capacity=None):
    scenario = Scenario(model="switch-1.6t", phase="decode", context_length=512, formats=formats)
    return footprint_report("switch-1.6t", scenario, capacity_bytes=capacity)


def test_claim_switch_tai4_fits_one_2tb_socket():
    report = _switch(Formats(weights="tai4"), capacity=int(2 * TB))
    assert report.fits
    assert 0.8 * TB < report.total_bytes < 0.85 * TB  # ~835 GB
    assert _switch(Formats(weights="tai4")).fits  # and the 8 TiB T16128 preset


def test_claim_switch_bf16_needs_about_3tb_and_40_gpus():
    bf16 = Formats.uniform("bfloat16", kv_cache="bfloat16")
    report = _switch(bf16, capacity=int(2 * TB))
    assert not report.fits
    # 1.571e12 parameters x 2 bytes = 3.14 TB (the claim's 3.2 TB = 1.6e12 x 2)
    assert report.weight_bytes == 2 * report.parameters
    assert report.weight_bytes == pytest.approx(3.2 * TB, rel=0.02)
    assert math.ceil(report.total_bytes / (80 * GB)) >= 40


def test_weights_equal_sum_of_numerics_footprints():
    card = load_card("llama-2-7b")
    formats = Formats()
    report = footprint_report(card, formats, sparsity="8:4")
    expected = [0, 0, 0]
    for t in card.tensors():
        fp = tensor_footprint(t, formats.for_class(t.tensor_class), "8:4")
        for i, v in enumerate((fp.code_bytes, fp.scale_bytes, fp.metadata_bytes)):
            expected[i] += v
    assert [report.weight_code_bytes, report.weight_scale_bytes,
            report.weight_metadata_bytes] == expected


def test_sparse_tai4_parts_per_weight():
    # tai4 8:4, E8M0 per 32 dense positions: 2 bits code + 1 bit mask + 0.25 bit scale.
    report = footprint_report("llama-2-7b", Formats(), sparsity="8:4")
    mlp = report.by_class("mlp")
    assert mlp.parameters == 32 * 3 * 4096 * 11008
    assert (mlp.code_bytes, mlp.metadata_bytes, mlp.scale_bytes) == (
        mlp.parameters // 4, mlp.parameters // 8, mlp.parameters // 32)
    assert report.by_class("embedding").metadata_bytes == 0  # sparsity: linear layers only


def test_tensor_footprint_matches_numerics_and_wide_formats():
    spec = load_card("llama-2-7b").layer_tensors(0)[1]
    assert tensor_footprint(spec, Storage.of("int4")) == footprint(spec.shape, "int4")
    wide = tensor_footprint(spec, Storage.of("bfloat16"), "8:4")
    assert (wide.code_bytes, wide.metadata_bytes) == (spec.numel, spec.numel // 8)


@pytest.mark.parametrize(("model", "kv_format", "expected"), [
    ("llama-2-7b", "float8_e4m3fn", 2 * 32 * 32 * 128 * 4096 * 2),
    ("llama-2-7b", "bfloat16", 2 * 32 * 32 * 128 * 4096 * 2 * 2),
    ("llama-2-70b", "float8_e4m3fn", 2 * 80 * 8 * 128 * 4096 * 2),  # GQA: 8 KV heads
])
def test_kv_cache_rule(model, kv_format, expected):
    scenario = Scenario(model=model, phase="decode", batch=2, context_length=4096,
                        formats=Formats(kv_cache=kv_format))
    assert footprint_report(model, scenario).kv_cache_bytes == expected


def test_switch_kv_cache_includes_cross_attention():
    scenario = Scenario(model="switch-1.6t", phase="decode", context_length=100,
                        encoder_length=300)
    assert footprint_report("switch-1.6t", scenario).kv_cache_bytes == 2 * 15 * 30 * 64 * 400


def test_encoder_only_has_no_kv_cache():
    scenario = Scenario(model="bert-base-uncased", phase="prefill", sequence_length=128)
    assert footprint_report("bert-base-uncased", scenario).kv_cache_bytes == 0


def test_activation_rule_decode_and_prefill():
    h, i, nh = 4096, 11008, 32
    decode = Scenario(model="llama-2-7b", phase="decode", context_length=4096)
    attn = h + h + 2 * h + nh * 4096 + h  # residual, Q, new K V, scores, output (fp8: 1 B)
    assert attn > max(h + 2 * i, 32000)
    assert footprint_report("llama-2-7b", decode).activation_bytes == attn
    prefill = Scenario(model="llama-2-7b", phase="prefill", sequence_length=16, batch=2)
    t = 32
    expected = max(t * h * 5 + 2 * nh * 16 * 16, t * h + t * 2 * i, 2 * 32000)
    assert footprint_report("llama-2-7b", prefill).activation_bytes == expected


def test_capacity_comes_from_preset():
    report = footprint_report("smollm2-135m", Formats(), hardware="prodigy-2nm-ultimate")
    assert report.capacity_bytes == load_preset("prodigy-2nm-ultimate").memory.capacity_bytes


def test_renderings():
    scenario = Scenario(model="llama-3-8b", phase="prefill", batch=4, sequence_length=1024)
    report = footprint_report("llama-3-8b", scenario)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["total_bytes"] == report.weight_bytes + report.kv_cache_bytes \
        + report.activation_bytes
    assert data["fits"] is True
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["item"] for r in rows][-4:] == ["weights", "kv_cache", "activations", "total"]
    assert int(rows[-1]["total_bytes"]) == report.total_bytes
    assert sum(int(r["total_bytes"]) for r in rows[:-4]) == report.weight_bytes
    text = report.table()
    assert "fits prodigy-t16128" in text and "tai4/32 e8m0" in text
