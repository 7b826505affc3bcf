"""The plan as a JSON document (schemas/plan.schema.json): save, load, and prove it unedited.

`digest` covers everything but `generated_at` and itself, so two runs on the same
inputs produce the same digest, and any edit to a saved plan is detected.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import ReconcilerError, StalePlan
from ..model import Change, EntryVerdict, Plan

FORMAT_VERSION = 1


def _verdict_json(v: EntryVerdict) -> dict[str, Any]:
    return {"directory": v.directory, "dn": v.dn, "account_name": v.account_name, "email": v.email,
            "verdict": v.verdict, "reason": v.reason}


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_digest(document: dict[str, Any]) -> str:
    body = {k: v for k, v in document.items() if k not in ("generated_at", "digest")}
    return "sha256:" + hashlib.sha256(canonical(body).encode()).hexdigest()


def to_document(plan: Plan) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "generated_at": plan.generated_at,
        "policy": {"path": plan.policy_path, "digest": plan.policy_digest},
        "store": {"kind": plan.store_kind, "fingerprint": plan.store_fingerprint},
        "managed_users": plan.managed_users,
        "directories": plan.directories,
        "summary": plan.summary,
        "changes": [c.to_json() for c in plan.changes],
        "ignored": [_verdict_json(v) for v in plan.ignored],
    }
    document["digest"] = content_digest(document)
    return document


def dumps(plan: Plan) -> str:
    """Stable, reviewable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(to_document(plan), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def loads(text: str, source: str = "plan") -> Plan:
    """A saved plan, refused if it is not one of ours or was edited after it was made."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReconcilerError(f"{source}:{error.lineno}:{error.colno}: not a JSON plan: {error.msg}") from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise ReconcilerError(f"{source}: not a reconciler plan of format_version {FORMAT_VERSION}; make it with `reconciler plan --out`")
    if document.get("digest") != content_digest(document):
        raise StalePlan(f"{source}: the plan file was edited after it was made (its digest does not match); run plan again")
    try:
        return Plan(
            policy_path=document["policy"]["path"],
            policy_digest=document["policy"]["digest"],
            store_kind=document["store"]["kind"],
            store_fingerprint=document["store"]["fingerprint"],
            directories=document["directories"],
            changes=[Change(c["action"], c["kind"], c["key"], c["reason"], c.get("before"), c.get("after"), c.get("cause"), c.get("subject", ""))
                     for c in document["changes"]],
            ignored=[EntryVerdict(v["directory"], v["dn"], "", v.get("account_name"), v.get("email"), v["verdict"], v["reason"])
                     for v in document["ignored"]],
            managed_users=document["managed_users"],
            generated_at=document.get("generated_at", ""),
        )
    except (KeyError, TypeError) as error:
        raise ReconcilerError(f"{source}: plan is missing {error}; make it with `reconciler plan --out`") from None


def plan_digest(plan: Plan) -> str:
    return to_document(plan)["digest"]
