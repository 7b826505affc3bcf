"""Reading a policy file: bytes, YAML with positions, duplicate keys.

ruamel.yaml's round-trip loader keeps the line and column of every key and
value, so every later problem can be reported as FILE:LINE:COL. `Locator`
turns a path in the document (('directories', 'corp', 'urls', 0)) into such
a `Location`.

Limits, checked before anything walks the document (a policy is a few KB and a
few hundred nodes; these are far above any real one, and far below what hurts):

- MAX_BYTES (1 MiB): a larger file is refused before it is parsed.
- MAX_NODES (100,000): the document's nodes, counting every alias as a full copy
  of what it names (as every later walk and the schema check would see it), are
  counted while composing; the first node that takes the count past the limit is
  refused at its position. This stops an alias bomb (nested lists of aliases,
  each level multiplying the one below) after reading a few hundred bytes, while
  ordinary anchors and aliases (`&defaults` ... `<<: *defaults`) keep working.
- An alias used inside the node it names (a recursive structure) is refused.
- MAX_DEPTH (64): deeper nesting is refused instead of exhausting the stack.

Each refusal is one `FILE:LINE:COL: ...` problem (the size: `FILE: ...`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from ..errors import Location, Problem, ReconcilerError

MAX_BYTES = 1024 * 1024  # a policy is a few KB
MAX_NODES = 100_000  # nodes with every alias counted as a copy; a policy has a few hundred
MAX_DEPTH = 64  # nesting; a policy nests about 5 deep

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
            raw = handle.read(MAX_BYTES + 1)  # never more: the size limit holds for pipes and devices too
    except FileNotFoundError:
        raise ReconcilerError(f"{file}: policy file not found; check the path") from None
    except IsADirectoryError:
        raise ReconcilerError(f"{file}: is a folder, not a policy file") from None
    except OSError as error:
        raise ReconcilerError(f"{file}: cannot read the policy file: {error.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ReconcilerError(_too_large(file))
    return parse_document(file, raw)


def _too_large(file: str) -> str:
    return (f"{file}: the policy file is larger than {MAX_BYTES // (1024 * 1024)} MiB, the most a policy may be "
            f"(a policy is a few KB); check that this is the policy file")


class LimitExceeded(MarkedYAMLError):
    """The document passes a limit of the module docstring; reported at its position, without 'invalid YAML'."""


class _CountingComposer(Composer):
    """ruamel's composer, counting nodes as they are composed with every alias as a full copy of what it
    names (memoised per node, so counting is linear in what is written), and the nesting depth."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader=loader)
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, for every finished node
        self._nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            mark = self.parser.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise LimitExceeded(None, None, "an alias is used inside the node it names (a recursive structure); "
                                    "a policy cannot be recursive", mark)
            return node
        mark = self.parser.peek_event().start_mark
        self._nesting += 1
        if self._nesting > MAX_DEPTH:
            raise LimitExceeded(None, None, f"nested more than {MAX_DEPTH} levels deep; a policy nests a few levels", mark)
        node = super().compose_node(parent, index)
        self._nesting -= 1
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._sizes[id(item)] for item in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(self._sizes[id(key)] + self._sizes[id(value)] for key, value in node.value)
        else:
            size = 1
        if size > MAX_NODES:
            raise LimitExceeded(None, None, f"the document has more than {MAX_NODES:,} values when its aliases are "
                                f"expanded (a policy has a few hundred); use fewer aliases", mark)
        self._sizes[id(node)] = size
        return node


def parse_document(file: str, raw: bytes) -> Document:
    if len(raw) > MAX_BYTES:
        return Document(file, raw, None, (Problem(Location(file), "", _too_large(file)[len(file) + 2:]),))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return Document(file, raw, None, (Problem(Location(file, line, 1), "", "the file is not UTF-8 text"),))

    problems: list[Problem] = []
    try:
        # Duplicate keys are found on the node tree, which keeps them all; the
        # loader below then keeps the first value so the rest can still be checked.
        # The counting composer enforces the limits before anything walks the tree.
        composer = YAML(typ="rt")
        composer.Composer = _CountingComposer
        problems.extend(_duplicate_keys(file, composer.compose(text)))
        loader = YAML(typ="rt")
        loader.allow_duplicate_keys = True
        loader.preserve_quotes = True
        data = loader.load(text)
    except LimitExceeded as error:
        mark = error.problem_mark
        return Document(file, raw, None, (Problem(Location(file, mark.line + 1, mark.column + 1), "", error.problem),))
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
