"""Durable results: a journal of rows appended as points finish, and the tables written from it.

``results.jsonl`` holds one JSON row per line, appended (flushed and fsynced) as each task
finishes; a rerun reads it and computes only the points whose id it lacks. A line cut short by a
crash is dropped (and cut off the file before appending). The last row of a point id wins.

At the end the rows of the sweep's points, in point order, are written as ``results.csv`` and
``results.parquet`` (pyarrow): one row per point, every input and output a column.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Journal", "columns_of", "write_csv", "write_parquet", "arrow_table"]


class Journal:
    """The append-only results file ``<folder>/results.jsonl``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "results.jsonl"

    def read(self) -> dict[str, dict[str, Any]]:
        """``{point_id: row}`` of every complete line (a torn last line is cut off the file)."""
        if not self.path.is_file():
            return {}
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)
        rows: dict[str, dict[str, Any]] = {}
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # a damaged line (bad JSON, not UTF-8, a huge integer)
                continue
            if isinstance(row, dict) and "point_id" in row:
                rows[row["point_id"]] = row
        return rows

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append ``rows`` and make them durable before returning."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def clear(self) -> None:
        """Forget every result (a fresh start)."""
        if self.path.exists():
            self.path.unlink()


def columns_of(rows: list[dict[str, Any]], first: Iterable[str] = ()) -> list[str]:
    """Column names: ``first``, then every other key in order of first appearance."""
    cols = dict.fromkeys(first)
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def _uniform(values: list[Any]) -> list[Any]:
    """A column's values with one type: mixed kinds (numbers and text...) become text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} or len(kinds) <= 1:
        return [float(v) if kinds == {int, float} and v is not None else v for v in values]
    return [None if v is None else str(v) for v in values]


def arrow_table(rows: list[dict[str, Any]], columns: list[str]):
    """The rows as a ``pyarrow.Table`` (one column per name; types inferred, nulls kept)."""
    import pyarrow as pa

    data = {c: _uniform([r.get(c) for r in rows]) for c in columns}
    return pa.table({c: pa.array(v) for c, v in data.items()})


def write_csv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    """Write ``rows`` as CSV (empty cell = null; floats in full precision)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: ("" if r.get(c) is None else
                            repr(r[c]) if isinstance(r[c], float) else r[c]) for c in columns})


def write_parquet(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    """Write ``rows`` as Parquet (pyarrow)."""
    import pyarrow.parquet as pq

    pq.write_table(arrow_table(rows, columns), path)
