"""The policy reference in Markdown, generated from the JSON Schema so the two
cannot drift apart: one row per key path with its type, default and description.

    python -m reconciler.policy.reference > docs/policy-reference.md
"""
from __future__ import annotations

import json
from typing import Any, Iterator

Row = tuple[str, str, str, str]  # key path, type, default, description

TYPE_WORDS = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "object": "mapping",
    "array": "list",
    "null": "null",
}


def _resolve(schema: Any, root: dict) -> dict:
    """Follow a local $ref; sibling keywords (description, default) win over the target's."""
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if not ref:
        return schema
    target: Any = root
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    merged = dict(_resolve(target, root))
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def _type(schema: dict, root: dict) -> str:
    if "title" in schema:
        return schema["title"]
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if schema.get("pattern", "").startswith("^\\$\\{"):
        return "`${NAME}` reference"
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return " or ".join(_type(_resolve(branch, root), root) for branch in alternatives)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(TYPE_WORDS.get(k, k) for k in kind)
    if kind == "array":
        items = _resolve(schema.get("items"), root)
        return f"list of {_type(items, root)}" if items else "list"
    if kind == "string" and "pattern" in schema:
        return f"string matching `{schema['pattern']}`"
    return TYPE_WORDS.get(kind, "any") if kind else "any"


def _rows(schema: dict, root: dict, path: str) -> Iterator[Row]:
    for name, child in (schema.get("properties") or {}).items():
        resolved = _resolve(child, root)
        key = f"{path}.{name}" if path else name
        default = f"`{json.dumps(resolved['default'])}`" if "default" in resolved else ""
        description = resolved.get("description", "")
        yield key, _type(resolved, root), default, description
        yield from _children(resolved, root, key)


def _children(schema: dict, root: dict, key: str) -> Iterator[Row]:
    yield from _rows(schema, root, key)
    for branch in schema.get("oneOf") or schema.get("anyOf") or ():
        yield from _rows(_resolve(branch, root), root, key)
    extra = _resolve(schema.get("additionalProperties"), root)
    if extra:
        # A mapping keyed by names the user chooses (directories, attributes).
        child = f"{key}.<name>"
        yield child, _type(extra, root), "", extra.get("description", "")
        yield from _children(extra, root, child)


def reference_rows(schema: dict) -> list[Row]:
    """Every key path of the policy, in schema order."""
    return list(_rows(schema, schema, ""))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_reference(schema: dict) -> str:
    lines = [
        f"# {schema.get('title', 'Policy')} reference",
        "",
        "Generated from `schemas/policy.schema.json`; do not edit by hand.",
        "",
        _cell(schema.get("description", "")),
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    for key, kind, default, description in reference_rows(schema):
        lines.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from . import policy_schema

    print(render_reference(policy_schema()), end="")
