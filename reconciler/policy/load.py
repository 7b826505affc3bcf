"""Reading a policy file: bytes, YAML with positions, duplicate keys.

ruamel.yaml's round-trip loader keeps the line and column of every key and
value, so every later problem can be reported as FILE:LINE:COL. `Locator`
turns a path in the document (('directories', 'corp', 'urls', 0)) into such
a `Location`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from ..errors import Location, Problem, ReconcilerError

PathKey = str | int
DocPath = tuple[PathKey, ...]


def dotted(path: DocPath) -> str:
    """('directories', 'corp', 'urls', 0) -> 'directories.corp.urls[0]'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Document:
    """One policy file as read: its bytes, and the YAML data if it parsed."""

    file: str  # the path as the user gave it, used in every Location
    raw: bytes
    data: Any  # ruamel round-trip data (CommentedMap ...), None when the YAML did not parse
    problems: tuple[Problem, ...]  # YAML syntax errors and duplicate keys

    @property
    def lines(self) -> list[str]:
        return self.raw.decode("utf-8", errors="replace").splitlines()


def read_document(path: str | os.PathLike) -> Document:
    """Read and parse a policy file. A file that cannot be read is a one-line
    ReconcilerError; YAML problems are returned, not raised, so that validation
    can report them along with everything else."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ReconcilerError(f"{file}: policy file not found; check the path") from None
    except IsADirectoryError:
        raise ReconcilerError(f"{file}: is a folder, not a policy file") from None
    except OSError as error:
        raise ReconcilerError(f"{file}: cannot read the policy file: {error.strerror}") from None
    return parse_document(file, raw)


def parse_document(file: str, raw: bytes) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return Document(file, raw, None, (Problem(Location(file, line, 1), "", "the file is not UTF-8 text"),))

    problems: list[Problem] = []
    try:
        # Duplicate keys are found on the node tree, which keeps them all; the
        # loader below then keeps the first value so the rest can still be checked.
        problems.extend(_duplicate_keys(file, YAML(typ="rt").compose(text)))
        loader = YAML(typ="rt")
        loader.allow_duplicate_keys = True
        loader.preserve_quotes = True
        data = loader.load(text)
    except MarkedYAMLError as error:
        return Document(file, raw, None, (_syntax_problem(file, error),))
    except YAMLError as error:  # no position known
        return Document(file, raw, None, (Problem(Location(file, 1, 1), "", f"invalid YAML: {error}"),))
    if data is None:
        problems.append(Problem(Location(file, 1, 1), "", "the policy is empty; start from an example policy"))
    return Document(file, raw, data, tuple(problems))


# The fix for the parser messages people meet most often.
SYNTAX_HINTS = {
    "mapping values are not allowed here": "quote a value that contains ': '",
    "that cannot start any token": "indent with spaces, not tabs",
    "found unexpected end of stream": "a quote is probably not closed",
    "expected ',' or ']'": "a '[' is probably not closed",
    "expected ',' or '}'": "a '{' is probably not closed",
    "found undefined alias": "define the &anchor before using *alias",
}


def _syntax_problem(file: str, error: MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    message = f"invalid YAML: {error.problem or error.context}"
    if error.context and error.problem and error.context_mark is not None:
        message += f" ({error.context} at line {error.context_mark.line + 1}, column {error.context_mark.column + 1})"
    hints = [hint for needle, hint in SYNTAX_HINTS.items() if needle in message]
    if hints:
        message += f"; {hints[0]}"
    location = Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file, 1, 1)
    return Problem(location, "", message)


def _duplicate_keys(file: str, root: Node | None) -> list[Problem]:
    problems: list[Problem] = []

    def walk(node: Node | None, path: DocPath) -> None:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if not isinstance(key, str):  # a complex key; the schema rejects it
                    continue
                line = key_node.start_mark.line + 1
                if key in first_line:
                    problems.append(
                        Problem(
                            Location(file, line, key_node.start_mark.column + 1),
                            dotted(path + (key,)),
                            f"duplicate key '{key}' (first given on line {first_line[key]}); keep one",
                        )
                    )
                    continue
                first_line[key] = line
                walk(value_node, path + (key,))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    walk(root, ())
    return problems


def to_plain(value: Any) -> Any:
    """ruamel's round-trip types as plain dict/list/str/int/float/bool.

    jsonschema checks `bool` by isinstance, which ruamel's ScalarBoolean (an int)
    would fail, and plain values keep ruamel types out of the built Policy."""
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(value, dict):
        return {str(k) if isinstance(k, str) else k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


class Locator:
    """Maps a path in the document to the FILE:LINE:COL where it is written."""

    def __init__(self, document: Document):
        self.file = document.file
        self.data = document.data
        self.lines = document.lines

    def _parent(self, path: DocPath) -> tuple[Any, PathKey] | None:
        """The container holding the last element of `path`, if it exists."""
        node = self.data
        for part in path[:-1]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return None
        return node, path[-1]

    def _position(self, path: DocPath, want_key: bool) -> tuple[int, int] | None:
        if not path:
            return None
        found = self._parent(path)
        if found is None:
            return None
        container, last = found
        try:
            if isinstance(container, dict) and last in container:
                value = container[last]
                # A nested mapping or list is best pointed at by its key; so is an
                # empty value, whose recorded position is the next token's.
                if want_key or value is None or isinstance(value, (dict, list)):
                    return container.lc.key(last)
                return container.lc.value(last)
            if isinstance(container, list) and isinstance(last, int) and 0 <= last < len(container):
                return container.lc.item(last)
        except (AttributeError, KeyError, TypeError):
            return None
        return None

    def _locate(self, path: DocPath, want_key: bool) -> Location:
        # Fall back to the nearest ancestor that exists (e.g. for a missing key).
        for depth in range(len(path), 0, -1):
            position = self._position(path[:depth], want_key or depth < len(path))
            if position is not None:
                line, column = position
                return Location(self.file, line + 1, column + 1)
        return Location(self.file, 1, 1)

    def key(self, path: DocPath) -> Location:
        """Where the key that ends `path` is written (or the list item)."""
        return self._locate(path, want_key=True)

    def value(self, path: DocPath) -> Location:
        """Where the value at `path` is written."""
        return self._locate(path, want_key=False)

    def within(self, path: DocPath, offset: int) -> Location:
        """The character `offset` inside the string value at `path`, when the
        value is on one line and written without escapes; else the value itself."""
        start = self.value(path)
        found = self._parent(path)
        if found is None or not start.line or start.line > len(self.lines):
            return start
        container, last = found
        try:
            text = str(container[last])
        except (KeyError, IndexError, TypeError):
            return start
        line = self.lines[start.line - 1]
        begin = start.column - 1
        if begin < len(line) and line[begin] in "'\"":
            begin += 1
        if line[begin : begin + offset + 1] != text[: offset + 1]:
            return start
        return Location(self.file, start.line, begin + offset + 1)

    def problem(self, path: DocPath, message: str, *, at_key: bool = False) -> Problem:
        location = self.key(path) if at_key else self.value(path)
        return Problem(location, dotted(path), message)
