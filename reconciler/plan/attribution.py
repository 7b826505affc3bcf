"""What a policy edit changes, apart from drift.

Both policies are planned against the same directories and store; a change in
the new plan that the base plan would also make is "pending" regardless of the
edit, every other change is caused by the edit ("policy").
"""
from __future__ import annotations

from dataclasses import replace

from ..model import Plan


def identity(change) -> tuple:
    return (change.kind, change.action, change.key, repr(change.after))


def attribute(plan: Plan, base: Plan) -> Plan:
    pending = {identity(c) for c in base.changes}
    marked = [replace(c, cause="pending" if identity(c) in pending else "policy") for c in plan.changes]
    return replace(plan, changes=marked)
