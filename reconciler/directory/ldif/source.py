"""`kind: ldif`: a directory read from an LDIF snapshot instead of a server.

The snapshot is loaded into ldap3's offline mock (`filters.SnapshotSearch`) and
searched with the policy's own bases, scope and filter, so `reconciler plan`
against a snapshot selects what it would select against the server. Unlike a
live read, every entry is at hand, so users dropped by `member_of` are reported
in `out_of_scope` with the reason.

A snapshot that does not hold a search base or a member_of group is an error,
not an empty result: a typo must never read as "everyone left".

Entries that cannot be classified are never dropped silently (`_unreadable`): a
DN that does not parse refuses the read (where it sits is unknown, so it may be
a user), and so does an entry without objectClass at or under a users or groups
search base (no filter can match it, so a user would read as a leaver); one
without objectClass elsewhere is reported in `out_of_scope` with the reason.
Text values the mapping reads (templates, account and group names) must be
UTF-8: a base64 value that is not is an error naming the entry and attribute,
never imported as its base64 text.
"""
from __future__ import annotations

from ...dn import dn_parses, normalise_dn
from ...errors import DirectoryError
from ...model import DirectoryEntry, DirectoryGroup, DirectoryRead, OutOfScope
from ...policy.model import Directory
from ...progress import current
from ..entries import make_entry, make_group, template_attributes, value_text
from ..filters import InvalidFilter, SnapshotSearch
from ..membership import AccountNames
from .parser import BINARY_ATTRIBUTES, LdifRecord, Value, read_ldif

_CHUNK_MASK = 1023  # entries parsed are reported to the progress observer 1,024 at a time


class LdifSource:
    """Reads one LDIF snapshot completely, or raises DirectoryError."""

    def __init__(self, directory: Directory):
        self.directory = directory

    def read(self) -> DirectoryRead:
        directory = self.directory
        if not directory.path:
            raise DirectoryError(f"directory {directory.name}: kind ldif needs 'path' (the snapshot file)")
        snapshot = self._load(directory.path)
        current().stage(f"selecting the users in scope of {directory.name}")
        for base in (*directory.users.search_bases, *directory.groups.search_bases):
            if not snapshot.search.contains(base):
                raise DirectoryError(
                    f"directory {directory.name}: search base {base} is not in the snapshot {directory.path}; "
                    f"check its spelling (a missing base would read as everyone having left)"
                )
        for group in directory.users.member_of:
            if not snapshot.search.contains(group):
                raise DirectoryError(
                    f"directory {directory.name}: member_of group {group} is not in the snapshot {directory.path}; "
                    f"check its spelling (a missing group would put everyone out of scope)"
                )
        unclassified = self._unreadable(snapshot)
        users, out_of_scope, entries_read = self._users(snapshot)
        out_of_scope = sorted([*out_of_scope, *unclassified], key=lambda o: normalise_dn(o.dn))
        return DirectoryRead(
            directory=directory.name,
            users=users,
            groups=self._groups(snapshot),
            out_of_scope=out_of_scope,
            entries_read=entries_read,
        )

    def snapshot(self) -> "_Snapshot":
        """The whole snapshot, loaded and searchable, every entry and not only the users scope: where
        `reconciler explain` finds a person the scope leaves out, and evaluates the filter for them."""
        if not self.directory.path:
            raise DirectoryError(f"directory {self.directory.name}: kind ldif needs 'path' (the snapshot file)")
        snapshot = self._load(self.directory.path)
        self._add_member_uids(snapshot)
        return snapshot

    def _load(self, path: str) -> "_Snapshot":
        schema = self.directory.schema
        snapshot = _Snapshot(SnapshotSearch(self.directory.flavour, schema.member))
        report, name, parsed = current().read, self.directory.name, 0  # progress: per chunk, never per entry
        # A bulk load allocates millions of small objects and no cycles: the command's entry point runs
        # with the cyclic garbage collector off (reconciler.cli.main), which this loop depends on.
        for record in read_ldif(path, binary_attributes=[schema.anchor] if schema.anchor.lower() == "objectguid" else []):
            parsed += 1
            if not parsed & _CHUNK_MASK:
                report(name, _CHUNK_MASK + 1)
            if not dn_parses(record.dn):
                # Where it sits is unknown, so it may be a user: refused rather than read as a leaver.
                raise DirectoryError(f"{path}:{record.line}: the DN {record.dn!r} does not parse (RFC 4514); "
                                     f"the entry cannot be placed, so the snapshot is not read")
            if "objectclass" not in record.attributes:
                snapshot.classless.append(record)
            key = snapshot.search.add(record.dn, record.attributes)
            if key is None:
                first = snapshot.records[normalise_dn(record.dn)][2]
                raise DirectoryError(f"{path}:{record.line}: entry {record.dn} appears twice (first at line {first})")
            snapshot.records[key] = (record.dn, record.attributes, record.line)
        report(name, parsed & _CHUNK_MASK)
        return snapshot

    def _unreadable(self, snapshot: "_Snapshot") -> list[OutOfScope]:
        """Entries without objectClass: a refused read under a search base, reported elsewhere."""
        directory = self.directory
        bases = [*directory.users.search_bases, *directory.groups.search_bases]
        keys = [(base, normalise_dn(base)) for base in bases]
        reported: list[OutOfScope] = []
        for record in snapshot.classless:
            key = normalise_dn(record.dn)
            for base, base_key in keys:
                if key == base_key or key.endswith("," + base_key):
                    raise DirectoryError(
                        f"{directory.path}:{record.line}: entry {record.dn} has no objectClass, so no filter can tell "
                        f"whether it is a user; it is under the search base {base}, so the snapshot is not read "
                        f"(it would read as someone having left)")
            anchors = record.attributes.get(directory.schema.anchor.lower(), [])
            anchor = value_text(directory.schema.anchor, anchors[0]) if len(anchors) == 1 else ""
            reported.append(OutOfScope(directory.name, record.dn, anchor,
                                       "no objectClass: the entry cannot be classified (outside the search bases)"))
        return reported

    def _search(self, snapshot: "_Snapshot", base: str, what: str, ldap_filter: str, scope) -> list[str]:
        try:
            return snapshot.search.search(base, ldap_filter, scope)
        except InvalidFilter as error:
            raise DirectoryError(f"directory {self.directory.name}: {what} filter {ldap_filter!r} cannot be evaluated: {error}") from None

    def _users(self, snapshot: "_Snapshot") -> tuple[list[DirectoryEntry], list[OutOfScope], int]:
        directory = self.directory
        scope = directory.users
        self._add_member_uids(snapshot)  # before anyone's groups are asked of the graph (here and in _groups)
        membership = snapshot.search.membership
        wanted_groups = [normalise_dn(group) for group in scope.member_of]
        needed = template_attributes(directory.mapping)
        reason = f"not a member of {' or '.join(scope.member_of)} (directly or through nested groups)"
        users: dict[str, DirectoryEntry] = {}
        dropped: dict[str, OutOfScope] = {}
        for base in scope.search_bases:
            for dn in self._search(snapshot, base, "users", scope.filter, scope.scope):
                key = normalise_dn(dn)
                if key in users or key in dropped:  # overlapping bases: the first base listed claims the entry
                    continue
                entry = snapshot.entry(directory, key, base, membership.direct_groups(key), needed)
                if wanted_groups and not any(membership.is_member(key, group) for group in wanted_groups):
                    dropped[key] = OutOfScope(directory.name, entry.dn, entry.anchor, reason)
                else:
                    users[key] = entry
        return (
            [users[key] for key in sorted(users)],
            [dropped[key] for key in sorted(dropped)],
            len(users) + len(dropped),
        )

    def _groups(self, snapshot: "_Snapshot") -> dict[str, DirectoryGroup]:
        scope = self.directory.groups
        membership = snapshot.search.membership
        groups: dict[str, DirectoryGroup] = {}
        for base in scope.search_bases:
            for dn in self._search(snapshot, base, "groups", scope.filter, scope.scope):
                key = normalise_dn(dn)
                if key not in groups:
                    groups[key] = snapshot.group(self.directory, key, membership.direct_members(key))
        return dict(sorted(groups.items()))

    def _add_member_uids(self, snapshot: "_Snapshot") -> None:
        """posixGroups' memberUid values into the membership graph, as the live reader resolves them: an
        account name names the entries with that account name (any case), a DN value is a DN."""
        schema = self.directory.schema
        if not schema.member_uid or snapshot.member_uids_added:
            return
        snapshot.member_uids_added = True
        names = [name.lower() for name in schema.member_uid]
        holders = [(key, attributes) for key, (_dn, attributes, _line) in snapshot.records.items()
                   if any(name in attributes for name in names)]
        if not holders:
            return
        account = schema.account_name.lower()
        accounts = AccountNames((attributes[account], key)
                                for key, (_dn, attributes, _line) in snapshot.records.items() if account in attributes)
        membership = snapshot.search.membership
        for key, attributes in holders:
            for attribute, name in zip(schema.member_uid, names):
                membership.add_member_uids(key, attribute, attributes.get(name, ()), accounts)


class _Snapshot:
    """The loaded snapshot: the searchable DIT and each entry's parsed attributes and line."""

    def __init__(self, search: SnapshotSearch):
        self.search = search
        self.classless: list[LdifRecord] = []  # entries without objectClass, usually none
        self.member_uids_added = False  # whether memberUid values are in the membership graph yet
        self.records: dict[str, tuple[str, dict[str, list[Value]], int]] = {}  # normalised DN -> (dn, attributes, line)

    def entry(self, directory: Directory, key: str, base: str, groups, needed: frozenset[str]) -> DirectoryEntry:
        dn, attributes, line = self.records[key]
        _check_text(directory, dn, attributes, line, (*needed, directory.schema.account_name.lower()))
        try:
            return make_entry(directory, dn, attributes, base, groups, needed)
        except DirectoryError as error:  # point at the entry in the file
            raise DirectoryError(f"{directory.path}:{line}: {error.message}") from None

    def group(self, directory: Directory, key: str, members) -> DirectoryGroup:
        dn, attributes, line = self.records[key]
        _check_text(directory, dn, attributes, line, (directory.schema.group_name.lower(),))
        try:
            return make_group(directory, dn, attributes, members)
        except DirectoryError as error:
            raise DirectoryError(f"{directory.path}:{line}: {error.message}") from None


def _check_text(directory: Directory, dn: str, attributes: dict[str, list[Value]], line: int, names) -> None:
    """The parser keeps a base64 value that is not UTF-8 as bytes (an unknown binary attribute is no
    error); an attribute read as text must not be one, or its base64 would be imported as the text."""
    for name in names:
        if name in BINARY_ATTRIBUTES or name == directory.schema.anchor.lower():
            continue
        if any(isinstance(value, bytes) for value in attributes.get(name, ())):
            raise DirectoryError(f"{directory.path}:{line}: entry {dn}: the value of {name} is not UTF-8 text "
                                 f"(a base64 value that decodes to other bytes); export it as UTF-8")
