"""The plan an apply with no changes leaves behind, made again without reading anything while nothing changed.

The hourly job on a store in sync plans, finds nothing to do, applies nothing. The next hour the same plan
follows from the same inputs: the same policy (its digest), the same reconciler, the same directory
content (every directory read as a delta that changed no record) and the same store (its generation,
which triggers move on any write to the tables a plan reads: `Store.generation()`). When all of them are
shown unchanged, the plan is the one kept with that apply, checked against its own digest, with the time,
the safety window (which moves with the clock) and how the directories were read made afresh. Any doubt
(a directory read in full, a store that cannot say its generation, another policy or version, a kept
plan that does not read) means the plan is made as always; nothing here is trusted that was not checked.
"""
from __future__ import annotations

import io
import json
from dataclasses import replace

from ..errors import ReconcilerError
from ..model import Plan, ReadNote
from .document import loads, write

KEY = "<plan>"  # its place among the delta states the store keeps (no directory can be named so)
HEAD = b"reconciler-steady-plan\n"


def keep(plan: Plan, policy_digest: str, version: str, generation: str) -> bytes:
    """What the store keeps with an apply of the empty `plan`: the conditions of its reuse, then the plan."""
    out = io.StringIO()
    write(plan, out)
    header = json.dumps({"generation": generation, "policy": policy_digest, "version": version}, sort_keys=True)
    return HEAD + header.encode() + b"\n" + out.getvalue().encode()


def reuse(blob: bytes | None, *, policy_digest: str, version: str, generation: str | None) -> Plan | None:
    """The kept plan if it was kept for this policy, version and store generation and still reads; else None."""
    if not blob or generation is None or not blob.startswith(HEAD):
        return None
    head, _, document = bytes(blob)[len(HEAD):].partition(b"\n")
    try:
        conditions = json.loads(head)
    except ValueError:
        return None
    if conditions != {"generation": generation, "policy": policy_digest, "version": version}:
        return None
    try:
        plan = loads(document.decode("utf-8"), "the kept plan")
    except (ReconcilerError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        return None  # a kept plan that does not read is made afresh, never a failed plan
    if plan.changes or plan.policy_digest != policy_digest:
        return None
    return plan


def renewed(plan: Plan, *, generated_at: str, notes: list[ReadNote], states: dict[str, bytes], safety) -> Plan:
    """The kept plan as this run's: its time, its reads (saying why nothing was read), its states, its safety."""
    said = [replace(note, reason=f"{note.reason}; nothing changed in the directories or the store since the last "
                                 f"apply, so the plan is the one made then") for note in notes]
    fresh = replace(plan, generated_at=generated_at, reads=said, safety=safety, digest_cache=None)
    fresh.sync_states = states
    return fresh
