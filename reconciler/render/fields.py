"""Field-level changes between two user records: only what differs, attributes one by one.

`field_changes({"attributes": {"department": "Sales", "title": "Account Executive"}},
               {"attributes": {"department": "Sales", "title": "Account Manager"}})`
is one change, `title: Account Executive → Account Manager`; the unchanged department
is not repeated. It runs on the few records a plan changes, and agrees with DeepDiff
on them (tests/unit/test_fields.py holds it against `DeepDiff(..., ignore_order=True)`
over generated records), at a fraction of its cost per record.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NONE = "(none)"
LABELS = {"display_name": "display name"}  # how a field is named to a reader
TOP_LEVEL = ("email", "display_name", "attributes", "team", "links", "status")


@dataclass(frozen=True)
class FieldChange:
    """One value that changes. `path` is ("title",) for the attribute title, ("display_name",) for a
    field; links, a set, change by members: `old` holds those removed and `new` those added."""

    path: tuple[str, ...]
    old: Any
    new: Any

    @property
    def label(self) -> str:
        if self.path[0] == "attributes":
            name = self.path[1]
            return f"attribute {name}" if name in TOP_LEVEL or name in LABELS.values() else name
        return LABELS.get(self.path[0], self.path[0])

    def text(self, team_name: Callable[[str | None], str] = lambda key: key or NONE) -> str:
        if self.path == ("links",):
            parts = ([f"+ {', '.join(self.new)}"] if self.new else []) + ([f"− {', '.join(self.old)}"] if self.old else [])
            return f"links: {'; '.join(parts)}"
        if self.path == ("team",):
            return f"team: {team_name(self.old)} → {team_name(self.new)}"
        return f"{self.label}: {show(self.old)} → {show(self.new)}"


def show(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """What differs between two (partial) user records, field by field, in a stable order: top-level
    fields in their record order, attributes by name."""
    out: list[FieldChange] = []
    for name in sorted(set(before) | set(after), key=lambda n: (TOP_LEVEL.index(n) if n in TOP_LEVEL else 99, n)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name == "attributes" and isinstance(old or {}, dict) and isinstance(new or {}, dict):
            old, new = old or {}, new or {}
            for attribute in sorted(set(old) | set(new)):
                if old.get(attribute) != new.get(attribute):
                    out.append(FieldChange(("attributes", attribute), old.get(attribute), new.get(attribute)))
        elif name == "links" and isinstance(old or [], list) and isinstance(new or [], list):
            removed = sorted(set(old or []) - set(new or []))
            added = sorted(set(new or []) - set(old or []))
            if removed or added:
                out.append(FieldChange(("links",), removed, added))
        else:
            out.append(FieldChange((name,), old, new))
    return out
