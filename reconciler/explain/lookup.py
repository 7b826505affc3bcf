"""Finding a person anywhere in a directory, not only in what the plan read, and the two answers
that need the directory itself: the filter clause by clause, and the path of nested groups.

- `SnapshotLookup` (kind ldif): the whole snapshot is at hand; the filter is evaluated by the
  snapshot's own `SnapshotSearch`, the groups walked in its membership graph.
- `LiveLookup` (active-directory, openldap, 389ds, freeipa): bounded searches of the server's naming contexts
  by name, and base reads by DN (`EntryLookup`); the entry read is put in a one-entry
  `SnapshotSearch` and the filter evaluated on the client by the same evaluator the LDIF source
  uses; groups are walked upwards from the entry (its memberOf, the groups whose member
  attributes name it, and the posixGroups whose memberUid holds its account name, in any
  case, or its DN), cycle-safe and bounded.

`how_to` says how each group on the path names the one below it: None for a member DN,
`memberUid alice` for a posixGroup's account name.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Mapping, Sequence

from ..desired.templates import email_of
from ..directory.entries import lower_keys, template_attributes, value_text
from ..directory.filters import IN_CHAIN, Clause, SnapshotSearch, filter_attributes
from ..directory.membership import MEMBER_OF, Membership, is_dn_value
from ..dn import normalise_dn, parse_avas, unescape_value
from ..policy.model import Directory, Template
from .query import EMAIL_ATTRIBUTES, PROXY_ADDRESSES, Query, is_container, matches, names_of

# a name search on a live server returns at most this many entries; more is said to be more
FIND_LIMIT = 20
# the upward walk through nested groups on a live server stops after this many groups
GROUP_WALK_LIMIT = 500


@dataclass
class Found:
    """An entry found for the query: its DN, its attributes as text by lower-cased name (raw values
    kept for the filter), and how it answers to the query."""

    directory: Directory
    dn: str
    attributes: dict[str, tuple[str, ...]]
    matched_by: list[str]
    raw: Mapping[str, Sequence[str | bytes]] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return normalise_dn(self.dn)

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name.lower())
        return values[0] if values else None


def text_attributes(attributes: Mapping[str, Sequence[str | bytes] | None]) -> dict[str, tuple[str, ...]]:
    return {name: tuple(value_text(name, v) for v in values or ()) for name, values in lower_keys(attributes).items()}


def mapped_email(directory: Directory, attributes: Mapping[str, Sequence[str]]) -> str | None:
    return email_of(directory.mapping, SimpleNamespace(attributes=attributes))[0]  # type: ignore[arg-type]


def path_up(graph: Membership, member: str, group: str) -> list[str] | None:
    """The groups from `member`'s direct group up to `group` (normalised DNs), breadth-first so the
    shortest nesting is named; [group] for a direct member; None if `member` is not in it. Cycle-safe."""
    target = normalise_dn(group)
    previous: dict[str, str | None] = {}
    queue = deque()
    for parent in sorted(graph.direct_groups(member)):
        previous.setdefault(parent, None)
        queue.append(parent)
    while queue:
        node = queue.popleft()
        if node == target:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])  # type: ignore[arg-type]
            return list(reversed(path))
        for parent in sorted(graph.direct_groups(node)):
            if parent not in previous:
                previous[parent] = node
                queue.append(parent)
    return None


def path_via(graph: Membership, member: str, path: list[str]) -> list[str | None]:
    """For each group of `path` (from path_up), how it names the one below it (`member` for the first):
    None for a member DN, `memberUid alice` for an account name."""
    below = [member, *path[:-1]]
    return [graph.via(group, child) for group, child in zip(path, below)]


class SnapshotLookup:
    """Kind ldif: every entry of the snapshot."""

    def __init__(self, directory: Directory):
        from ..directory.ldif.source import LdifSource

        self.directory = directory
        self.snapshot = LdifSource(directory).snapshot()
        self.source = f"the snapshot {directory.path}"
        self.truncated = False

    def close(self) -> None:
        pass

    def _found(self, key: str, matched_by: list[str]) -> Found:
        dn, attributes, _line = self.snapshot.records[key]
        return Found(self.directory, dn, text_attributes(attributes), matched_by, attributes)

    def find(self, query: Query, also: Mapping[str, tuple[str, list[str]]]) -> list[Found]:
        """Entries answering to `query`, and those of `also` (normalised DN -> (DN, how the plan's
        verdicts matched them))."""
        found: dict[str, Found] = {}
        records = self.snapshot.records
        if self.directory.name not in query.directories:
            pass
        elif query.form == "dn":
            if query.key in records:
                found[query.key] = self._found(query.key, ["DN"])
        else:
            compared = _names_compared(self.directory) if query.form == "name" else \
                (self.directory.schema.account_name.lower(),)
            smtp = "smtp:" + query.key
            templates = tuple(template_attributes(self.directory.mapping)) if "@" in query.key else ()
            for key, (dn, attributes, _line) in records.items():
                named = any(v.casefold() in (query.key, smtp) for name in compared for v in _text(name, attributes.get(name)))
                if not named and templates:  # the email the mapping makes: rendered only for an address
                    email = mapped_email(self.directory, {n: _text(n, attributes.get(n)) for n in templates})
                    named = email == query.key
                if not named:
                    continue
                full = text_attributes(attributes)
                email = mapped_email(self.directory, full)
                hit = matches(query, self.directory, dn, full, [email] if email else [])
                if hit:
                    found[key] = Found(self.directory, dn, full, hit, attributes)
        for key, (_dn, how) in also.items():
            if key not in found and key in records:
                found[key] = self._found(key, how)
        return [found[key] for key in sorted(found)]

    def clause(self, entry: Found) -> Clause:
        return self.snapshot.search.explain(entry.dn, self.directory.users.filter)

    def path_to(self, entry: Found, group: str) -> list[str] | None:
        path = path_up(self.snapshot.search.membership, entry.key, group)
        return [self._spell(key) for key in path] if path is not None else None

    def how_to(self, entry: Found, group: str) -> list[str | None]:
        """How each group of `path_to`'s path names the one below it (see `path_via`)."""
        graph = self.snapshot.search.membership
        return path_via(graph, entry.key, path_up(graph, entry.key, group) or [])

    def _spell(self, key: str) -> str:
        record = self.snapshot.records.get(key)
        return record[0] if record else key

    def names(self, query: Query) -> list[str]:
        """What a close match is looked for among."""
        names: list[str] = []
        for dn, attributes, _line in self.snapshot.records.values():
            if query.form == "dn":
                names.append(dn)
                continue
            text = {name: _text(name, attributes.get(name)) for name in _names_compared(self.directory)}
            if query.form == "domain":
                names += text.get(self.directory.schema.account_name.lower(), ())
            elif not is_container(text):
                names += names_of(self.directory, text)
        return names


def _names_compared(directory: Directory) -> tuple[str, ...]:
    return ("objectclass", *EMAIL_ATTRIBUTES, PROXY_ADDRESSES, directory.schema.account_name.lower(),
            "displayname", "cn")


def _text(name: str, values) -> tuple[str, ...]:
    return tuple(value_text(name, v) for v in values or ())


class LiveLookup:
    """Kinds active-directory, openldap, 389ds and freeipa: bounded reads from the server (`EntryLookup`)."""

    def __init__(self, directory: Directory):
        from ..directory.ldap.source import LiveSource

        self.directory = directory
        self.lookup = LiveSource(directory).open_lookup()
        self.source = self.lookup.url
        self.truncated = False
        self._graphs: dict[str, tuple[Membership, list[tuple[str, str]]]] = {}
        self._spelled: dict[str, str] = {}

    def close(self) -> None:
        self.lookup.close()

    def attributes_read(self) -> tuple[str, ...]:
        """Every user attribute, and by name what `*` leaves out on some servers (operational ones:
        entryUUID, memberOf and pwdAccountLockedTime on OpenLDAP) and what the filter tests."""
        schema = self.directory.schema
        names = {"*", schema.anchor, schema.account_name, schema.disabled.attribute, "memberOf", "objectClass",
                 *template_attributes(self.directory.mapping), *filter_attributes(self.directory.users.filter)}
        return tuple(sorted(names, key=str.lower))

    def _found(self, raw, matched_by: list[str]) -> Found:
        # an attribute sent without values comes as None (ldap3's raw_attributes): no values
        attributes = {name: list(values) for name, values in
                      lower_keys({name: values or [] for name, values in raw.attributes.items()}).items()}
        return Found(self.directory, raw.dn, text_attributes(attributes), matched_by, attributes)

    def find(self, query: Query, also: Mapping[str, tuple[str, list[str]]]) -> list[Found]:
        from ldap3.utils.conv import escape_filter_chars

        found: dict[str, Found] = {}
        wanted = self.attributes_read()
        if self.directory.name not in query.directories:
            pass
        elif query.form == "dn":
            raw = self.lookup.read(query.key, wanted)  # RFC 4514 spelled, not as typed: servers refuse ' , '
            if raw is not None:
                found[normalise_dn(raw.dn)] = self._found(raw, ["DN"])
        else:
            if query.form == "domain":
                ldap_filter = f"({self.directory.schema.account_name}={escape_filter_chars(query.account or '')})"
            else:
                ldap_filter = name_filter(self.directory, query.text)
            for context in self.lookup.naming_contexts():
                entries, truncated = self.lookup.search(context, ldap_filter, wanted, limit=FIND_LIMIT)
                self.truncated |= truncated
                for raw in entries:
                    entry = self._found(raw, [])
                    email = mapped_email(self.directory, entry.attributes)
                    entry.matched_by = matches(query, self.directory, raw.dn, entry.attributes, [email] if email else [])
                    if entry.matched_by:
                        found.setdefault(entry.key, entry)
        for key, (dn, how) in also.items():
            if key not in found:
                raw = self.lookup.read(dn, wanted)
                if raw is not None:
                    found[key] = self._found(raw, how)
        return [found[key] for key in sorted(found)]

    def clause(self, entry: Found) -> Clause:
        search = SnapshotSearch(self.directory.flavour, self.directory.schema.member)
        search.add(entry.dn, entry.raw)
        if IN_CHAIN in self.directory.users.filter:  # nesting, as the server would follow it
            _graph, edges = self._walk(entry)
            for group, member in edges:
                search.membership.add(group, member)
        return search.explain(entry.dn, self.directory.users.filter)

    def path_to(self, entry: Found, group: str) -> list[str] | None:
        graph, _edges = self._walk(entry)
        path = path_up(graph, entry.key, group)
        return [self._spelled.get(key, key) for key in path] if path is not None else None

    def how_to(self, entry: Found, group: str) -> list[str | None]:
        graph, _edges = self._walk(entry)
        return path_via(graph, entry.key, path_up(graph, entry.key, group) or [])

    def _walk(self, entry: Found) -> tuple[Membership, list[tuple[str, str]]]:
        """The groups above the entry: its memberOf values, and each group whose member attributes
        name it, then the same for each group reached; each group once (cycles end), at most
        GROUP_WALK_LIMIT groups."""
        if entry.key in self._graphs:
            return self._graphs[entry.key]
        from ldap3.utils.conv import escape_filter_chars

        graph, edges = Membership(), []
        member_of: dict[str, Sequence[str | bytes]] = {entry.key: entry.raw.get(MEMBER_OF, ())}
        seen = {entry.key}
        queue = deque([(entry.key, entry.dn)])
        while queue and len(seen) <= GROUP_WALK_LIMIT:
            key, dn = queue.popleft()
            parents: dict[str, str] = {}
            for value in member_of.pop(key, ()) or ():
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                parents.setdefault(normalise_dn(text), text)
            ldap_filter = "(|" + "".join(f"({name}={escape_filter_chars(dn)})" for name in self.directory.schema.member) + ")"
            for context in self.lookup.naming_contexts():
                groups, _ = self.lookup.search(context, ldap_filter, ("memberOf",), limit=GROUP_WALK_LIMIT)
                for raw in groups:
                    group = normalise_dn(raw.dn)
                    parents.setdefault(group, raw.dn)
                    member_of.setdefault(group, lower_keys(raw.attributes).get(MEMBER_OF, ()))
            via = self._named_by_uid(entry, key, dn, parents, member_of)
            for parent, spelled in sorted(parents.items()):
                graph.add(parent, key, via.get(parent))
                edges.append((parent, key))
                self._spelled.setdefault(parent, spelled)
                if parent not in seen:
                    seen.add(parent)
                    queue.append((parent, spelled))
        self._graphs[entry.key] = (graph, edges)
        return graph, edges

    def _named_by_uid(self, entry: Found, key: str, dn: str, parents: dict[str, str],
                      member_of: dict[str, Sequence[str | bytes]]) -> dict[str, str]:
        """The groups whose memberUid-like attributes name `key` (the entry by its account name, any case,
        or any group on the way by its DN), added to `parents`; group -> how (`memberUid alice`). The
        server compares memberUid case-exactly, so groups holding the name are asked with the server's
        case-ignoring rule as well; each answer is checked here."""
        from ldap3.utils.conv import escape_filter_chars

        attributes = self.directory.schema.member_uid
        if not attributes:
            return {}
        accounts = list(entry.attributes.get(self.directory.schema.account_name.lower(), ())) if key == entry.key else []
        avas = parse_avas(dn) or []
        # the DN as the server spells it, and as some tools write it (a space after each comma)
        spaced = "".join(f"{a}={v}" + ("+" if separator == "+" else ", ") for a, v, separator in avas)[:-2]
        names = list(dict.fromkeys([dn, *([spaced] if avas else []), *accounts]))
        items = [f"({a}={escape_filter_chars(n)})" for a in attributes for n in names]
        items += [f"({a}:caseIgnoreIA5Match:={escape_filter_chars(n)})" for a in attributes for n in names]
        if avas:  # the DN spelled otherwise still: its first value, then compared as a DN
            items += [f"({a}=*{escape_filter_chars(unescape_value(avas[0][1]))}*)" for a in attributes]
        before = set(parents)
        via: dict[str, str] = {}
        folded = {n.casefold() for n in accounts}
        for context in self.lookup.naming_contexts():
            groups, _ = self.lookup.search(context, "(|" + "".join(items) + ")", ("memberOf", *attributes),
                                           limit=GROUP_WALK_LIMIT)
            for raw in groups:
                values = lower_keys(raw.attributes)
                for attribute in attributes:
                    for value in values.get(attribute.lower(), ()) or ():
                        text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else value).strip()
                        dn_named = is_dn_value(text) and normalise_dn(text) == key
                        if dn_named or (not is_dn_value(text) and text.casefold() in folded):
                            group = normalise_dn(raw.dn)
                            via.setdefault(group, f"{attribute} {text}")
                            parents.setdefault(group, raw.dn)
                            member_of.setdefault(group, values.get(MEMBER_OF, ()))
        return {group: how for group, how in via.items() if group not in before}

    def names(self, query: Query) -> list[str]:
        return []  # a live directory is not listed for suggestions: what the plan read is used


def name_filter(directory: Directory, text: str) -> str:
    """The server-side search for a name: every attribute a person may be asked by equals it, and each
    email template with one attribute (`{mail}`, `{sAMAccountName}@corp.example.com`) read backwards."""
    from ldap3.utils.conv import escape_filter_chars

    value = escape_filter_chars(text)
    items = [f"(mail={value})", f"({directory.schema.account_name}={value})", f"(displayName={value})", f"(cn={value})"]
    if directory.flavour == "active-directory":
        items += [f"(userPrincipalName={value})", f"(proxyAddresses=smtp:{value})"]
    for template in directory.mapping.email:
        reverse = _reverse(template, text)
        if reverse is not None:
            items.append(f"({reverse[0]}={escape_filter_chars(reverse[1])})")
    return "(|" + "".join(dict.fromkeys(items)) + ")"


def _reverse(template: Template, text: str) -> tuple[str, str] | None:
    """(attribute, value) that would make `template` render `text`, for a template with one attribute."""
    if len(template.attributes) != 1:
        return None
    name = template.attributes[0]
    prefix, suffix = template.text.split("{" + name + "}", 1)
    folded = text.casefold()
    if folded.startswith(prefix.casefold()) and folded.endswith(suffix.casefold()) \
            and len(text) > len(prefix) + len(suffix):
        return name, text[len(prefix) : len(text) - len(suffix)]
    return None


def open_lookup(directory: Directory):
    if directory.kind == "entra-id":  # Microsoft Graph, or its snapshot: explain/graph.py
        from .graph import GraphLookup

        return GraphLookup(directory)
    return SnapshotLookup(directory) if directory.kind == "ldif" else LiveLookup(directory)
