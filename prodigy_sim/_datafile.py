"""The guarded readers: every input file of the package is read through one of these.

One reader per input kind, each failing with a one-line error of the caller's
:class:`~prodigy_sim.errors.ProdigySimError` class that names the file (and the line where there is
one), never with a third-party exception, and each bounding the work an input can cause:

- :func:`read_text`: UTF-8 text (programs, traces read as text); at most ``MAX_FILE_BYTES``.
- :func:`read_binary`: bytes (binary programs); at most ``MAX_FILE_BYTES``.
- :func:`load_yaml`: YAML text -> ``(data, root node)``, with the bounds below.
- :func:`load_json`: JSON text -> data, with the same bounds.
- :func:`read_data` / :func:`read_mapping`: a ``.json`` (else YAML) file, any value / a mapping.

Bounds on YAML and JSON (a legitimate configuration is far inside them):

- nesting depth at most ``MAX_DEPTH`` levels, counted through aliases;
- at most ``MAX_NODES`` nodes once every alias is expanded (an "alias bomb" of 9 aliases of 9
  aliases... is refused, not expanded), and no alias inside the node it names (a recursive alias);
- integer literals of at most ``MAX_INT_DIGITS`` characters (Python refuses more than 4300 digits
  with a bare ``ValueError``; no field of a configuration needs more than 20);
- no key twice in one YAML mapping (PyYAML would keep the last silently); ``<<`` merges may still
  be overridden.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml

from prodigy_sim.errors import ConfigError, ProdigySimError, short_repr

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_INT_DIGITS", "MAX_FILE_BYTES", "read_text",
           "read_binary", "load_yaml", "load_json", "read_data", "read_mapping",
           "load_yaml_value"]

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences accepted in a YAML or JSON file (levels)."""
MAX_NODES = 200_000
"""Most nodes (scalars, sequences, mappings) of a YAML or JSON document, aliases expanded."""
MAX_INT_DIGITS = 64
"""Longest integer literal accepted in a YAML or JSON file (characters, sign and ``_`` included)."""
MAX_FILE_BYTES = 256 << 20
"""Largest file any reader accepts (bytes)."""


def _error(cls: type[ProdigySimError], source: str | Path, message: str, line: int = 0,
           column: int = 0) -> ProdigySimError:
    """An error of ``cls`` at ``source:line:column`` (located classes take them as fields)."""
    try:
        return cls(message, file=source, line=line, column=column)  # type: ignore[call-arg]
    except TypeError:
        where = ":".join(str(p) for p in (source, line or None, column or None) if p is not None)
        return cls(f"{where}: {message}")


def read_binary(path: str | Path, *, what: str, error: type[ProdigySimError] = ConfigError,
                max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` (a ``what`` file); ``error`` if it cannot be read or is larger than
    ``max_bytes``."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            st = os.fstat(fh.fileno())
            # a regular file is read into a buffer of its size (+1 sees it grow); read(n)
            # allocates n bytes first, which for a 4 GiB limit costs more than a small file
            fit = stat.S_ISREG(st.st_mode) and st.st_size <= max_bytes
            data = fh.read((st.st_size if fit else max_bytes) + 1)
    except OSError as err:
        raise _error(error, p, f"{err.strerror or err} (cannot read this {what} file)") from None
    if len(data) > max_bytes:
        raise _error(error, p, f"{what} file larger than {max_bytes} bytes")
    return data


def decode_utf8(data: bytes, source: str | Path, *, what: str,
                error: type[ProdigySimError] = ConfigError) -> str:
    """``data`` decoded as UTF-8 (a leading BOM dropped); ``error`` naming the line and column of
    the first byte that is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise _error(error, source, f"{what} file is not UTF-8 text (byte "
                                    f"0x{data[err.start]:02x})", line, column) from None
    return text.removeprefix("\ufeff")


def read_text(path: str | Path, *, what: str, error: type[ProdigySimError] = ConfigError,
              max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of ``path`` (a ``what`` file): :func:`read_binary` then
    :func:`decode_utf8`."""
    return decode_utf8(read_binary(path, what=what, error=error, max_bytes=max_bytes), path,
                       what=what, error=error)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the module's bounds (depth, expanded nodes, recursive aliases,
    integer length), checked while composing, before anything is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0                              # depth of the node being composed
        self._reached = 0                            # deepest level reached in it so far
        self._nodes = 0                              # nodes so far, aliases expanded
        self._open: set[str] = set()                 # anchors whose node is being composed
        self._size: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, levels)

    def _count(self, nodes: int, depth: int, mark) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_NODES} values once aliases are expanded "
                            "(an alias bomb?)", mark)
        if depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", mark)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise yaml.composer.ComposerError(
                    None, None, f"recursive alias *{event.anchor} (used inside the node it "
                                "names)", event.start_mark)
            nodes, levels = self._size.get(event.anchor, (1, 1))
            self._count(nodes, self._depth + levels, event.start_mark)
            self._reached = max(self._reached, self._depth + levels)
            return super().compose_node(parent, index)
        anchor = event.anchor
        self._depth += 1
        self._count(1, self._depth, event.start_mark)
        saved, self._reached = self._reached, self._depth
        before = self._nodes
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._size[anchor] = (self._nodes - before + 1, self._reached - self._depth)
        self._reached = max(saved, self._reached)
        return node

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"integer of {len(node.value)} characters (at most "
                            f"{MAX_INT_DIGITS})", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        """PyYAML's mapping, but a key written twice in one mapping is an error (PyYAML keeps
        the last); keys merged in by ``<<`` may still be overridden."""
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if line is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {short_repr(key, 60)} (first at line {line})",
                        key_node.start_mark)
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def load_yaml(text: str, *, source: str | Path, error: type[ProdigySimError] = ConfigError
              ) -> tuple[object, yaml.Node | None]:
    """Parse one YAML document: ``(data, root node)`` (``(None, None)`` when empty).

    The node (with line marks) lets callers locate fields. Errors are ``error`` naming
    ``source``, the line and the column.
    """
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (NUL, ...)
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        raise _error(error, source, f"not valid YAML: character {err.character:#06x} is not "
                                    "allowed", line, column) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise _error(error, source, f"not valid YAML: {problem}",
                     mark.line + 1 if mark else 0, mark.column + 1 if mark else 0) from None
    except RecursionError:  # cannot happen within MAX_DEPTH; kept as a last guard
        raise _error(error, source, "not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, node


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} characters (at most {MAX_INT_DIGITS})")
    return int(text)


def _check_tree(data: object, source: str | Path, error: type[ProdigySimError]) -> None:
    """Depth and size bounds of parsed JSON (a tree: no aliases), iteratively."""
    stack = [(data, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise _error(error, source, f"not valid JSON: nested more than {MAX_DEPTH} levels "
                                        "deep")
        if nodes > MAX_NODES:
            raise _error(error, source, f"not valid JSON: more than {MAX_NODES} values")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def load_json(text: str, *, source: str | Path, error: type[ProdigySimError] = ConfigError
              ) -> object:
    """Parse JSON text; errors are ``error`` naming ``source`` and the line."""
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as err:
        raise _error(error, source, f"not valid JSON: {err.msg}", err.lineno, err.colno) from None
    except ValueError as err:  # from _parse_int
        raise _error(error, source, f"not valid JSON: {err}") from None
    except RecursionError:
        raise _error(error, source, f"not valid JSON: nested more than {MAX_DEPTH} levels "
                                    "deep") from None
    _check_tree(data, source, error)
    return data


def read_data(path: str | Path, *, what: str, error: type[ProdigySimError] = ConfigError
              ) -> object:
    """The value in a ``.json`` (else YAML) file; ``None`` for an empty YAML file."""
    p = Path(path)
    text = read_text(p, what=what, error=error)
    if p.suffix.lower() == ".json":
        return load_json(text, source=p, error=error)
    return load_yaml(text, source=p, error=error)[0]


def read_mapping(path: str | Path, *, what: str, cls: type[ProdigySimError] = ConfigError
                 ) -> dict:
    """Parse a ``.json`` (else YAML) file that must hold a mapping.

    Errors are ``cls`` instances naming the file, and the line for syntax errors.
    """
    data = read_data(path, what=what, error=cls)
    if not isinstance(data, dict):
        raise _error(cls, path, f"a {what} must be a mapping of fields (got "
                                f"{type(data).__name__})")
    return data


def load_yaml_value(text: str) -> object:
    """One YAML value parsed by the bounded loader (the bounds of :func:`load_yaml`, no source
    to name); raises ``yaml.YAMLError`` for the caller to word."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
