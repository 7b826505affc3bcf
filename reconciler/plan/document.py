"""The plan as a JSON document (schemas/plan.schema.json): save and load.

`digest` names a plan: it covers what the plan does (policy, store, counts, changes,
ignored entries, safety verdict) and not how it was looked at, so two runs on the
same inputs give the same digest with or without `--base-policy` (`cause` and
`review` are left out), and `generated_at` is left out too, as is the policy's path
(where the file was for whoever made the plan; its digest says which policy it is).

The digest is unkeyed: it catches a file damaged or edited by mistake, not a forger,
who can recompute it. What protects an apply is that `apply --plan` re-derives the
plan and applies only what the policy, directories and store still produce
(reconciler/plan/saved.py); a signature (RECONCILER_PLAN_KEY) adds provenance.
"""
from __future__ import annotations

import hashlib
import hmac
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


NOT_DIGESTED = ("generated_at", "digest", "signature", "review")


def digested_body(document: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in document.items() if k not in NOT_DIGESTED}
    if isinstance(body.get("policy"), dict):
        body["policy"] = {k: v for k, v in body["policy"].items() if k != "path"}
    changes = body.get("changes")
    if isinstance(changes, list) and any(isinstance(c, dict) and "cause" in c for c in changes):
        body["changes"] = [{k: v for k, v in c.items() if k != "cause"} if isinstance(c, dict) else c for c in changes]
    return body


def content_digest(document: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(digested_body(document)).encode()).hexdigest()


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
        "safety": [c.to_json() for c in plan.safety],
        "refused": plan.refused,
    }
    if plan.review is not None:
        document["review"] = plan.review.to_json()
    if plan.digest_cache is None:
        plan.digest_cache = content_digest(document)
    document["digest"] = plan.digest_cache
    return document


def dumps(plan: Plan, *, key: bytes | None = None) -> str:
    """Stable, reviewable JSON: sorted keys, two-space indent, trailing newline; signed when given a key."""
    document = to_document(plan)
    if key is not None:
        document["signature"] = sign(document["digest"], key)
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def sign(digest: str, key: bytes) -> str:
    """HMAC-SHA256 of the digest, which covers everything a plan does: proof that someone holding the key made it."""
    return "hmac-sha256:" + hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReconcilerError(f"{source}: not a plan: byte {error.start} is not UTF-8; "
                              "make the plan with `reconciler plan --out`") from None


def _schema_problem(document: Any, source: str) -> str | None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(plan_schema())
    error = next(iter(sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "(top)"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{source}: not a valid plan at {where}: {message}; make the plan with `reconciler plan --out`"


def plan_schema() -> dict[str, Any]:
    from importlib import resources

    return json.loads(resources.files("reconciler").joinpath("schemas/plan.schema.json").read_text(encoding="utf-8"))


def loads(text: str, source: str = "plan", *, key: bytes | None = None) -> Plan:
    """A saved plan as the file says it, refused if it is not one of ours, was edited, or (with a key)
    is not signed with it. What the file says is a claim to check, never an instruction: see saved.py."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReconcilerError(f"{source}:{error.lineno}:{error.colno}: not a JSON plan: {error.msg}") from None
    except RecursionError:
        raise ReconcilerError(f"{source}: not a plan: nested too deeply") from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise ReconcilerError(f"{source}: not a reconciler plan of format_version {FORMAT_VERSION}; make it with `reconciler plan --out`")
    problem = _schema_problem(document, source)
    if problem:
        raise ReconcilerError(problem)
    if document["digest"] != content_digest(document):
        raise StalePlan(f"{source} was edited after it was made (its digest does not match); run plan again")
    if key is not None:
        signature = document.get("signature")
        if signature is None:
            raise StalePlan(f"{source} is not signed, and RECONCILER_PLAN_KEY is set: "
                            "only plans made with the key are applied")
        if not hmac.compare_digest(signature, sign(document["digest"], key)):
            raise StalePlan(f"{source} is not signed with RECONCILER_PLAN_KEY "
                            "(made with another key, or edited)")
    return Plan(
        policy_path=document["policy"]["path"],
        policy_digest=document["policy"]["digest"],
        store_kind=document["store"]["kind"],
        store_fingerprint=document["store"]["fingerprint"],
        directories=document["directories"],
        changes=[Change(c["action"], c["kind"], c["key"], c["reason"], c["before"], c["after"], c.get("cause"), c["subject"])
                 for c in document["changes"]],
        ignored=[EntryVerdict(v["directory"], v["dn"], "", v["account_name"], v["email"], v["verdict"], v["reason"])
                 for v in document["ignored"]],
        managed_users=document["managed_users"],
        generated_at=document["generated_at"],
    )


def plan_digest(plan: Plan) -> str:
    """The plan's digest, computed the first time it is asked for (it means serialising the whole plan)."""
    return plan.digest_cache if plan.digest_cache is not None else to_document(plan)["digest"]
