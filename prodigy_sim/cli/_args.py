"""argparse ``type=`` converters that refuse values a flag cannot mean, naming the value.

argparse prints their message as ``argument --flag: MESSAGE`` (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "non_negative_int", "positive_float", "positive_int_list",
           "positive_float_list"]

_MAX_INT_TEXT = 20
"""Longest integer accepted on the command line (characters): 64-bit values."""


def _int(text: str) -> int:
    if len(text.strip()) > _MAX_INT_TEXT:
        raise argparse.ArgumentTypeError(f"{text[:12]!r}... is not an integer of at most "
                                         f"{_MAX_INT_TEXT} digits")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer (got {text!r})") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {text!r})")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {text!r})")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (not nan, not inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (got {text!r})")
    return value


def _items(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected {what} separated by commas, none empty (got "
                                         f"{text!r})")
    return items


def positive_int_list(text: str) -> list[int]:
    """``N[,N...]``: one or more integers >= 1."""
    return [positive_int(t) for t in _items(text, "integers")]


def positive_float_list(text: str) -> list[float]:
    """``X[,X...]``: one or more finite numbers > 0."""
    return [positive_float(t) for t in _items(text, "numbers")]
