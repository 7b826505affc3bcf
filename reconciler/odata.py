"""OData `$filter` expressions as Microsoft Graph takes them on directory objects: parsed, and
evaluated on objects as Graph returns them (JSON with camelCase property names).

A live read sends the policy's filter to Graph, which evaluates it; this module evaluates it
where no Graph answers: an offline snapshot (`kind: entra-id` with `snapshot:`), the tests'
fake Graph, and `validate`'s syntax check. It covers what directory filters use:

- comparisons `eq ne gt ge lt le` of a property with a literal ('text' with '' for a quote,
  true, false, null, numbers, and bare literals such as 2024-01-31T00:00:00Z or a GUID);
- `in ('a', 'b')`, `and`, `or`, `not`, parentheses;
- `startswith(property, 'text')`, `endswith(property, 'text')`;
- `collection/any(x: x eq 'v')` and `all`, with startswith/endswith inside, and
  `x/property` for collections of objects;
- nested properties (`onPremisesExtensionAttributes/extensionAttribute1`).

Graph compares strings of directory objects case-insensitively, and so does this. `$count`
segments and functions Graph has but directory filters rarely use raise `Unsupported`.

`needs_advanced_query` says whether Graph answers the filter only as an "advanced query"
(the `ConsistencyLevel: eventual` header with `$count=true`): `ne`, `not` and `endswith`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

KEYWORDS = {"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "true", "false", "null"}
COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
FUNCTIONS = {"startswith", "endswith"}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<open>\()
  | (?P<close>\))
  | (?P<comma>,)
  | (?P<colon>:)
  | (?P<slash>/)
  | (?P<count>\$count)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<bare>[0-9+-][0-9A-Za-z:.+-]*)
""", re.VERBOSE)


class FilterError(ValueError):
    """The text is not a filter this module can read; `offset` is where it goes wrong (0-based)."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


class Unsupported(FilterError):
    """A filter Graph may take that the offline evaluator does not (a `$count` segment, another function)."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def tokens(text: str) -> list[Token]:
    found: list[Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            if text[at] == "'":
                raise FilterError("a quote is never closed (write '' for a quote inside text)", at)
            raise FilterError(f"unexpected character {text[at]!r}", at)
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(Token(kind, match.group(), at))
        at = match.end()
    return found


Predicate = Callable[[Any], bool]


@dataclass
class Filter:
    text: str
    matches: Predicate  # object (a dict as Graph returns it) -> whether it passes
    advanced: bool = False  # Graph needs ConsistencyLevel: eventual and $count=true for it
    properties: set[str] = field(default_factory=set)  # the top-level properties it reads, as written


def parse(text: str) -> Filter:
    """The filter, ready to evaluate; FilterError (or Unsupported) naming where it goes wrong."""
    parser = _Parser(text, tokens(text))
    if not parser.items:
        raise FilterError("the filter is empty", 0)
    predicate = parser.expression()
    if parser.at < len(parser.items):
        token = parser.items[parser.at]
        raise FilterError(f"unexpected {token.text!r}; combine conditions with and / or", token.offset)
    return Filter(text, predicate, parser.advanced, parser.properties)


def needs_advanced_query(text: str) -> bool:
    """Whether Graph takes the filter only as an advanced query; True when it cannot be parsed here
    (Graph is then asked the way that accepts the most)."""
    try:
        return parse(text).advanced
    except FilterError:
        return True


def syntax_problem(text: str) -> tuple[int, str] | None:
    """(offset, what) for a filter no OData parser would take: an unclosed quote or parenthesis, an
    LDAP filter written where OData is expected; None otherwise (Graph has the last word on the rest)."""
    stripped = text.strip()
    if not stripped:
        return 0, "the filter is empty"
    if stripped.startswith("(") and re.search(r"\([A-Za-z][\w-]*[~<>]?=", stripped) and " eq " not in stripped:
        return 0, "this is an LDAP filter; Microsoft Graph takes OData, like accountEnabled eq true"
    try:
        items = tokens(text)
    except FilterError as error:
        return error.offset, error.message
    depth: list[int] = []
    for token in items:
        if token.kind == "open":
            depth.append(token.offset)
        elif token.kind == "close":
            if not depth:
                return token.offset, "')' closes nothing"
            depth.pop()
    if depth:
        return depth[-1], "'(' is never closed"
    try:
        parse(text)
    except Unsupported:
        return None
    except FilterError as error:
        return error.offset, error.message
    return None


# ───────────────────────────── evaluation helpers ─────────────────────────────


def lookup(value: Any, name: str) -> Any:
    """A property of an object, by name in any case (Graph's names are case-insensitive)."""
    if not isinstance(value, dict):
        return None
    if name in value:
        return value[name]
    folded = name.lower()
    for key, item in value.items():
        if key.lower() == folded:
            return item
    return None


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, list):  # a collection compared directly: any of its items
        return any(_compare(op, item, right) for item in left)
    left, right = _fold(left), _fold(right)
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str, items: list[Token]):
        self.text = text
        self.items = items
        self.at = 0
        self.advanced = False
        self.properties: set[str] = set()
        self.variables: list[str] = []  # lambda variables in scope, innermost last

    # ── tokens ──
    def peek(self) -> Token | None:
        return self.items[self.at] if self.at < len(self.items) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError("the filter ends too early", len(self.text))
        self.at += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise FilterError(f"expected {what}, found {token.text!r}", token.offset)
        return token

    # ── grammar ──
    def expression(self) -> Predicate:
        left = self.conjunction()
        while (token := self.peek()) is not None and token.word == "or":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda o: a(o) or b(o))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.negation()
        while (token := self.peek()) is not None and token.word == "and":
            self.take()
            right = self.negation()
            left = (lambda a, b: lambda o: a(o) and b(o))(left, right)
        return left

    def negation(self) -> Predicate:
        token = self.peek()
        if token is not None and token.word == "not":
            self.take()
            self.advanced = True
            inner = self.negation()
            return lambda o: not inner(o)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.peek()
        if token is None:
            raise FilterError("the filter ends too early", len(self.text))
        if token.kind == "open":
            self.take()
            inner = self.expression()
            self.expect("close", "')'")
            return inner
        if token.kind == "word" and token.word in FUNCTIONS and self._next_is_open():
            return self.function()
        if token.kind != "word" or token.word in KEYWORDS:
            raise FilterError(f"expected a property name, found {token.text!r}", token.offset)
        getter, collection = self.path()
        if collection is not None:
            return collection
        operator = self.take()
        if operator.word in COMPARISONS:
            if operator.word == "ne":
                self.advanced = True
            value = self.literal()
            op = operator.word
            return lambda o: _compare(op, getter(o), value)
        if operator.word == "in":
            self.expect("open", "'(' after in")
            values = [self.literal()]
            while (nxt := self.take()).kind == "comma":
                values.append(self.literal())
            if nxt.kind != "close":
                raise FilterError(f"expected ',' or ')', found {nxt.text!r}", nxt.offset)
            folded = {_fold(v) for v in values}
            return lambda o: (any(_fold(v) in folded for v in got) if isinstance(got := getter(o), list)
                              else _fold(got) in folded)
        raise FilterError(f"expected eq, ne, gt, ge, lt, le or in after the property, found {operator.text!r}",
                          operator.offset)

    def _next_is_open(self) -> bool:
        return self.at + 1 < len(self.items) and self.items[self.at + 1].kind == "open"

    def function(self) -> Predicate:
        name = self.take().word
        if name == "endswith":
            self.advanced = True
        self.expect("open", "'('")
        getter, collection = self.path()
        if collection is not None:
            raise Unsupported(f"{name} takes a property, not a lambda", self.items[self.at - 1].offset)
        self.expect("comma", "','")
        value = self.literal()
        self.expect("close", "')'")
        if not isinstance(value, str):
            raise FilterError(f"{name} compares with text in quotes", self.items[self.at - 2].offset)
        wanted = value.casefold()
        test = str.startswith if name == "startswith" else str.endswith

        def matches(o):
            got = getter(o)
            values = got if isinstance(got, list) else [got]
            return any(isinstance(v, str) and test(v.casefold(), wanted) for v in values)

        return matches

    def path(self) -> tuple[Callable[[Any], Any], Predicate | None]:
        """A property path; for `path/any(...)` also the lambda's predicate."""
        first = self.take()
        names = [first.text]
        variable = first.text if first.text in self.variables else None
        if variable is None:
            self.properties.add(first.text)
        while (token := self.peek()) is not None and token.kind == "slash":
            self.take()
            segment = self.take()
            if segment.kind == "count":
                raise Unsupported("a $count segment is evaluated by Graph only", segment.offset)
            if segment.kind != "word":
                raise FilterError(f"expected a property name after '/', found {segment.text!r}", segment.offset)
            if segment.word in ("any", "all") and (nxt := self.peek()) is not None and nxt.kind == "open":
                getter = self._getter(names, variable)
                return getter, self.lambda_(segment.word, getter)
            names.append(segment.text)
        return self._getter(names, variable), None

    def _getter(self, names: list[str], variable: str | None) -> Callable[[Any], Any]:
        def get(o):
            value = o.get(variable) if variable is not None else o
            for name in names[1:] if variable is not None else names:
                value = [lookup(v, name) for v in value] if isinstance(value, list) else lookup(value, name)
            return value

        return get

    def lambda_(self, kind: str, getter: Callable[[Any], Any]) -> Predicate:
        self.expect("open", "'('")
        name = self.expect("word", "a variable name").text
        self.expect("colon", "':'")
        self.variables.append(name)
        inner = self.expression()
        self.variables.pop()
        self.expect("close", "')'")
        combine = any if kind == "any" else all

        def matches(o):
            values = getter(o)
            if not isinstance(values, list):
                values = [] if values is None else [values]
            return combine(inner({**(o if isinstance(o, dict) else {}), name: v}) for v in values)

        return matches

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "word" and token.word in ("true", "false"):
            return token.word == "true"
        if token.kind == "word" and token.word == "null":
            return None
        if token.kind == "bare" or token.kind == "word":
            text = token.text
            try:
                return int(text)
            except ValueError:
                pass
            try:
                return float(text)
            except ValueError:
                return text  # a date-time, a GUID: compared as text
        raise FilterError(f"expected a value ('text', true, false, null or a number), found {token.text!r}", token.offset)
