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
import io
import json
from typing import Any, TextIO

from ..errors import ReconcilerError, StalePlan
from ..model import Change, EntryVerdict, Person, Plan, ReadNote

FORMAT_VERSION = 1


def _verdict_json(v: EntryVerdict) -> dict[str, Any]:
    return {"directory": v.directory, "dn": v.dn, "account_name": v.account_name, "email": v.email,
            "verdict": v.verdict, "reason": v.reason}


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# `reads` says how the directories were read (full or delta): a plan made from a delta read is the plan a full
# read makes, so a reviewed plan stays the applied one whichever kind of read each made
NOT_DIGESTED = ("generated_at", "digest", "signature", "review", "reads")


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


def _top(plan: Plan) -> dict[str, Any]:
    """Every part of the document but the changes and the digest (and the signature)."""
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "generated_at": plan.generated_at,
        "policy": {"path": plan.policy_path, "digest": plan.policy_digest},
        "store": {"kind": plan.store_kind, "fingerprint": plan.store_fingerprint},
        "managed_users": plan.managed_users,
        "directories": plan.directories,
        "summary": plan.summary,
        "ignored": [_verdict_json(v) for v in plan.ignored],
        "safety": [c.to_json() for c in plan.safety],
        "refused": plan.refused,
        "context": {"teams": plan.teams, "people": {key: p.to_json() for key, p in plan.people.items()}},
    }
    if plan.review is not None:
        document["review"] = plan.review.to_json()
    if plan.warnings:  # only when there are some: plans without any keep the digest they always had
        document["warnings"] = list(plan.warnings)
    if plan.reads:  # only with directories that have `delta:`
        document["reads"] = [note.to_json() for note in plan.reads]
    return document


def to_document(plan: Plan) -> dict[str, Any]:
    document = _top(plan)
    document["changes"] = [c.to_json() for c in plan.changes]
    document["digest"] = plan_digest(plan, document)
    return document


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
CHUNK = 1_000  # changes encoded per call: the encoder's cost per call is most of its cost per small change


def plan_digest(plan: Plan, top: dict[str, Any] | None = None) -> str:
    """The plan's digest, computed the first time it is asked for and kept on the plan.

    It is the digest of the canonical text of `digested_body`, hashed as it is produced: the top-level
    keys in sorted order, the changes a thousand at a time, so no text of the whole plan is ever held
    (at a million changes that string alone is 600 MB). tests/unit/test_plan_document.py holds it equal
    to `content_digest` of the document computed the plain way."""
    if plan.digest_cache is None:
        digest = _Digest(top if top is not None else _top(plan))
        for start in range(0, len(plan.changes), CHUNK):
            chunk = [_digested(c.to_json()) for c in plan.changes[start:start + CHUNK]]
            digest.changes(_CANONICAL.encode(chunk)[1:-1])
        plan.digest_cache = digest.done()
    return plan.digest_cache


class _Digest:
    """sha256 of the canonical body, fed the changes' canonical text as it comes."""

    def __init__(self, top: dict[str, Any]):
        self.body = digested_body({k: v for k, v in top.items() if k != "changes"})
        self.hash = hashlib.sha256(b'{"changes":[')  # "changes" sorts first among the digested keys
        self.first = True
        assert min([*self.body, "changes"]) == "changes"

    def changes(self, text: str) -> None:
        if text:
            self.hash.update((("" if self.first else ",") + text).encode())
            self.first = False

    def done(self) -> str:
        self.hash.update(b"]")
        for name in sorted(self.body):
            self.hash.update(("," + json.dumps(name) + ":" + canonical(self.body[name])).encode())
        self.hash.update(b"}")
        return "sha256:" + self.hash.hexdigest()


def _digested(change: dict[str, Any]) -> dict[str, Any]:
    change.pop("cause", None)
    return change


def write(plan: Plan, out: TextIO, *, key: bytes | None = None) -> None:
    """The document as stable, reviewable JSON: sorted keys, two-space indent, and each change and each
    ignored entry on a line of its own, in canonical form (a diff of two plans is a diff of changes);
    signed when given a key. Written as it is produced, the digest computed on the way when it is not
    known yet: a large plan is never one string in memory."""
    top = _top(plan)
    digest = None if plan.digest_cache is not None else _Digest(top)
    names = sorted([*top, "changes", "digest", *(["signature"] if key is not None else [])])
    out.write("{\n")
    for index, name in enumerate(names):
        out.write(f"  {json.dumps(name)}: ")
        if name == "changes":
            first = True
            for change in plan.changes:
                data = change.to_json()
                line = _CANONICAL.encode(data)
                if digest is not None:
                    digest.changes(line if "cause" not in data else _CANONICAL.encode(_digested(data)))
                out.write(("[\n    " if first else ",\n    ") + line)
                first = False
            out.write("[]" if first else "\n  ]")
            if digest is not None:
                plan.digest_cache = digest.done()  # "changes" is written first: the digest is known from here on
        elif name == "ignored":
            out.write(("[\n    " + ",\n    ".join(_CANONICAL.encode(v) for v in top[name]) + "\n  ]") if top[name] else "[]")
        else:
            value = plan_digest(plan) if name == "digest" else sign(plan_digest(plan), key) if name == "signature" \
                else top[name]  # type: ignore[arg-type]
            out.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).replace("\n", "\n  "))
        out.write(",\n" if index < len(names) - 1 else "\n")
    out.write("}\n")


def dumps(plan: Plan, *, key: bytes | None = None) -> str:
    """`write` into a string."""
    buffer = io.StringIO()
    write(plan, buffer, key=key)
    return buffer.getvalue()


def sign(digest: str, key: bytes) -> str:
    """HMAC-SHA256 of the digest, which covers everything a plan does: proof that someone holding the key made it."""
    return "hmac-sha256:" + hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReconcilerError(f"{source}: not a plan: byte {error.start} is not UTF-8; "
                              "make the plan with `reconciler plan --out`") from None


_COMPILED: Any = None


def _valid_fast(document: Any) -> bool:
    """The schema compiled with fastjsonschema, which knows drafts up to 7: the plan schema uses no keyword
    that 2020-12 reads otherwise ($defs is reached by a plain JSON pointer), and tests/unit/test_plan_schema_fast.py
    holds the two validators to the same verdict on valid and damaged plans."""
    global _COMPILED
    import fastjsonschema

    if _COMPILED is None:
        _COMPILED = fastjsonschema.compile({**plan_schema(), "$schema": "http://json-schema.org/draft-07/schema#"})
    try:
        _COMPILED(document)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _schema_problem(document: Any, source: str) -> str | None:
    if _valid_fast(document):  # nearly always: jsonschema, 40 times slower, only to word what is wrong
        return None
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
        warnings=list(document.get("warnings") or []),
        reads=[ReadNote.from_json(note) for note in document.get("reads") or []],
        teams=dict(document["context"]["teams"]),
        people={key: Person(p["name"], p["email"], p["team"], tuple(sorted(p["attributes"].items())))
                for key, p in document["context"]["people"].items()},
    )
