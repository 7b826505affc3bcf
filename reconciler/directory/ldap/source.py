"""`kind: active-directory`, `openldap`, `389ds` and `freeipa`: a live directory read over LDAP.

Produces the same `DirectoryRead` as the snapshot source (entries are built by
`entries.make_entry`), so nothing after the directory stage knows the difference.

What the flavours do differently:
- member_of scope. AD evaluates nesting on the server with the in-chain
  matching rule, `(memberOf:1.2.840.113556.1.4.1941:=<group DN>)`; OpenLDAP, 389
  Directory Server and FreeIPA are not asked to, so the groups are walked on the
  client from member/uniqueMember/memberUid (cycle-safe), and users outside them
  are reported as out of scope.
- posixGroups (OpenLDAP, 389 DS) name members by account name in memberUid: those
  values are resolved against the users read (`membership.AccountNames`), a DN
  value taken as a DN.
- AD refers subtree searches at the domain root to its configuration and DNS
  partitions; those references are skipped, any other reference fails the read.

A read returning no users is returned as such (`entries_read == 0`): whether
that is an alarm depends on what the store holds from this directory, which the
plan stage knows (`plan.make.guard_empty_reads`), not this one.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import deque
from datetime import datetime, timedelta
from itertools import chain
from typing import Iterator, Sequence

from ldap3.utils.conv import escape_filter_chars

from ...dn import normalise_dn
from ...errors import DirectoryError
from ...model import DirectoryEntry, DirectoryGroup, DirectoryRead, OutOfScope
from ...policy.model import Directory
from ...progress import current
from ..delta import (ReadNote, SearchState, SyncState, TokenRefused, UnreadableState, now_text, reconciler_version,
                     scope_digest, usable)
from .delta_read import delta_method_for, delta_since, keyed_records
from ..entries import EntryBuilder, lower_keys, make_group, template_attributes
from ..filters import IN_CHAIN  # LDAP_MATCHING_RULE_IN_CHAIN: transitive membership, evaluated by AD
from ..membership import MEMBER_OF, AccountNames, Membership, member_dn
from .connect import connect
from .read_ahead import read_ahead
from .paged import RawEntry, Search, client_side_cause, complete_ranges, paged_search, result_cause



def in_chain_filter(user_filter: str, group_dns: tuple[str, ...]) -> str:
    """The users filter narrowed to members (nested included) of any of the groups.

    Group DNs are escaped per RFC 4515: a group named `R&D (Europe) *` must match
    that group only, not end the filter at `)` or become a wildcard.
    """
    if not group_dns:
        return user_filter
    chains = "".join(f"(memberOf:{IN_CHAIN}:={escape_filter_chars(dn)})" for dn in group_dns)
    narrowed = chains if len(group_dns) == 1 else f"(|{chains})"
    return f"(&{_parenthesised(user_filter)}{narrowed})"


def _parenthesised(ldap_filter: str) -> str:
    text = ldap_filter.strip()
    return text if text.startswith("(") else f"({text})"


class LiveSource:
    """Reads one live directory completely, or raises DirectoryError naming what was incomplete."""

    stops_if_unchanged = True  # read_with_state(..., stop_if_unchanged=True) is understood

    def __init__(self, directory: Directory, connection_factory=connect, delta_method=None):
        self.directory = directory
        self._connect = connection_factory  # tests hand in a fake connection
        self._member_keys: dict[str | bytes, str] = {}
        self._accounts = AccountNames()  # the users read, by account name: what memberUid values name
        self._delta_method = delta_method  # tests hand one in; else the kind's (`delta_method_for`)
        # a delta read's searches answered from the kept records (with the changes applied), not the server
        self._records: dict[Search, dict[str, RawEntry]] | None = None
        self._extra: tuple[str, ...] = ()  # the delta method's uuid attribute, asked for with every entry

    @property
    def is_ad(self) -> bool:
        return self.directory.flavour == "active-directory"

    def read(self) -> DirectoryRead:
        connection, _endpoint = self._connect(self.directory)
        try:
            return self._read(connection)
        finally:
            try:
                connection.unbind()
            except Exception:  # the read's own error (if any) is the one worth reporting
                pass

    def read_with_state(self, kept: SyncState | None, why_not: str, full_read_every: timedelta,
                        now: datetime, *, stop_if_unchanged: bool = False
                        ) -> tuple[DirectoryRead | None, SyncState, ReadNote]:
        """A delta read from `kept` when it may be trusted, else a full read; the read, the state to keep
        with the next apply, and what the plan says about how the directory was read.

        Either way the users and groups searches' records are complete (the kept ones with the changes
        applied, or what a full read returned) and the read is built from them by the same code as
        `read()`; the member_of walk (OpenLDAP) and the existence checks still ask the server. With
        `stop_if_unchanged`, a delta that finds nothing changed returns no read (None): the caller knows
        the plan this state led to and does not need one (`pipeline`)."""
        method = self._delta_method or delta_method_for(self.directory)
        self._extra = (method.uuid_attribute,)
        connection, _endpoint = self._connect(self.directory)
        try:
            searches = self.named_searches()
            scope = scope_digest(self.directory.kind, method.name, self.directory.users.member_of,
                                 [(name, s.base, s.filter, s.scope, sorted(s.attributes, key=str.lower))
                                  for name, s in sorted(searches.items())])
            server = method.identity(connection, searches)
            trusted, reason = usable(kept, why_not, directory=self.directory.name, method=method.name, scope=scope,
                                     full_read_every=full_read_every, now=now, server=server)
            kept_now: dict[str, SearchState] | None = None
            if trusted and kept is not None:
                try:
                    kept_now, touched = delta_since(connection, method, searches, kept)
                except TokenRefused as refused:
                    reason = f"the server refused the kept token ({refused}); read in full"
                except UnreadableState as unreadable:
                    reason = f"{unreadable}; read in full"
            if kept_now is not None and kept is not None:
                note = ReadNote(self.directory.name, "delta", f"changes since the last apply; last full read {kept.full_read_at}",
                                touched)
                state = SyncState(self.directory.name, method.name, server, scope, reconciler_version(), kept.full_read_at,
                                  kept_now, kept.changes_since_full + touched)
                if stop_if_unchanged and touched == 0:
                    return None, state, note
            else:
                server, tokens = method.start(connection, searches)
                note = ReadNote(self.directory.name, "full", reason)
                state = SyncState(self.directory.name, method.name, server, scope, reconciler_version(), now_text(now),
                                  {name: SearchState(tokens[name], keyed_records(self._entries(connection, search), method, self.directory))
                                   for name, search in searches.items()})
            self._records = {search: state.searches[name].records for name, search in searches.items()}
            return self._read(connection), state, note
        finally:
            self._records, self._extra = None, ()
            try:
                connection.unbind()
            except Exception:  # the read's own error (if any) is the one worth reporting
                pass

    def named_searches(self) -> dict[str, Search]:
        """The users and groups searches a read makes, by name (`users:<base>`, `groups:<base>`)."""
        scope, groups = self.directory.users, self.directory.groups
        ldap_filter = in_chain_filter(scope.filter, scope.member_of) if self.directory.member_of_on_server else scope.filter
        named = {f"users:{base}": search for base, search in
                 self._searches(scope.search_bases, ldap_filter, scope.scope, self.user_attributes())}
        named.update({f"groups:{base}": search for base, search in
                      self._searches(groups.search_bases, groups.filter, groups.scope, self.group_attributes())})
        return named

    # ── the read ────────────────────────────────────────────────────────────

    def open_lookup(self) -> "EntryLookup":
        """A bound connection for bounded reads of single entries anywhere in the directory (explain)."""
        connection, endpoint = self._connect(self.directory)
        return EntryLookup(self.directory, connection, endpoint.url)

    def _read(self, connection) -> DirectoryRead:
        directory = self.directory
        # Member values repeat: 5,000 group DNs fill 500,000 memberOf values, each user's DN is in several
        # groups' member lists. Normalised once per distinct value, for this read only.
        self._member_keys = {}
        for group_dn in directory.users.member_of:
            self._require_exists(connection, group_dn)
        users, keys, entries_read, out_of_scope = self._read_users(connection)
        groups = self._read_groups(connection)
        users = _with_memberships_from_groups(users, keys, groups)
        del keys
        self._member_keys, self._accounts = {}, AccountNames()
        return DirectoryRead(
            directory=directory.name,
            users=users,  # in normalised-DN order
            groups=dict(sorted(groups.items())),
            out_of_scope=sorted(out_of_scope, key=lambda o: normalise_dn(o.dn)),
            entries_read=entries_read,
        )

    def _member_key(self, value: str | bytes) -> str:
        key = self._member_keys.get(value)
        if key is None:
            key = self._member_keys[value] = member_dn(value)
        return key

    def user_attributes(self) -> tuple[str, ...]:
        """Only what the policy needs: the anchor, the account name, the disabled rule, direct groups and
        every attribute a mapping template names."""
        schema = self.directory.schema
        names = {schema.anchor, schema.account_name, schema.disabled.attribute, "memberOf", *self._extra}
        names |= set(template_attributes(self.directory.mapping))
        return tuple(sorted(_one_spelling(names), key=str.lower))

    def group_attributes(self) -> tuple[str, ...]:
        schema = self.directory.schema
        names = {schema.anchor, schema.group_name, *schema.member, *schema.member_uid, *self._extra}
        return tuple(sorted(_one_spelling(names), key=str.lower))

    def _searches(self, bases: tuple[str, ...], ldap_filter: str, scope: str, attributes: tuple[str, ...]):
        for base in bases:
            yield base, Search(self.directory.name, base, ldap_filter, scope, attributes)

    def _entries(self, connection, search: Search) -> Iterator[RawEntry]:
        if self._records is not None and search in self._records:
            records = self._records[search]
            current().read(self.directory.name, len(records))
            from_record = RawEntry.from_record
            for record in records.values():  # a kept record is a RawEntry or, still as kept, its JSON form
                yield record if isinstance(record, RawEntry) else from_record(record)
            return
        pages = paged_search(connection, search, self.directory.page_size, ignore_ad_system_references=self.is_ad)
        # the worker thread alone uses the connection until the search is done (ranges included)
        completed = (complete_ranges(connection, search, raw) for raw in pages)
        yield from read_ahead(completed, batch=self.directory.page_size)

    def _read_users(self, connection) -> tuple[list[DirectoryEntry], list[str], int, list[OutOfScope]]:
        """The users in normalised-DN order, their normalised DNs, the count read, and those out of scope."""
        directory = self.directory
        scope = directory.users
        server_side = directory.member_of_on_server
        ldap_filter = in_chain_filter(scope.filter, scope.member_of) if server_side else scope.filter
        entries: dict[str, DirectoryEntry] = {}
        build = EntryBuilder(directory, template_attributes(directory.mapping))  # once, not per entry
        # memberOf values name groups: looked up among the group DNs seen so far, a table small enough to stay
        # in the CPU's cache, not among every user's DN as well (measured: replayed 100k read -5%, 1M read -1%)
        group_keys: dict[str | bytes, str] = {}
        known_member = group_keys.get

        def member_key(value: str | bytes) -> str:
            key = group_keys[value] = self._member_key(value)
            return key
        account_key = directory.schema.account_name.lower() if directory.schema.member_uid else None
        more_names: list[tuple[Sequence[str | bytes], str]] = []  # entries with several account names (uid)
        # A user's DN comes back as a member value of its groups: its key is filed under the DN's bytes now,
        # so the groups' members are this one string, not a second one per user, and are not normalised again.
        seed = self._member_keys
        read = 0
        for base, search in self._searches(scope.search_bases, ldap_filter, scope.scope, self.user_attributes()):
            for raw in self._entries(connection, search):
                dn = raw.dn
                key = normalise_dn(dn)
                if key == dn:
                    key = dn  # already in key form (as OpenLDAP writes DNs): one string for the entry and the key
                if key in entries:  # overlapping search bases: the first base listed claims the entry
                    continue
                read += 1
                if dn == dn.strip() and not dn.endswith("'B"):  # membership.member_dn of these bytes is `key`
                    seed[dn.encode()] = key
                attributes = lower_keys(raw.attributes)
                groups = _resolve_members(attributes.get(MEMBER_OF), known_member, member_key)
                entries[key] = build(raw.dn, attributes, base, groups)
                if account_key is not None and len(attributes.get(account_key, ())) > 1:
                    more_names.append((attributes[account_key], key))
        # DN order, by the normalised DN already computed; sorted keys, not (key, entry) pairs: 64 MB less a million.
        # A server that answered in DN order already (as slapd does for entries added in that order) leaves the
        # table as it is: a million lookups and a second table of a million saved (0.3 s).
        order = sorted(entries)
        if order != list(entries):
            entries = {key: entries[key] for key in order}
        del order
        # what memberUid values name: indexed only if a posixGroup asks (a generator until then)
        self._accounts = AccountNames(chain((((e.account_name,), k) for k, e in entries.items() if e.account_name),
                                            more_names))
        if not scope.member_of or server_side:
            return list(entries.values()), list(entries), read, []
        return self._client_side_member_of(connection, entries, read)

    def _client_side_member_of(self, connection, entries: dict[str, DirectoryEntry], read: int):
        """OpenLDAP: walk the member_of groups downwards and keep the users reached."""
        scope = self.directory.users
        graph = self._walk_groups(connection, scope.member_of, known_users=set(entries))
        members: set[str] = set()
        for group_dn in scope.member_of:
            members |= graph.all_members(normalise_dn(group_dn))
        reason = f"not a member of {' or '.join(scope.member_of)} (directly or through nested groups)"
        kept, keys, dropped = [], [], []
        for key, entry in entries.items():
            if key in members:
                groups = entry.groups | graph.direct_groups(key)
                kept.append(entry if groups == entry.groups else _with_groups(entry, groups))
                keys.append(key)
            else:
                dropped.append(OutOfScope(self.directory.name, entry.dn, entry.anchor, reason))
        return kept, keys, read, dropped

    def _walk_groups(self, connection, roots: tuple[str, ...], known_users: set[str]) -> Membership:
        """Breadth-first over group entries, one base read per group reached; `seen` stops cycles."""
        schema = self.directory.schema
        graph = Membership()
        queue = deque(roots)
        seen: set[str] = set()
        member_keys = [name.lower() for name in schema.member]
        uid_attributes = [(name, name.lower()) for name in schema.member_uid]
        while queue:
            dn = queue.popleft()
            key = normalise_dn(dn)
            if key in seen or key in known_users:
                continue
            seen.add(key)
            raw = self._base_entry(connection, dn, (*schema.member, *schema.member_uid), required=dn in roots)
            if raw is None:  # a member that is neither a known user nor readable: not a group in scope
                continue
            attributes = lower_keys(raw.attributes)
            for name in member_keys:
                for value in attributes.get(name, ()):
                    member = member_dn(value)
                    graph.add(key, member)
                    if member not in seen and member not in known_users:
                        queue.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
            for name, lowered in uid_attributes:
                for text in graph.add_member_uids(key, name, attributes.get(lowered, ()), self._accounts):
                    member = member_dn(text)  # a DN where an account name would be: perhaps a nested group
                    if member not in seen and member not in known_users:
                        queue.append(member)  # normalised: a server refuses `cn=b, ou=Groups` (spaces) as a base
        return graph

    def _base_entry(self, connection, dn: str, attributes: tuple[str, ...], required: bool) -> RawEntry | None:
        from ldap3 import BASE
        from ldap3.core.exceptions import LDAPCommunicationError, LDAPException

        text = dn.split("#'")[0] if dn.endswith("'B") else dn  # uniqueMember's optional UID suffix
        search = Search(self.directory.name, text, "(objectClass=*)", "base", attributes)
        try:
            connection.search(text, "(objectClass=*)", search_scope=BASE, attributes=list(attributes))
        except LDAPCommunicationError as error:
            raise search.failure(f"the connection was lost ({error.__class__.__name__}: {error})") from None
        except LDAPException as error:
            raise search.failure(client_side_cause(error)) from None
        result = connection.result
        if result.get("description") == "noSuchObject" and not required:
            return None
        if result.get("result") != 0:
            if required and result.get("description") == "noSuchObject":
                raise self._missing_group(text)
            raise search.failure(result_cause(result))
        for item in connection.response or ():
            if item.get("type") == "searchResEntry":
                return complete_ranges(connection, search, RawEntry(item["dn"], item["raw_attributes"]))
        if required:
            raise self._missing_group(text)
        return None

    def _missing_group(self, dn: str) -> DirectoryError:
        return DirectoryError(
            f"directory {self.directory.name}: users.member_of names {dn}, which does not exist or the bind account "
            f"cannot read; fix the DN (nobody would be in scope) or grant read access", self.directory.location
        )

    def _require_exists(self, connection, dn: str) -> None:
        self._base_entry(connection, dn, ("1.1",), required=True)

    def _read_groups(self, connection) -> dict[str, DirectoryGroup]:
        directory = self.directory
        scope = directory.groups
        groups: dict[str, DirectoryGroup] = {}
        member_keys = [name.lower() for name in directory.schema.member]
        uid_keys = [name.lower() for name in directory.schema.member_uid]
        resolve = self._accounts.resolve
        known_member, member_key = self._member_keys.get, self._member_key  # 500,000 member values at 100k users
        for _base, search in self._searches(scope.search_bases, scope.filter, scope.scope, self.group_attributes()):
            for raw in self._entries(connection, search):
                key = normalise_dn(raw.dn)
                if key in groups:
                    continue
                attributes = lower_keys(raw.attributes)
                members: list[str] = []
                for name in member_keys:
                    members += _resolve_members(attributes.get(name), known_member, member_key)
                for name in uid_keys:
                    members += (member for v in attributes.get(name, ()) for member in resolve(v))
                groups[key] = make_group(directory, raw.dn, raw.attributes, members)  # a DnSet: duplicates go
        return groups


class EntryLookup:
    """Bounded reads of a few entries anywhere in the directory's naming contexts, not only in the
    users scope: what `reconciler explain` asks a live server. Every search has a small size limit
    and a truncated answer says so; nothing read here is ever taken for a complete read."""

    def __init__(self, directory: Directory, connection, url: str):
        self.directory = directory
        self.connection = connection
        self.url = url
        self._contexts: list[str] | None = None

    def close(self) -> None:
        try:
            self.connection.unbind()
        except Exception:  # closing after a failed search: the search's error is the one reported
            pass

    def naming_contexts(self) -> list[str]:
        """The server's naming contexts that hold a users or groups search base (from the root DSE); when
        the root DSE cannot be read, the DC= suffix of each search base, or the base itself."""
        if self._contexts is None:
            from ldap3 import BASE

            bases = [*self.directory.users.search_bases, *self.directory.groups.search_bases]
            keys = [normalise_dn(base) for base in bases]
            advertised: list[str] = []
            try:
                self.connection.search("", "(objectClass=*)", search_scope=BASE,
                                       attributes=["namingContexts", "defaultNamingContext"])
                for item in self.connection.response or ():
                    if item.get("type") == "searchResEntry":
                        for name, values in item["raw_attributes"].items():
                            if name.lower() in ("namingcontexts", "defaultnamingcontext"):
                                advertised += [v.decode("utf-8", "replace") for v in values or ()]
            except Exception:  # a root DSE the bind account may not read: fall back on the bases
                advertised = []
            chosen = [c for c in dict.fromkeys(advertised)
                      if c and any(k == normalise_dn(c) or k.endswith("," + normalise_dn(c)) for k in keys)]
            if not chosen:
                chosen = [_dc_suffix(base) or base for base in bases]
            # the broadest first, and none inside another
            chosen.sort(key=lambda c: normalise_dn(c).count(","))
            kept: list[str] = []
            for context in chosen:
                key = normalise_dn(context)
                if not any(key == normalise_dn(k) or key.endswith("," + normalise_dn(k)) for k in kept):
                    kept.append(context)
            self._contexts = kept
        return self._contexts

    def search(self, base: str, ldap_filter: str, attributes: tuple[str, ...], scope: str = "subtree",
               limit: int = 20) -> tuple[list[RawEntry], bool]:
        """(entries, truncated): at most `limit` entries; a base that does not exist or is referred
        elsewhere is no entry; any other failure is a DirectoryError naming the search."""
        from ldap3.core.exceptions import LDAPCommunicationError, LDAPException

        from .paged import SCOPES

        search = Search(self.directory.name, base, ldap_filter, scope, attributes)
        try:
            self.connection.search(base, ldap_filter, search_scope=SCOPES[scope], attributes=list(attributes),
                                   size_limit=limit)
        except LDAPCommunicationError as error:
            raise search.failure(f"the connection was lost ({error.__class__.__name__}: {error})") from None
        except LDAPException as error:
            raise search.failure(client_side_cause(error)) from None
        result = self.connection.result
        description = result.get("description")
        if description in ("noSuchObject", "referral"):
            return [], False
        if result.get("result") != 0 and description != "sizeLimitExceeded":
            raise search.failure(result_cause(result))
        entries = [complete_ranges(self.connection, search, RawEntry(item["dn"], item["raw_attributes"]))
                   for item in list(self.connection.response or ()) if item.get("type") == "searchResEntry"]
        return entries, description == "sizeLimitExceeded"

    def read(self, dn: str, attributes: tuple[str, ...]) -> RawEntry | None:
        """The entry `dn` itself (a base search), or None if there is none."""
        entries, _ = self.search(dn, "(objectClass=*)", attributes, "base", 1)
        return entries[0] if entries else None


def _one_spelling(names: set[str]) -> set[str]:
    """Attribute names once each, whatever their case (entryUUID from the schema and from a delta method)."""
    return set({name.lower(): name for name in sorted(names)}.values())


def _dc_suffix(dn: str) -> str | None:
    """`DC=corp,DC=example,DC=com` of `OU=People,DC=corp,DC=example,DC=com`: the trailing DC= RDNs."""
    from ...dn import parse_avas

    avas = parse_avas(dn) or []
    start = len(avas)
    while start > 0 and avas[start - 1][0].lower() == "dc" and (start == 1 or avas[start - 2][2] != "+"):
        start -= 1
    if start == len(avas):
        return None
    return ",".join(f"{attribute}={value}" for attribute, value, _ in avas[start:])


def _resolve_members(values, known, normalise) -> list[str]:
    """The normalised DNs of member values: `known` (a dict's get, at C speed) for those seen before,
    `normalise` for the others."""
    if not values:
        return []
    keys = list(map(known, values))
    if not all(keys):  # a None among them (`in` would compare each key with None: slower at a million values)
        keys = [key if key is not None else normalise(value) for key, value in zip(keys, values)]
    return keys


def _with_memberships_from_groups(users: list[DirectoryEntry], keys: list[str],
                                  groups: dict[str, DirectoryGroup]) -> list[DirectoryEntry]:
    """Adds each user's direct groups as the groups' member lists record them. memberOf already says
    so on AD and on OpenLDAP with the memberof overlay; without the overlay this is the only source.
    `keys`: the users' normalised DNs, in the same order (made once by the read, not again here), sorted.
    Each group's members past the users whose groups already name it are looked at (set algebra, not a
    lookup per member: 500,000 at 100,000 users), and of them, the users whose groups lack it get it."""
    listed: dict[str, list[str]] = {}  # group key -> the users whose groups (memberOf) name it
    for key, user in zip(keys, users):
        for group in user.groups:
            named = listed.get(group)
            if named is None:
                listed[group] = [key]
            else:
                named.append(key)
    positions = _Positions(keys)
    missing: dict[int, set[str]] = {}
    for group_key, group in groups.items():
        unlisted = set(group.members)
        unlisted.difference_update(listed.get(group_key, ()))
        if not unlisted:
            continue
        position = positions.finder(len(unlisted))
        for member in unlisted:
            index = position(member)
            if index is not None and group_key not in users[index].groups:
                missing.setdefault(index, set()).add(group_key)
    result = list(users)
    for index, extra in missing.items():
        result[index] = _with_groups(users[index], users[index].groups | extra)
    return result


class _Positions:
    """Where a key is in the sorted `keys`, or None. A binary search while few keys have been asked for (the
    groups nested in member lists: 15,000 at a million users, where a table of every key cost 0.4 s), a
    table of every key once many have (without memberOf every member is asked for)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = keys
        self._asked = 0
        self._table: dict[str, int] | None = None

    def finder(self, count: int):
        """The lookup to use for `count` more keys."""
        self._asked += count
        # a search is about 20 comparisons of strings at a million keys: past one key asked for in 32, one
        # table of them all costs less
        if self._table is None and self._asked * 32 > len(self._keys):
            self._table = {key: index for index, key in enumerate(self._keys)}
        return self._table.get if self._table is not None else self._search

    def _search(self, key: str) -> int | None:
        index = bisect_left(self._keys, key)
        return index if index < len(self._keys) and self._keys[index] == key else None


def _with_groups(entry: DirectoryEntry, groups: frozenset[str]) -> DirectoryEntry:
    from dataclasses import replace

    return replace(entry, groups=groups)
