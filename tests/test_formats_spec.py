"""FormatSpec validation, the registry, and loading user formats."""

import json

import numpy as np
import pytest

from prodigy_sim.errors import FormatError
from prodigy_sim.numerics import (
    FormatSpec,
    builtin_formats,
    decode,
    encode,
    format_names,
    get_format,
    load_format,
    parse_format,
)

REQUIRED = {"float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "tai4", "tai2", "int8", "int4",
            "ternary"}


def test_registry_has_the_required_formats():
    assert REQUIRED <= set(format_names())
    for name, spec in builtin_formats().items():
        assert spec.name == name
        if spec.bits <= 16:
            assert spec.values.shape == (1 << spec.bits,)


@pytest.mark.parametrize("name, values", [
    ("tai4", [0, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1]),
    ("tai2", [0.5, 1]),
    ("float4_e2m1fn", [0, 0.5, 1, 1.5, 2, 3, 4, 6]),
    ("int4", list(range(-8, 8))),
    ("ternary", [-1, 0, 1]),
])
def test_value_sets(name, values):
    spec = get_format(name)
    finite = sorted(set(spec.finite_values.tolist()))
    if spec.signed and spec.kind != "int":
        values = sorted(set(values) | {-v for v in values})
    assert finite == sorted(values)


def test_fp8_facts_from_the_design_notes():
    e4, e5 = get_format("float8_e4m3fn"), get_format("float8_e5m2")
    assert (e4.max_finite, e4.min_positive, e4.emax) == (448, 2**-9, 8)
    assert (e5.max_finite, e5.min_positive, e5.emax) == (57344, 2**-16, 15)
    assert np.isfinite(e4.values).sum() == 254 and np.unique(e4.finite_values).size == 253
    assert np.unique(e5.finite_values).size == 247


BASE = dict(name="myfloat", bits=8, kind="float", exponent_bits=4, mantissa_bits=3, bias=7,
            subnormals=True, zero_codes=[0, 0x80], nan_codes=[0x7F, 0xFF])


@pytest.mark.parametrize("change, field, constraint", [
    (dict(mantissa_bits=4), "bits", "does not add up"),
    (dict(bias=200), "bias", "out of range"),
    (dict(zero_codes=[0]), "zero_codes", "missing 0x80"),
    (dict(nan_codes=[0x7F, 0x100]), "nan_codes", "outside 0..255"),
    (dict(nan_codes=[0x7F, 0x80]), "zero_codes", "in both"),
    (dict(bits=9, exponent_bits=5), "bits", "must be IEEE-style floats"),
    (dict(bits=16, exponent_bits=8, mantissa_bits=7, specials="ieee"), "specials",
     "take no zero/nan/inf code lists"),
    (dict(bias=10**20), "bias", "less than or equal to 1024"),
    (dict(kind="fixed"), "kind", "'float', 'log' or 'int'"),
    (dict(nan_codes=[], overflow="nonsaturating"), "overflow", "needs an Inf or NaN code"),
    (dict(exponent_bits=0, mantissa_bits=7), "exponent_bits", ">= 1"),
    (dict(canonical_nan=0x7E), "canonical_nan", "not one of 'nan_codes'"),
])
def test_inconsistent_specs_are_refused_naming_field(change, field, constraint):
    with pytest.raises(FormatError) as err:
        parse_format({**BASE, **change}, source="test.yaml")
    msg = str(err.value)
    assert msg.startswith("test.yaml: ") and field in msg and constraint in msg, msg


def test_unknown_field_in_file_is_refused(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nbits: 4\nkind: int\nzero_codes: [0]\nsign_bit: true\n")
    with pytest.raises(FormatError, match=r"bad.yaml: 'sign_bit': Extra inputs"):
        load_format(p)


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nbits: [4\n")
    with pytest.raises(FormatError, match=r"broken.yaml:\d+:\d+: not valid YAML"):
        load_format(p)


def test_user_format_from_json_is_usable(tmp_path):
    """A log format with a different exponent range, defined as data, encodes and decodes."""
    spec = {"name": "tai4_wide", "bits": 4, "kind": "log", "exponent_bits": 3, "bias": 4,
            "zero_codes": [0, 8]}
    p = tmp_path / "tai4_wide.json"
    p.write_text(json.dumps(spec))
    fmt = load_format(p)
    assert isinstance(fmt, FormatSpec) and fmt.max_finite == 8 and fmt.min_positive == 1 / 8
    x = np.array([5.0, 6.0, 7.0, -0.1, 100.0], np.float32)
    assert decode(encode(x, fmt), fmt).tolist() == [4.0, 4.0, 8.0, -0.125, 8.0]
    assert get_format(str(p)) == fmt


def test_unknown_format_lists_known_ones():
    with pytest.raises(FormatError, match="unknown format 'fp9'.*tai4"):
        get_format("fp9")


def test_spec_is_frozen():
    spec = get_format("tai4")
    with pytest.raises(Exception, match="frozen"):
        spec.bias = 3
