"""Plan renderers: one small class per output format, each `render(plan) -> str`."""
from __future__ import annotations

from typing import Protocol

from ..model import LimitCheck, Plan


class Renderer(Protocol):
    def render(self, plan: Plan) -> str: ...


def renderer(name: str, *, color: bool = False, artifact_hint: str | None = None, full: bool = False) -> Renderer:
    """`artifact_hint` (markdown): where the JSON plan is, e.g. "the `reconciler-plan-42` artifact of this run".
    `full`: text and Markdown list every change even in a large plan (JSON always does)."""
    if name == "json":
        from .json import JsonRenderer

        return JsonRenderer()
    if name == "markdown":
        from .markdown import MarkdownRenderer

        return MarkdownRenderer(artifact_hint=artifact_hint, full=full) if artifact_hint else MarkdownRenderer(full=full)
    from .text import TextRenderer

    return TextRenderer(color=color, full=full)




def counts_of(changes) -> dict[str, int]:
    """Changes per "kind.action", what summary_words says (for a subset of a plan's changes)."""
    counts: dict[str, int] = {}
    for c in changes:
        name = f"{c.kind}.{c.action}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def changes_words(n: int) -> str:
    """"1 change", "30 changes": the count of a plan's changes, said one way everywhere."""
    return f"{n:,} change" if n == 1 else f"{n:,} changes"


def summary_words(counts: dict[str, int]) -> str:
    """"15 teams to create, 288 users to create": counts per "kind.action" in the words of the change table."""
    from ..changes import BY_KIND_ACTION

    said = []
    for name, n in counts.items():
        kind = BY_KIND_ACTION.get(tuple(name.split(".", 1)))  # type: ignore[arg-type]
        said.append((kind.reading if kind else 99, kind.count(n) if kind is not None else f"{n:,} {name}"))
    return ", ".join(text for _, text in sorted(said, key=lambda item: item[0]))  # in reading order: risky first


def limit_rule(check: LimitCheck) -> str:
    """How the allowed number is reached, and the policy key: "10% (28 of 288 managed users), safety.max_deactivations"."""
    said = "no limit" if check.allowed is None else str(check.allowed)
    return f"{check.rule}, safety.{check.limit}" if check.rule and check.rule != said else f"safety.{check.limit}"


def limit_reason(check: LimitCheck) -> str:
    """"160 deactivations is over the limit of 28 (10% (28 of 288 managed users), safety.max_deactivations)"."""
    return f"{check.planned} {check.noun} is over the limit of {check.allowed} ({limit_rule(check)})"


def read_words(note) -> str:
    """How one directory was read, in the words text and Markdown both use (`model.ReadNote`)."""
    if note.kind == "delta":
        changed = "" if note.changed is None else f"{note.changed:,} record{'' if note.changed == 1 else 's'} changed; "
        return f"{note.directory}: delta read ({changed}{note.reason})"
    return f"{note.directory}: full read ({note.reason})"
