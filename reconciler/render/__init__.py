"""Plan renderers: one small class per output format, each `render(plan) -> str`."""
from __future__ import annotations

from typing import Protocol

from ..model import Plan


class Renderer(Protocol):
    def render(self, plan: Plan) -> str: ...


def renderer(name: str, *, color: bool = False) -> Renderer:
    if name == "json":
        from .json import JsonRenderer

        return JsonRenderer()
    if name == "markdown":
        from .markdown import MarkdownRenderer

        return MarkdownRenderer()
    from .text import TextRenderer

    return TextRenderer(color=color)


ACTION_WORDS = {
    "create": "create", "adopt": "adopt", "update": "update", "move": "move", "reactivate": "reactivate",
    "deactivate": "deactivate", "delete": "delete", "add": "add", "remove": "remove",
}


def describe_fields(before: dict | None, after: dict | None) -> str:
    """'display_name: "Ann L." → "Ann Lee"' for the fields an update changes."""
    before, after = before or {}, after or {}
    parts = []
    for name in sorted(set(before) | set(after), key=lambda n: (n != "email", n)):
        if name == "key":
            continue
        parts.append(f"{name}: {short(before.get(name))} → {short(after.get(name))}")
    return "; ".join(parts)


def short(value) -> str:
    if value is None:
        return "∅"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
