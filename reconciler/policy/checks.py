"""Semantic checks: what the JSON Schema cannot say.

They run even when the schema found problems, so a user sees everything at
once; each check therefore looks only at values of the type it expects and
skips the rest (the schema has already reported those).
Whether an LDAP filter or DN is valid is ldap3's call; the small scanners here
only find *where* it goes wrong, for the message.
"""
from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Iterator
from urllib.parse import urlsplit

from ldap3.core.exceptions import LDAPInvalidDnError, LDAPInvalidFilterError
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn

from ..dn import normalise_dn
from ..errors import Problem
from .load import DocPath, Locator, dotted
from .model import SECRET_REFERENCE, Placement
from .schema_check import bad_reference, did_you_mean

LIVE_KINDS = ("active-directory", "openldap", "389ds", "freeipa")
# An attribute description: a name (with ;options) or a numeric OID.
ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$")


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> Iterator[tuple[int, str]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield index, item


# ───────────────────────────── LDAP filters ─────────────────────────────


def filter_error(text: str) -> tuple[int, str] | None:
    """None when ldap3 accepts the filter; else (0-based offset, what is wrong)."""
    try:
        parse_filter(text, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)
        return None
    except LDAPInvalidFilterError as error:
        reason = str(error)
    return _filter_flaw(text) or (0, reason)


def _filter_flaw(text: str) -> tuple[int, str] | None:
    """Where a filter ldap3 rejected goes wrong, as far as a scanner can tell."""
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return 0, "the filter is empty"
    if text[start] != "(":
        return start, "a filter starts with '(', like (objectClass=user)"
    opened: list[int] = []
    for index, char in enumerate(text):
        if char == "(":
            opened.append(index)
        elif char == ")":
            if not opened:
                return index, "')' closes nothing"
            begin = opened.pop()
            inner = text[begin + 1 : index]
            if "(" not in inner and ")" not in inner:
                flaw = _item_flaw(inner)
                if flaw:
                    return begin, flaw
            if not opened and text[index + 1 :].strip():
                return index + 1, "text after the filter's closing ')'; combine filters with (&...) or (|...)"
    if opened:
        return opened[-1], "'(' is never closed"
    return None


def _item_flaw(inner: str) -> str | None:
    if inner[:1] in ("&", "|", "!"):
        return f"'{inner[0]}' must be followed by filters in parentheses"
    if "=" not in inner:
        return f"'({inner})' has no comparison; write (attribute=value)"
    if inner.startswith("="):
        return f"'({inner})' names no attribute"
    return None


# ───────────────────────────── templates ─────────────────────────────


def template_error(text: str) -> str | None:
    """None for a usable template like '{sAMAccountName}@corp.example.com'."""
    names: list[str] = []
    open_at: int | None = None
    for index, char in enumerate(text):
        if char == "{":
            if open_at is not None:
                return f"unbalanced braces in template '{text}': '{{' inside '{{...}}' at character {index + 1}"
            open_at = index
        elif char == "}":
            if open_at is None:
                return f"unbalanced braces in template '{text}': '}}' without '{{' at character {index + 1}"
            names.append(text[open_at + 1 : index])
            open_at = None
    if open_at is not None:
        return f"unbalanced braces in template '{text}': '{{' at character {open_at + 1} is never closed"
    for name in names:
        if not name.strip():
            return f"template '{text}' has an empty '{{}}'; name an attribute in it, like '{{mail}}'"
        if not ATTRIBUTE_NAME.match(name):
            return f"template '{text}': '{name}' is not an attribute name"
    if not names:
        return (
            f"template '{text}' uses no attribute, so every user would get the same value; "
            "name one in braces, like '{mail}'"
        )
    return None


def _check_mapping(mapping: Any, base: DocPath, locate: Locator) -> list[Problem]:
    problems: list[Problem] = []
    mapping = _mapping(mapping)
    for index, text in _strings(mapping.get("email")):
        problem = template_error(text)
        if problem:
            problems.append(locate.problem(base + ("email", index), problem))
    if isinstance(mapping.get("display_name"), str):
        problem = template_error(mapping["display_name"])
        if problem:
            problems.append(locate.problem(base + ("display_name",), problem))
    for name, text in _mapping(mapping.get("attributes")).items():
        if isinstance(text, str):
            problem = template_error(text)
            if problem:
                problems.append(locate.problem(base + ("attributes", name), problem))
    return problems


# ───────────────────────────── directories ─────────────────────────────


def _split_by_yaml(values: Any) -> bool:
    """[OU=Groups,DC=corp,DC=com] unquoted in a flow list is three items, not one DN:
    a later item that is a lone DC= RDN can only come from such a split."""
    items = [v for _, v in _strings(values)]
    return len(items) > 1 and any(re.fullmatch(r"(?i)\s*dc=[^,]*", v) for v in items[1:])


def _check_dns(values: Any, base: DocPath, locate: Locator) -> list[Problem]:
    if _split_by_yaml(values):
        return [locate.problem(base, "YAML split a DN at its commas: in a [flow, list] a DN must be quoted, "
                                     "e.g. ['OU=Groups,DC=corp,DC=example,DC=com'], or put each DN on its own '- ' line")]
    problems = []
    for index, dn in _strings(values):
        try:
            parse_dn(dn)
        except LDAPInvalidDnError as error:
            problems.append(
                locate.problem(
                    base + (index,),
                    f"invalid DN '{dn}': {error}; write it like OU=People,DC=corp,DC=example,DC=com",
                )
            )
    return problems


def _check_filter(text: Any, path: DocPath, locate: Locator) -> list[Problem]:
    if not isinstance(text, str):
        return []
    error = filter_error(text)
    if error is None:
        return []
    offset, what = error
    return [Problem(locate.within(path, offset), dotted(path), f"invalid LDAP filter: {what} (character {offset + 1})")]


def _check_file(value: Any, path: DocPath, folder: str, what: str, locate: Locator) -> list[Problem]:
    if not isinstance(value, str) or not value:
        return []
    full = os.path.join(folder, value)
    if not os.path.exists(full):
        return [locate.problem(path, f"{what} '{value}' does not exist (relative paths start at the policy file's folder)")]
    if not os.path.isfile(full):
        return [locate.problem(path, f"{what} '{value}' is not a file")]
    return []


def _check_directory(name: str, directory: dict, policy: dict, folder: str, locate: Locator) -> list[Problem]:
    base: DocPath = ("directories", name)
    problems: list[Problem] = []
    kind = directory.get("kind")
    if kind == "entra-id":  # OData filters, group IDs or names, Graph's property names: policy/graph.py
        from .graph import entra_problems

        return (_check_mapping(directory.get("mapping"), base + ("mapping",), locate)
                + entra_problems(name, directory, policy, folder, locate, _check_file))
    users = _mapping(directory.get("users"))
    groups = _mapping(directory.get("groups"))
    problems += _check_dns(users.get("search_bases"), base + ("users", "search_bases"), locate)
    problems += _check_dns(users.get("member_of"), base + ("users", "member_of"), locate)
    problems += _check_dns(groups.get("search_bases"), base + ("groups", "search_bases"), locate)
    problems += _check_filter(users.get("filter"), base + ("users", "filter"), locate)
    problems += _check_filter(groups.get("filter"), base + ("groups", "filter"), locate)
    problems += _check_mapping(directory.get("mapping"), base + ("mapping",), locate)
    if kind == "ldif":
        problems += _check_file(directory.get("path"), base + ("path",), folder, "LDIF snapshot", locate)
    if kind in LIVE_KINDS:
        tls = _mapping(directory.get("tls"))
        problems += _check_file(tls.get("ca_file"), base + ("tls", "ca_file"), folder, "CA file", locate)
        problems += _check_bind(directory, base, locate)
    return problems


def _check_bind(directory: dict, base: DocPath, locate: Locator) -> list[Problem]:
    bind = directory.get("bind")
    if not isinstance(bind, dict):
        return []  # anonymous: no password to protect
    problems = []
    method = bind.get("method", "simple")
    user = bind.get("user")
    if method == "ntlm" and isinstance(user, str) and "\\" not in user:
        problems.append(
            locate.problem(base + ("bind", "user"), "an ntlm bind needs the user as DOMAIN\\user, like 'CORP\\svc-sync'")
        )
    start_tls = _mapping(directory.get("tls")).get("start_tls", True)
    if method == "simple" and start_tls is False and directory.get("allow_insecure_bind") is not True:
        for index, url in _strings(directory.get("urls")):
            if url.lower().startswith("ldap://"):
                problems.append(
                    locate.problem(
                        base + ("urls", index),
                        "a simple bind over ldap:// without StartTLS sends the password in clear; use ldaps://, "
                        "set tls.start_tls: true, or (lab only) allow_insecure_bind: true",
                    )
                )
    return problems


# ───────────────────────────── placement, identity, store ─────────────────────────────


def _check_placement(policy: dict, locate: Locator) -> list[Problem]:
    placement = _mapping(policy.get("placement"))
    mode = placement.get("mode", "root")
    manual = policy.get("manual")
    problems = []
    if mode == "manual" and not manual:
        problems.append(
            locate.problem(
                ("placement", "mode"),
                "mode manual imports only the people listed in manual:, and none are listed; "
                "add manual: [alice@corp.example.com] or choose another mode",
            )
        )
    if mode != "manual" and isinstance(manual, list) and manual:
        problems.append(
            locate.problem(
                ("manual",),
                f"manual: lists people but placement.mode is {mode}, which ignores it; "
                "set placement.mode: manual or remove manual:",
                at_key=True,
            )
        )
    if mode != "target-group" and isinstance(placement.get("target_group"), str):
        problems.append(
            locate.problem(
                ("placement", "target_group"),
                f"target_group is only used with mode target-group, not {mode}; remove it or change the mode",
                at_key=True,
            )
        )
    directories = _mapping(policy.get("directories"))
    if mode == "ou-teams":
        cloud = [str(n) for n, d in directories.items() if _mapping(d).get("kind") == "entra-id"]
        if cloud:
            problems.append(
                locate.problem(
                    ("placement", "mode"),
                    f"mode ou-teams makes teams from the OU path of each DN, and {', '.join(cloud)} (kind entra-id) "
                    "has no OUs; use root, group-teams, target-group or manual",
                )
            )
    if mode == "group-teams":
        # an entra-id directory reads its groups when `groups:` is given (no search bases in Graph)
        if not any(_mapping(_mapping(d).get("groups")).get("search_bases")
                   or (_mapping(d).get("kind") == "entra-id" and isinstance(_mapping(d).get("groups"), dict))
                   for d in directories.values()):
            problems.append(
                locate.problem(
                    ("placement", "mode"),
                    "mode group-teams makes teams from directory groups, but no directory reads groups; "
                    "add groups.search_bases to a directory",
                )
            )
    return problems


def team_path_error(team: str, root: str) -> str | None:
    """None for a usable manual: team path (Sales/EMEA: team names below placement.root, separated by '/')."""
    example = "a team path is team names below placement.root separated by '/', like Sales/EMEA"
    if team.startswith("/") or team.endswith("/"):
        return f"team '{team}' {'starts' if team.startswith('/') else 'ends'} with '/'; {example}"
    names = team.split("/")
    if any(not name.strip() for name in names):
        return f"team '{team}' has an empty name between two '/'; {example}"
    for name in names:
        if name != name.strip():
            edge = "starts" if name != name.lstrip() else "ends"
            return f"team '{team}': '{name}' {edge} with a space; write {'/'.join(n.strip() for n in names)}"
    if names[0].casefold() == root.casefold():
        if len(names) == 1:
            return f"team '{team}' is the root team (placement.root); leave team out to place them there"
        return (f"team '{team}' starts with the root team {root}, but team paths start below placement.root; "
                f"write {'/'.join(names[1:])}")
    return None


def manual_key(who: str) -> str:
    """What makes two manual: entries name the same person: a DN compared as a DN, anything else
    (an email, an account name) case-insensitively, as the desired state matches them."""
    return normalise_dn(who) if "=" in who else who.strip().lower()


def _check_manual(policy: dict, locate: Locator) -> list[Problem]:
    """The entries of manual:: a team path that makes sense, each person once, teams only in mode manual."""
    placement = _mapping(policy.get("placement"))
    mode = placement.get("mode", "root")
    root = placement["root"] if isinstance(placement.get("root"), str) else Placement().root
    entries = policy.get("manual")
    if not isinstance(entries, list):
        return []
    problems: list[Problem] = []
    first: dict[str, tuple[DocPath, str | None]] = {}  # person -> (where first listed, its team)
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            who, team, at = entry, None, ("manual", index)
        elif isinstance(entry, dict) and isinstance(entry.get("who"), str):
            who, team, at = entry["who"], entry.get("team"), ("manual", index, "who")
        else:
            continue  # the schema reports it
        team = team if isinstance(team, str) and team else None  # a team of another type: the schema's
        if team is not None:
            path: DocPath = ("manual", index, "team")
            if mode != "manual":
                problems.append(locate.problem(
                    path, f"team is only used with placement.mode manual, not {mode}; remove it or change the mode",
                    at_key=True))
            problem = team_path_error(team, root)
            if problem:
                problems.append(locate.problem(path, problem))
        if not who.strip():
            if who:  # '' is the schema's
                problems.append(locate.problem(at, "blank; write an email, account name or DN"))
            continue
        key = manual_key(who)
        if key not in first:
            first[key] = (at, team)
            continue
        where, team_before = first[key]
        line = locate.value(where).line
        if team_before == team:
            message = f"'{who}' is listed more than once (first on line {line}); list each person once"
        else:
            message = (f"'{who}' is listed more than once, into different teams ({_team_words(team_before)} on line "
                       f"{line}, {_team_words(team)} here); a person goes into one team: keep one")
        problems.append(locate.problem(at, message))
    return problems


def _team_words(team: str | None) -> str:
    return f"team {team}" if team else "the root team"


def _check_precedence(policy: dict, locate: Locator) -> list[Problem]:
    names = list(_mapping(policy.get("directories")).keys())
    problems = []
    for index, name in _strings(_mapping(policy.get("identity")).get("precedence")):
        if name not in names:
            suggestion = did_you_mean(name, names)
            hint = f"did you mean '{suggestion}'?" if suggestion else f"the directories are: {', '.join(names)}"
            problems.append(
                locate.problem(("identity", "precedence", index), f"no directory is named '{name}'; {hint}")
            )
    return problems


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# libpq's password keyword: in a URL's query (?password=...) or a keyword string (host=... password=...)
PASSWORD_KEYWORD = re.compile(r"(?:^|\s)password\s*=")


def _has_password_keyword(url: str, query: str) -> bool:
    if "://" not in url:  # a libpq keyword/value string
        return PASSWORD_KEYWORD.search(url) is not None
    return any(key.strip().lower() == "password" for key, _, _ in (item.partition("=") for item in query.split("&")))


def _check_store(policy: dict, locate: Locator) -> list[Problem]:
    store = _mapping(policy.get("store"))
    url = store.get("url")
    kind = store.get("kind", "sqlite")
    if kind == "sqlite" or not isinstance(url, str) or SECRET_REFERENCE.match(url):
        return []  # the schema rejects a sqlite url; a reference is only known when resolved
    path: DocPath = ("store", "url")
    if (bad := bad_reference(url)) is not None:
        return [locate.problem(path, bad)]
    try:
        parts = urlsplit(url)
        password, host = parts.password, parts.hostname or ""
    except ValueError:
        return [locate.problem(path, "store url does not parse as a URL")]
    if password is not None or _has_password_keyword(url, parts.query):
        # Never echo the URL: it holds the password.
        return [
            locate.problem(
                path,
                "store url holds a password; put the whole URL in an environment variable and write "
                f"'${{{'SCIM_URL' if kind == 'scim' else 'DATABASE_URL'}}}' (any ${{NAME}}) here",
            )
        ]
    if kind == "scim" and parts.scheme not in ("http", "https"):
        return [locate.problem(path, "a SCIM url starts with https://")]
    if parts.scheme == "http" and not _is_loopback(host):
        return [
            locate.problem(
                path, f"http:// to {host} would send the store's credentials in clear; use https:// (http only to a loopback host)"
            )
        ]
    return []


def semantic_problems(policy: Any, locate: Locator, folder: str) -> list[Problem]:
    """Every semantic problem of a policy document (plain data); `folder` is
    where relative paths start (the policy file's folder)."""
    if not isinstance(policy, dict):
        return []
    problems: list[Problem] = []
    for name, directory in _mapping(policy.get("directories")).items():
        if isinstance(directory, dict):
            problems += _check_directory(str(name), directory, policy, folder, locate)
    problems += _check_mapping(policy.get("mapping"), ("mapping",), locate)
    problems += _check_placement(policy, locate)
    problems += _check_manual(policy, locate)
    problems += _check_precedence(policy, locate)
    problems += _check_store(policy, locate)
    return problems
