"""Plan renderers: one small class per output format, each `render(plan) -> str`."""
from __future__ import annotations

from typing import Protocol

from ..model import Change, LimitCheck, Plan


class Renderer(Protocol):
    def render(self, plan: Plan) -> str: ...


def renderer(name: str, *, color: bool = False, artifact_hint: str | None = None) -> Renderer:
    """`artifact_hint` (markdown): where the JSON plan is, e.g. "the `reconciler-plan-42` artifact of this run"."""
    if name == "json":
        from .json import JsonRenderer

        return JsonRenderer()
    if name == "markdown":
        from .markdown import MarkdownRenderer

        return MarkdownRenderer(artifact_hint=artifact_hint) if artifact_hint else MarkdownRenderer()
    from .text import TextRenderer

    return TextRenderer(color=color)




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


def count_words(changes: list[Change]) -> str:
    """"3 user create, 1 team delete": per kind and action, in the order first met."""
    counts: dict[str, int] = {}
    for c in changes:
        name = f"{c.kind} {c.action}"
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def limit_rule(check: LimitCheck) -> str:
    """How the allowed number is reached, and the policy key: "10% (28 of 288 managed users), safety.max_deactivations"."""
    said = "no limit" if check.allowed is None else str(check.allowed)
    return f"{check.rule}, safety.{check.limit}" if check.rule and check.rule != said else f"safety.{check.limit}"


def limit_reason(check: LimitCheck) -> str:
    """"160 deactivations is over the limit of 28 (10% (28 of 288 managed users), safety.max_deactivations)"."""
    return f"{check.planned} {check.noun} is over the limit of {check.allowed} ({limit_rule(check)})"
