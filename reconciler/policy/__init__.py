"""The sync policy: load, validate, and the JSON Schema it is checked against.

    load_policy(path)     -> Policy, or PolicyError listing every problem
    validate_policy(path) -> every problem as FILE:LINE:COL, sorted
    policy_schema()       -> the JSON Schema (schemas/policy.schema.json)
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import resources

from typing import TYPE_CHECKING

from ..errors import PolicyError, Problem
from .model import Policy

if TYPE_CHECKING:
    from .load import Document

# Loading and checking (ruamel.yaml, jsonschema, ldap3's filter parser) are imported where a policy is
# loaded, not with the package: what only needs the policy's types (model.py), as the store's helper
# process does (store/sql/prefetch.py), starts without them.

__all__ = ["load_policy", "validate_policy", "policy_schema", "Policy", "PolicyError", "Problem"]


@lru_cache(maxsize=1)
def _schema_text() -> str:
    # From the installed package, so it works outside an editable checkout too.
    return resources.files("reconciler").joinpath("schemas/policy.schema.json").read_text(encoding="utf-8")


def policy_schema() -> dict:
    """The policy JSON Schema (a fresh copy each call; callers may change it)."""
    return json.loads(_schema_text())


def _sort(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.location.file, p.location.line, p.location.column, p.message))


def _problems(document: Document) -> list[Problem]:
    from .checks import semantic_problems
    from .load import Locator, to_plain
    from .schema_check import schema_problems

    problems = list(document.problems)
    if document.data is None:
        return _sort(problems)
    locate = Locator(document)
    data = to_plain(document.data)
    folder = os.path.dirname(os.path.abspath(document.file))
    problems += schema_problems(data, policy_schema(), locate)
    problems += semantic_problems(data, locate, folder)
    return _sort(problems)


def validate_policy(path: str | os.PathLike) -> list[Problem]:
    """Every problem of the policy file (YAML, schema, semantics), sorted by
    position; empty when it is valid. A file that cannot be read raises
    ReconcilerError."""
    from .load import read_document

    return _problems(read_document(path))


def load_policy(path: str | os.PathLike) -> Policy:
    """The policy as typed values. Raises PolicyError with every problem, or
    ReconcilerError when the file cannot be read. Secrets stay `${NAME}`
    references until a stage calls `SecretRef.resolve()`."""
    from .build import build_policy
    from .load import Locator, read_document, to_plain

    document = read_document(path)
    problems = _problems(document)
    if problems:
        raise PolicyError(problems)
    folder = os.path.dirname(os.path.abspath(document.file))
    digest = "sha256:" + hashlib.sha256(document.raw).hexdigest()
    return build_policy(to_plain(document.data), Locator(document), folder, document.file, digest)
