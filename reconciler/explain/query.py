"""Who is asked about: the forms `explain WHO` accepts, and which entries they name.

- a DN, in any case and spacing (`cn = Margaret Chen , ou=People,...`);
- `DOMAIN\\user`: the account name `user` in the directory whose domain is DOMAIN, the
  first DC label of its search bases (`corp` of `DC=corp,DC=example,DC=com`, AD's
  NetBIOS name in the usual set-up) or its name in the policy;
- anything else: an email (any `mail`, any `smtp:` of `proxyAddresses`, the
  `userPrincipalName`, or the email the mapping's templates make), an account name,
  or a display name (`displayName` or `cn`), each exact and case-insensitive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

from ..dn import dn_parses, normalise_dn, parse_avas
from ..errors import ReconcilerError
from ..policy.model import Directory, Policy

Form = Literal["dn", "domain", "name"]

# attributes matched for a name, lower-cased -> as written in messages
EMAIL_ATTRIBUTES = {"mail": "mail", "userprincipalname": "userPrincipalName"}
PROXY_ADDRESSES = "proxyaddresses"
DISPLAY_ATTRIBUTES = {"displayname": "displayName", "cn": "cn"}
# entries a name never means: the containers and groups a directory also holds
CONTAINER_CLASSES = frozenset({
    "group", "groupofnames", "groupofuniquenames", "posixgroup", "organizationalunit", "organization",
    "container", "domain", "domaindns", "dcobject", "builtindomain",
})


@dataclass(frozen=True)
class Query:
    text: str  # as given, trimmed
    form: Form
    key: str  # what is compared: the normalised DN, or the account or name case-folded
    domain: str | None = None  # DOMAIN of DOMAIN\user, as written
    account: str | None = None  # user of DOMAIN\user, as written
    directories: tuple[str, ...] = ()  # the directories searched, in policy order

    def searched(self, directories: Sequence[Directory]) -> str:
        """What was looked for where, in words: the body of a 'not found' message."""
        chosen = [d for d in directories if d.name in self.directories]
        where = " or ".join(d.name for d in chosen)
        if self.form == "dn":
            return f"no entry anywhere in {where} has the DN {self.text}"
        accounts = " or ".join(sorted({d.schema.account_name for d in chosen}))
        if self.form == "domain":
            return f"no entry anywhere in {where} (domain {self.domain}) has the {accounts} {self.account}"
        return (f"no entry anywhere in {where} has it as mail, proxyAddresses (smtp:), userPrincipalName, the mapped "
                f"email, {accounts}, displayName or cn")


def domain_label(directory: Directory) -> str | None:
    """The first DC label of the directory's first users search base, lower-cased: `corp`."""
    for base in directory.users.search_bases:
        for attribute, value, _ in parse_avas(base) or ():
            if attribute.lower() == "dc":
                return value.strip().lower()
    return None


def parse_query(who: str, policy: Policy) -> Query:
    text = who.strip()
    everywhere = tuple(d.name for d in policy.directories)
    if "\\" in text and "=" not in text.split("\\", 1)[0]:
        domain, user = text.split("\\", 1)
        if domain and user and "\\" not in user:
            wanted = domain.strip().lower()
            named = tuple(d.name for d in policy.directories if wanted in {d.name.lower(), domain_label(d)})
            if not named:
                known = ", ".join(f"{d.name} ({(domain_label(d) or d.name).upper()})" for d in policy.directories)
                raise ReconcilerError(
                    f"{text}: the domain {domain} names no directory of this policy; the domains are {known} "
                    f"(the first DC label of the search bases, or the directory's name)")
            return Query(text, "domain", user.strip().casefold(), domain=domain, account=user.strip(), directories=named)
    if "=" in text and dn_parses(text):
        return Query(text, "dn", normalise_dn(text), directories=everywhere)
    return Query(text, "name", text.casefold(), directories=everywhere)


def text_values(values: Iterable[str | bytes] | None) -> tuple[str, ...]:
    return tuple(v if isinstance(v, str) else v.decode("utf-8", "replace") for v in values or ())


def is_container(attributes: Mapping[str, Sequence[str]]) -> bool:
    return any(c.casefold() in CONTAINER_CLASSES for c in attributes.get("objectclass", ()))


def matches(query: Query, directory: Directory, dn: str, attributes: Mapping[str, Sequence[str]],
            emails: Iterable[str] = ()) -> list[str]:
    """How the entry answers to the query: the attributes that hold it (as written in messages),
    empty if none. `attributes` are text values by lower-cased name; `emails` the addresses the
    mapping makes of the entry."""
    if directory.name not in query.directories:
        return []
    if query.form == "dn":
        return ["DN"] if normalise_dn(dn) == query.key else []
    account = directory.schema.account_name
    if query.form == "domain":
        hit = any(v.casefold() == query.key for v in attributes.get(account.lower(), ()))
        return [f"{account} in domain {query.domain}"] if hit else []
    if is_container(attributes):
        return []
    key = query.key
    found: list[str] = []
    for name, spelled in EMAIL_ATTRIBUTES.items():
        if any(v.casefold() == key for v in attributes.get(name, ())):
            found.append(spelled)
    if any(v[:5].casefold() == "smtp:" and v[5:].casefold() == key for v in attributes.get(PROXY_ADDRESSES, ())):
        found.append("proxyAddresses")
    if any(e.casefold() == key for e in emails) and not found:
        found.append("email")
    if account.lower() not in EMAIL_ATTRIBUTES and any(v.casefold() == key for v in attributes.get(account.lower(), ())):
        found.append(account)
    for name, spelled in DISPLAY_ATTRIBUTES.items():
        if any(v.casefold() == key for v in attributes.get(name, ())):
            found.append(spelled)
    return found


def by_display_name_only(matched_by: Sequence[str]) -> bool:
    return bool(matched_by) and all(m in DISPLAY_ATTRIBUTES.values() for m in matched_by)


def names_of(directory: Directory, attributes: Mapping[str, Sequence[str]]) -> list[str]:
    """The names a person may be asked by: emails, UPN, account name, display name (for suggestions)."""
    names = [*attributes.get("mail", ()), *attributes.get("userprincipalname", ()),
             *attributes.get(directory.schema.account_name.lower(), ()), *attributes.get("displayname", ())]
    names += [v[5:] for v in attributes.get(PROXY_ADDRESSES, ()) if v[:5].casefold() == "smtp:"]
    return names


def suggestions(query: Query, names: Iterable[str], limit: int = 5) -> list[str]:
    """Close matches (difflib) among `names`, best first, each once: for a DN, the DNs whose first RDN
    value is close to the query's (a DN's long shared suffix would make every DN look close)."""
    import difflib

    from ..dn import first_rdn_value

    spelled: dict[str, list[str]] = {}
    for name in names:
        if name and name.strip():
            key = first_rdn_value(name).casefold() if query.form == "dn" else name.strip().casefold()
            if name.strip() not in spelled.setdefault(key, []):
                spelled[key].append(name.strip())
    key = first_rdn_value(query.text).casefold() if query.form == "dn" else query.key
    close = difflib.get_close_matches(key, list(spelled), n=limit, cutoff=0.75)
    found = list(dict.fromkeys(name for c in close for name in spelled[c]))[:limit]
    if query.form == "domain":
        return [f"{query.domain}\\{name}" for name in found]
    return found
