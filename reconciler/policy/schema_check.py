"""JSON Schema validation of a policy, with jsonschema's errors turned into
one human line each, at the FILE:LINE:COL of the offending key or value.

Values are echoed only where they cannot be secrets (enum values, key names):
a password in the wrong place must not end up in CI logs.
An `errorMessage` in the schema (the convention yaml-language-server also
reads) replaces the generic text for pattern, const, not and oneOf failures.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..errors import Problem
from .load import DocPath, Locator, dotted

TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "null",
}

# YAML 1.1 booleans that YAML 1.2 (ruamel's default) reads as strings.
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def describe_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def schema_problems(data: Any, schema: dict, locator: Locator) -> list[Problem]:
    validator = Draft202012Validator(schema)
    problems: dict[tuple, Problem] = {}
    for error in validator.iter_errors(data):
        for problem in _translate(error, locator):
            problems.setdefault((problem.location, problem.path, problem.message), problem)
    return list(problems.values())


def _custom_message(error: ValidationError) -> str | None:
    schema = error.schema
    if isinstance(schema, dict) and isinstance(schema.get("errorMessage"), str):
        return schema["errorMessage"]
    return None


def _translate(error: ValidationError, locator: Locator) -> list[Problem]:
    path: DocPath = tuple(error.absolute_path)
    instance = error.instance
    kind = error.validator
    custom = _custom_message(error)

    if "propertyNames" in error.schema_path:
        # jsonschema reports a bad key name at the mapping; the name is the instance.
        name = str(instance)
        return [locator.problem(path + (name,), f"'{name}' is not a valid name: {custom or error.message}", at_key=True)]

    if kind == "required":
        missing = [name for name in error.validator_value if isinstance(instance, dict) and name not in instance]
        reason = f": {custom}" if custom else ""
        return [
            Problem(locator.key(path), dotted(path + (name,)), f"missing required key '{name}'{reason}")
            for name in missing
        ]

    if kind == "additionalProperties":
        allowed = list((error.schema.get("properties") or {}).keys())
        problems = []
        for name in instance:
            if name in allowed:
                continue
            suggestion = did_you_mean(str(name), allowed)
            hint = f"did you mean '{suggestion}'?" if suggestion else f"allowed here: {', '.join(sorted(allowed))}"
            problems.append(locator.problem(path + (name,), f"unknown key '{name}'; {hint}", at_key=True))
        return problems

    if kind == "not":
        # `not: {}` marks a key that is not allowed in this case; the key is what to point at.
        return [locator.problem(path, custom or "this key is not allowed here", at_key=True)]

    if kind in ("oneOf", "anyOf"):
        return _translate_alternatives(error, locator, custom)

    if kind == "pattern" and isinstance(instance, str) and (bad := bad_reference(instance)):
        return [locator.problem(path, bad)]

    if kind == "uniqueItems" and isinstance(instance, list):
        for index, item in enumerate(instance):
            if item in instance[:index]:
                return [locator.problem(path + (index,), f"'{item}' is listed more than once")]

    return [locator.problem(path, _message(error, custom))]


def _translate_alternatives(error: ValidationError, locator: Locator, custom: str | None) -> list[Problem]:
    """A mapping or list that matched the right branch by type but failed inside
    it (a typo in a key) is best reported from inside that branch."""
    path: DocPath = tuple(error.absolute_path)
    if isinstance(error.instance, (dict, list)):
        inner = [
            sub
            for sub in error.context or []
            if not (sub.validator == "type" and not sub.relative_path)
        ]
        if inner:
            return [problem for sub in inner for problem in _translate(sub, locator)]
    return [locator.problem(path, custom or "does not match any of the allowed forms")]


def _message(error: ValidationError, custom: str | None) -> str:
    kind = error.validator
    expected = error.validator_value
    instance = error.instance
    if kind == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(TYPE_NAMES.get(name, name) for name in names)
        message = f"expected {wanted}, got {describe_type(instance)}"
        if "boolean" in names and isinstance(instance, str) and instance.lower() in YAML11_BOOLEANS:
            message += f" (YAML 1.2 reads {instance} as text; write true or false)"
        return message
    if kind == "enum":
        choices = [str(choice) for choice in expected]
        message = f"must be one of {', '.join(choices)}"
        if isinstance(instance, str):
            suggestion = did_you_mean(instance, choices)
            message = f"'{instance}' is not allowed; " + (f"did you mean '{suggestion}'? " if suggestion else "") + message
        return message
    if custom and kind in ("pattern", "const"):
        return custom
    if kind == "const":
        return f"must be {expected!r}"
    if kind == "pattern":
        return f"does not have the expected form (pattern {expected})"
    if kind == "minItems":
        return "must not be empty" if expected == 1 else f"must list at least {expected} items"
    if kind == "minProperties":
        return "must not be empty" if expected == 1 else f"must have at least {expected} keys"
    if kind == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    if kind == "minimum":
        return f"must be at least {expected}"
    if kind == "maximum":
        return f"must be at most {expected}"
    if kind == "exclusiveMinimum":
        return f"must be more than {expected}"
    return custom or f"is not valid here ({kind})"


def bad_reference(value: str) -> str | None:
    """What is wrong with a `${...}` that is not a valid reference (`${1ABC}`, `${A-B}`): it is meant as one,
    so calling it "a literal" would mislead. None when it does not look like a reference at all."""
    if not (value.startswith("${") and value.endswith("}")):
        return None
    return (f"'{value}' is not a valid variable name: a ${{NAME}} reference names an environment variable of "
            "letters, digits and _ that does not start with a digit")
