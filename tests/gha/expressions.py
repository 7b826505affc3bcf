"""The `${{ }}` expression language of GitHub Actions, as the runner evaluates it.

Follows GitHub's "Evaluate expressions in workflows and actions" and "Contexts reference"
pages, and where they are vague, the runner's own evaluator (actions/runner,
src/Sdk/DTExpressions2): loose equality that coerces to numbers, case-insensitive string
comparison, `&&`/`||` returning an operand, numbers printed with "G15", objects and arrays
turned into the words 'Object' / 'Array' when interpolated into a string, a missing
property giving null, `a.*.b` object filters, and the implicit `success() && (...)` of an
`if:` that calls no status function.

Public entry points: `evaluate`, `interpolate`, `evaluate_value`, `evaluate_if`,
`to_string`, `truthy`, and `Context` (what an expression can see).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

__all__ = ["Context", "ExpressionError", "CaseSensitiveDict", "evaluate", "evaluate_if",
           "evaluate_value", "interpolate", "to_string", "truthy", "loose_equal"]

STATUS_FUNCTIONS = {"success", "failure", "always", "cancelled"}


class ExpressionError(Exception):
    """The expression is malformed, or uses a context or function not available where it is."""


class CaseSensitiveDict(dict):
    """A context whose keys are matched exactly: the runner keeps `env` case-sensitive on
    Linux, while every other context (and every object inside one) is case-insensitive."""


class FilteredArray(list):
    """The result of a `*` object filter: further property access applies to each item."""


@dataclass
class Context:
    """What an expression can see: the named contexts available at this place of the
    workflow (`github`, `env`, `steps`, ...), the status that `success()`/`failure()`
    report (the job's, or inside a composite action the action's own), whether status
    functions are allowed here (only in `if:`), and the workspace `hashFiles` searches."""

    values: dict[str, Any] = field(default_factory=dict)
    status: str = "success"
    status_functions: bool = False
    workspace: Path | None = None


# ── values ──

def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"


def _parse_number(text: str) -> float:
    text = text.strip()
    if not text:
        return 0.0
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        return float(text)
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return float(int(text[2:], 16))
    if re.fullmatch(r"0o[0-7]+", text):
        return float(int(text[2:], 8))
    return math.nan


def to_number(value: Any) -> float:
    kind = _kind(value)
    if kind == "null":
        return 0.0
    if kind == "boolean":
        return 1.0 if value else 0.0
    if kind == "number":
        return float(value)
    if kind == "string":
        return _parse_number(value)
    return math.nan


def _format_number(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return format(float(number), ".15g").replace("e", "E")  # .NET's "G15"


def to_string(value: Any) -> str:
    """How the runner turns a value into text (in `${{ }}` interpolation and string functions)."""
    kind = _kind(value)
    if kind == "null":
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return _format_number(value)
    if kind == "string":
        return value
    return "Array" if kind == "array" else "Object"


def truthy(value: Any) -> bool:
    kind = _kind(value)
    if kind == "null":
        return False
    if kind == "boolean":
        return value
    if kind == "number":
        return not (value == 0 or math.isnan(value))
    if kind == "string":
        return value != ""
    return True


def _coerce(left: Any, right: Any) -> tuple[Any, Any]:
    """The runner's CoerceTypes: number vs string parses the string; a boolean or null on
    either side becomes a number and the comparison is re-coerced."""
    lk, rk = _kind(left), _kind(right)
    if lk == rk:
        return left, right
    if lk == "number" and rk == "string":
        return left, to_number(right)
    if lk == "string" and rk == "number":
        return to_number(left), right
    if lk in ("boolean", "null"):
        return _coerce(to_number(left), right)
    if rk in ("boolean", "null"):
        return _coerce(left, to_number(right))
    return left, right


def loose_equal(left: Any, right: Any) -> bool:
    left, right = _coerce(left, right)
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "null":
        return True
    if kind == "number":
        return not (math.isnan(left) or math.isnan(right)) and float(left) == float(right)
    if kind == "string":
        return left.casefold() == right.casefold()
    if kind == "boolean":
        return left == right
    return left is right  # objects and arrays: only the same instance


def _greater(left: Any, right: Any) -> bool:
    left, right = _coerce(left, right)
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "number":
        return not (math.isnan(left) or math.isnan(right)) and float(left) > float(right)
    if kind == "string":
        return left.casefold() > right.casefold()
    if kind == "boolean":
        return left and not right
    return False


def _less(left: Any, right: Any) -> bool:
    return _greater(right, left)


def _lookup(container: Any, key: Any) -> tuple[bool, Any]:
    """Property or index access: (found, value)."""
    if isinstance(container, dict):
        if _kind(key) in ("array", "object"):
            return False, None
        name = to_string(key)
        if name in container:
            return True, container[name]
        if not isinstance(container, CaseSensitiveDict):
            folded = name.casefold()
            for candidate, value in container.items():
                if isinstance(candidate, str) and candidate.casefold() == folded:
                    return True, value
        return False, None
    if isinstance(container, (list, tuple)):
        number = to_number(key)
        if math.isnan(number) or number < 0 or math.floor(number) >= len(container):
            return False, None
        return True, container[math.floor(number)]
    return False, None


def _get(container: Any, key: Any) -> Any:
    """Anything missing is null, never an error."""
    return _lookup(container, key)[1]


def _filter(container: Any, key: Any, wildcard: bool) -> Any:
    if isinstance(container, FilteredArray):
        result = FilteredArray()
        for item in container:
            if wildcard:
                if isinstance(item, dict):
                    result.extend(item.values())
                elif isinstance(item, (list, tuple)):
                    result.extend(item)
            else:
                found, value = _lookup(item, key)
                if found:
                    result.append(value)
        return result
    if wildcard:
        if isinstance(container, dict):
            return FilteredArray(container.values())
        if isinstance(container, (list, tuple)):
            return FilteredArray(container)
        return FilteredArray()
    return _get(container, key)


# ── lexer and parser ──

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?(?:0x[0-9a-fA-F]+|0o[0-7]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))(?![\w-])
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,*])
  | (?P<word>[A-Za-z_][A-Za-z0-9_-]*)
""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ExpressionError(f"Unexpected symbol: '{text[pos:]}'. Located at position {pos + 1} "
                                  f"within expression: {text}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group()
        if kind == "ws":
            continue
        if kind == "string":
            tokens.append(("lit", value[1:-1].replace("''", "'")))
        elif kind == "number":
            number = _parse_number(value.lstrip("-"))
            number = -number if value.startswith("-") else number
            tokens.append(("lit", int(number) if number.is_integer() else number))
        elif kind == "word" and value in ("true", "false", "null"):
            tokens.append(("lit", {"true": True, "false": False, "null": None}[value]))
        else:
            tokens.append((kind, value))
    tokens.append(("end", None))
    return tokens


class _Parser:
    """Recursive descent, lowest precedence first: || , && , == != , < <= > >= , ! ,
    postfix (.name [index] .*), primary. The tree is nested tuples."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self):
        if self.tokens[0][0] == "end":
            raise ExpressionError("Expected an expression")
        node = self._or()
        if self._peek()[0] != "end":
            raise self._error()
        return node

    def _peek(self):
        return self.tokens[self.pos]

    def _take(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _accept(self, op: str) -> bool:
        if self._peek() == ("op", op):
            self.pos += 1
            return True
        return False

    def _expect(self, op: str):
        if not self._accept(op):
            raise self._error()

    def _error(self) -> ExpressionError:
        kind, value = self._peek()
        shown = "end of expression" if kind == "end" else repr(value)
        return ExpressionError(f"Unexpected {shown} in expression: {self.text}")

    def _or(self):
        node = self._and()
        while self._accept("||"):
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._equality()
        while self._accept("&&"):
            node = ("and", node, self._equality())
        return node

    def _equality(self):
        node = self._comparison()
        while self._peek() in (("op", "=="), ("op", "!=")):
            node = ("cmp", self._take()[1], node, self._comparison())
        return node

    def _comparison(self):
        node = self._unary()
        while self._peek() in (("op", "<"), ("op", "<="), ("op", ">"), ("op", ">=")):
            node = ("cmp", self._take()[1], node, self._unary())
        return node

    def _unary(self):
        if self._accept("!"):
            return ("not", self._unary())
        return self._postfix()

    def _postfix(self):
        node = self._primary()
        while True:
            if self._accept("."):
                kind, value = self._take()
                if kind == "word":
                    node = ("index", node, ("lit", value))
                elif (kind, value) == ("op", "*"):
                    node = ("star", node)
                elif kind == "lit" and isinstance(value, (bool, type(None))):  # a.true, a.null
                    node = ("index", node, ("lit", to_string(value) or "null"))
                else:
                    self.pos -= 1
                    raise self._error()
            elif self._accept("["):
                if self._accept("*"):
                    node = ("star", node)
                else:
                    node = ("index", node, self._or())
                self._expect("]")
            else:
                return node

    def _primary(self):
        kind, value = self._take()
        if kind == "lit":
            return ("lit", value)
        if (kind, value) == ("op", "("):
            node = self._or()
            self._expect(")")
            return node
        if kind == "word":
            if self._accept("("):
                args = []
                if not self._accept(")"):
                    args.append(self._or())
                    while self._accept(","):
                        args.append(self._or())
                    self._expect(")")
                return ("call", value, args)
            return ("ctx", value)
        self.pos -= 1
        raise self._error()


def _parse(text: str):
    return _Parser(text).parse()


def _calls_status_function(node) -> bool:
    if node[0] == "call":
        return node[1].lower() in STATUS_FUNCTIONS or any(_calls_status_function(arg) for arg in node[2])
    return any(_calls_status_function(child) for child in node[1:] if isinstance(child, tuple))


# ── evaluation ──

def _format(fmt: str, args: list[Any]) -> str:
    out, i = [], 0
    while i < len(fmt):
        char = fmt[i]
        if char == "{" and fmt.startswith("{{", i):
            out.append("{")
            i += 2
        elif char == "}" and fmt.startswith("}}", i):
            out.append("}")
            i += 2
        elif char == "{":
            end = fmt.find("}", i)
            index = fmt[i + 1:end] if end > 0 else ""
            if not index.isdigit() or int(index) >= len(args):
                raise ExpressionError(f"The following format string is invalid: {fmt}")
            out.append(to_string(args[int(index)]))
            i = end + 1
        elif char == "}":
            raise ExpressionError(f"The following format string is invalid: {fmt}")
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _json_ready(value: Any) -> Any:
    """Whole floats print as integers, as the runner's (double-based) toJSON does."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _hash_files(workspace: Path | None, patterns: list[str]) -> str:
    """The runner's hashFiles: sha256 over the sha256 of each matching file under the
    workspace; '' when nothing matches."""
    if workspace is None:
        raise ExpressionError("hashFiles is not available here")
    root = Path(workspace).resolve()
    included: set[Path] = set()
    for pattern in patterns:
        negate = pattern.startswith("!")
        matches = {Path(p).resolve() for p in glob(str(root / pattern.lstrip("!")), recursive=True)}
        included = included - matches if negate else included | matches
    digest, found = hashlib.sha256(), False
    for path in sorted(included):
        if path.is_file() and root in path.parents:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
            found = True
    return digest.hexdigest() if found else ""


def _arity(name: str, args: list, low: int, high: int):
    if not low <= len(args) <= high:
        raise ExpressionError(f"Function '{name}' expects {low}"
                              f"{'' if low == high else f' to {high}'} argument(s), got {len(args)}")


def _call(name: str, args: list, ctx: Context) -> Any:
    lname = name.lower()
    if lname in STATUS_FUNCTIONS:
        if not ctx.status_functions:
            raise ExpressionError(f"Unrecognized function: '{name}' (status functions are only allowed in if:)")
        _arity(name, args, 0, 0)
        return {"success": ctx.status == "success", "failure": ctx.status == "failure",
                "always": True, "cancelled": ctx.status == "cancelled"}[lname]
    values = [_eval(arg, ctx) for arg in args]
    if lname == "contains":
        _arity(name, values, 2, 2)
        haystack, needle = values
        if _kind(haystack) in ("array",) or isinstance(haystack, FilteredArray):
            return any(loose_equal(needle, item) for item in haystack)
        if _kind(haystack) in ("object",) or _kind(needle) in ("array", "object"):
            return False
        return to_string(needle).casefold() in to_string(haystack).casefold()
    if lname in ("startswith", "endswith"):
        _arity(name, values, 2, 2)
        text, affix = values
        if _kind(text) in ("array", "object") or _kind(affix) in ("array", "object"):
            return False
        text, affix = to_string(text).casefold(), to_string(affix).casefold()
        return text.startswith(affix) if lname == "startswith" else text.endswith(affix)
    if lname == "format":
        _arity(name, values, 1, 255)
        return _format(to_string(values[0]), values[1:])
    if lname == "join":
        _arity(name, values, 1, 2)
        items = values[0]
        separator = to_string(values[1]) if len(values) > 1 and _kind(values[1]) not in ("array", "object") else ","
        if _kind(items) == "array":
            return separator.join(to_string(item) for item in items)
        return "" if _kind(items) == "object" else to_string(items)
    if lname == "tojson":
        _arity(name, values, 1, 1)
        return json.dumps(_json_ready(values[0]), indent=2, ensure_ascii=False)
    if lname == "fromjson":
        _arity(name, values, 1, 1)
        try:
            return json.loads(to_string(values[0]))
        except ValueError as exc:
            raise ExpressionError(f"Error parsing fromJson: {exc}") from None
    if lname == "hashfiles":
        _arity(name, values, 1, 255)
        return _hash_files(ctx.workspace, [to_string(v) for v in values])
    raise ExpressionError(f"Unrecognized function: '{name}'")


def _eval(node, ctx: Context) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "ctx":
        for name, value in ctx.values.items():
            if name.lower() == node[1].lower():
                return value
        raise ExpressionError(f"Unrecognized named-value: '{node[1]}'. Available here: "
                              f"{', '.join(sorted(ctx.values))}")
    if op == "index":
        return _filter(_eval(node[1], ctx), _eval(node[2], ctx), wildcard=False)
    if op == "star":
        return _filter(_eval(node[1], ctx), None, wildcard=True)
    if op == "not":
        return not truthy(_eval(node[1], ctx))
    if op == "and":
        left = _eval(node[1], ctx)
        return _eval(node[2], ctx) if truthy(left) else left
    if op == "or":
        left = _eval(node[1], ctx)
        return left if truthy(left) else _eval(node[2], ctx)
    if op == "cmp":
        left, right = _eval(node[2], ctx), _eval(node[3], ctx)
        return {"==": lambda: loose_equal(left, right), "!=": lambda: not loose_equal(left, right),
                "<": lambda: _less(left, right), ">": lambda: _greater(left, right),
                "<=": lambda: loose_equal(left, right) or _less(left, right),
                ">=": lambda: loose_equal(left, right) or _greater(left, right)}[node[1]]()
    if op == "call":
        return _call(node[1], node[2], ctx)
    raise AssertionError(node)


def evaluate(expression: str, ctx: Context) -> Any:
    """Evaluate one expression (the text inside `${{ }}`)."""
    return _eval(_parse(expression), ctx)


# ── `${{ }}` in strings ──

def _split(text: str) -> list[tuple[str, str]]:
    """Split a string into ('text', ...) and ('expr', ...) parts. The closing `}}` is the
    first one outside a single-quoted string literal."""
    parts, pos = [], 0
    while True:
        start = text.find("${{", pos)
        if start < 0:
            if pos < len(text):
                parts.append(("text", text[pos:]))
            return parts
        if start > pos:
            parts.append(("text", text[pos:start]))
        i, quoted = start + 3, False
        while i < len(text):
            if text[i] == "'":
                quoted = not quoted  # '' inside a literal toggles twice: harmless
            elif not quoted and text.startswith("}}", i):
                break
            i += 1
        else:
            raise ExpressionError(f"The expression is not closed. An unescaped ${{{{ sequence was found, "
                                  f"but the closing }}}} sequence was not found: {text[start:]}")
        parts.append(("expr", text[start + 3:i]))
        pos = i + 2


def evaluate_value(value: Any, ctx: Context) -> Any:
    """A YAML value: a string that is exactly one `${{ }}` keeps the expression's type
    (so `continue-on-error: ${{ false }}` is a boolean); other strings are interpolated;
    non-strings are returned as they are."""
    if not isinstance(value, str):
        return value
    parts = _split(value)
    if len(parts) == 1 and parts[0][0] == "expr":
        return evaluate(parts[0][1], ctx)
    return "".join(part if kind == "text" else to_string(evaluate(part, ctx)) for kind, part in parts)


def interpolate(value: Any, ctx: Context) -> str:
    """A YAML value as the string the runner hands on (run scripts, `with:`, `env:`, names)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return to_string(value)
    return to_string(evaluate_value(value, ctx))


def evaluate_if(condition: Any, ctx: Context) -> bool:
    """An `if:`: with or without `${{ }}`; without a status function it means
    `success() && (<condition>)`. A value that is `${{ }}` mixed with other text is a
    string (always true unless empty), exactly the trap GitHub documents."""
    ctx = Context(ctx.values, ctx.status, True, ctx.workspace)
    if condition is None or (isinstance(condition, str) and not condition.strip()):
        return ctx.status == "success"
    if isinstance(condition, bool):
        condition = "true" if condition else "false"
    condition = str(condition)
    parts = _split(condition)
    if len(parts) == 1 and parts[0][0] == "expr":
        condition, parts = parts[0][1], []
    if parts and any(kind == "expr" for kind, _ in parts):
        trees = [_parse(part) for kind, part in parts if kind == "expr"]
        value = "".join(part if kind == "text" else to_string(_eval(_parse(part), ctx)) for kind, part in parts)
        guarded = any(_calls_status_function(tree) for tree in trees)
        return truthy(value) and (guarded or ctx.status == "success")
    tree = _parse(condition)
    if not _calls_status_function(tree):
        tree = ("and", ("call", "success", []), tree)
    return truthy(_eval(tree, ctx))
