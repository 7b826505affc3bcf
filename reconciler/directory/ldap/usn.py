"""Active Directory delta reads: uSNChanged high-water marks of one domain controller.

Why uSNChanged and not DirSync (the LDAP_SERVER_DIRSYNC control, ldap3 `extend.microsoft.dir_sync`):
- DirSync watches a whole naming context, never a subtree (MS-ADTS 3.1.1.3.4.1.3), so the base, the
  scope and whether an entry still matches the filter stay the reader's work anyway; without the
  object-security flag it needs the Replicating Directory Changes right on the naming context, a
  replication right few want a sync account to hold; and it sends only the attributes that changed
  (member values one by one with the incremental-values flag) and no back-links such as memberOf, so
  a record would be stitched together from parts. A uSNChanged search is an ordinary search with the
  same base, scope, filter (the in-chain clause included) and attributes as the full read, so a
  changed entry comes back exactly as a full read returns it, with the rights the full read has.
- A USN is a counter of one domain controller's database, not of the domain. The token is therefore
  only good against the DC that issued it: `identity` is that DC's invocationId (its NTDS Settings
  object's, which changes when the database is restored too) and the naming contexts read; another
  DC or a restored one is another identity and the caller reads in full.
- Deletions are found as tombstones: a deleted object keeps its objectGUID, gets isDeleted (and, on
  Samba and with the Recycle Bin, isRecycled) and lastKnownParent, moves to CN=Deleted Objects and
  is stamped with a new uSNChanged; a search with the show-deleted control (show-recycled where the
  server offers it) finds it. Tombstones live tombstoneLifetime days (msDS-DeletedObjectLifetime
  with the Recycle Bin): a token older than that, less a day's margin for the garbage collector's
  schedule, is refused (`TokenRefused`). By default only administrators may list CN=Deleted
  Objects (AD and Samba alike: the search then succeeds and silently returns no tombstones), so the
  method checks that the bind account can read the container and refuses to delta otherwise; the
  fix is `dsacls "CN=Deleted Objects,DC=..." /takeownership` then `/G DOMAIN\\account:LCRP`.

What AD does not mark as changed, and what is done about it (checked against Samba 4.17, which
behaves as Windows documents for each):
- memberOf is a back-link: adding a user to a group changes the group's uSNChanged, not the user's;
  renaming or deleting a group changes its members' memberOf and not their uSNChanged; deleting or
  moving a user changes its groups' member values and not their uSNChanged. So: a changed group that
  a search keeps is read again anyway, and its member values then and now say who joined and left;
  those users are read again. For a changed group no search keeps, or a renamed one, its current
  direct members are read, and the kept users naming it. Kept records whose member or memberOf
  values name the old DN of a renamed, moved or deleted object (the kept DN of a kept record, the
  last known name and parent of a tombstone) are read again; so are kept groups holding a renamed
  object no search keeps (its memberOf says which). A filter that depends on memberOf (the in-chain
  clause `users.member_of` becomes on AD) can change whom it matches through a group change anywhere
  in the chain, and the kept records do not say what the chain was; so after any group change such
  a search's ids are enumerated (objectGUID only): ids no longer there left, new ones are read.
- Renaming or moving an OU changes the DN of everything below it and the uSNChanged of the OU alone.
  A pre-existing object with children that was renamed or moved since the token refuses the delta
  (the kept DN says so for a kept object; for any other, the local USN of its `name` attribute in
  replPropertyMetaData, which a rename and a move both change; an account that cannot read that is
  taken to have seen every such object renamed). So does a renamed group that no search keeps: the
  old DN kept memberOf values hold is known nowhere.
- Constructed, non-replicated (lastLogon) and linked attributes other than member/memberOf change
  without uSNChanged: a search asking for one, or filtering on one other than memberOf, refuses.
- A database put back from a copy of its files without a proper restore keeps its invocationId (AD's
  "USN rollback"): a watermark above the server's highestCommittedUSN is refused; one below it cannot
  be told apart here, as AD's own replication cannot.

A delta from token T is: for each search, the entries matching it with uSNChanged > T (changed); the
kept ids of objects changed anywhere in the naming context in (T, now] that no longer match or are
no longer under the base, deleted ones included (removed); the re-reads above. `now` is the server's
highestCommittedUSN read first; it is the next token, so a change made while the delta reads is
reported again next time (harmless: a delta sets records, it does not add to them). Every search
fails closed as the full read does (`paged.paged_search`, `complete_ranges`: `DirectoryError`).
"""
from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping

from ldap3 import BASE
from ldap3.utils.conv import escape_bytes, escape_filter_chars
from ldap3.utils.dn import escape_rdn

from ...dn import normalise_dn
from ...errors import DirectoryError
from ..delta import Delta, TokenRefused
from ..entries import guid_text
from .paged import RawEntry, Search, complete_ranges, paged_search, result_cause, send

SHOW_DELETED_OID = "1.2.840.113556.1.4.417"
SHOW_RECYCLED_OID = "1.2.840.113556.1.4.2064"
DELETED_OBJECTS_WKGUID = "18E2EA80684F11D2B9AA00C04F79F805"  # GUID_DELETED_OBJECTS_CONTAINER_W
NAME_ATTID = 0x00090001  # `name` (ATT_RDN): its metadata changes on a rename and on a move
DEFAULT_TOMBSTONE_DAYS = 60  # what AD assumes when tombstoneLifetime is not set
MARGIN = timedelta(days=1)  # a tombstone may go once it is tombstoneLifetime days old: refuse a day before
BATCH = 100  # ids or DNs per OR filter

ROOT_ATTRIBUTES = ("highestCommittedUSN", "currentTime", "dsServiceName", "namingContexts", "defaultNamingContext",
                   "configurationNamingContext", "schemaNamingContext", "supportedControl")
CHANGED_ATTRIBUTES = ("objectGUID", "objectClass", "isDeleted", "uSNCreated", "uSNChanged", "lastKnownParent",
                      "msDS-LastKnownRDN", "name", "replPropertyMetaData")

# Attributes a search may ask for although the schema flags them as not replicated or DN-valued: they
# change together with the entry's own uSNChanged (or never), or are handled here (member, memberOf).
ALWAYS_CURRENT = frozenset({"objectguid", "distinguishedname", "objectcategory", "whenchanged", "whencreated",
                            "usnchanged", "usncreated", "member", "memberof"})
DN_SYNTAXES = frozenset({"2.5.5.1", "2.5.5.7", "2.5.5.14"})  # DN, DN-Binary, DN-String
FLAG_ATTR_NOT_REPLICATED = 0x1
FLAG_ATTR_IS_CONSTRUCTED = 0x4
_FILTER_ATTRIBUTE = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)\s*(?::[^=()]*)?[~<>]?=")


# ── tokens ─────────────────────────────────────────────────────────────────────────────────

def format_token(usn: int, when: datetime) -> str:
    """`<highestCommittedUSN>@<server time, UTC>`: the USN is the watermark, the time dates it against
    the tombstone lifetime."""
    return f"{usn}@{when.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def parse_token(token: str | None) -> tuple[int, datetime]:
    if not token:
        raise TokenRefused("no USN watermark is kept for this search")
    usn, _, when = token.partition("@")
    try:
        value = int(usn)
        moment = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise TokenRefused(f"the kept USN watermark {token!r} does not read") from None
    if value < 0:
        raise TokenRefused(f"the kept USN watermark {token!r} does not read")
    return value, moment


def generalized_time(value: bytes | str | None) -> datetime | None:
    """The root DSE's currentTime (`20261130130641.0Z`) as a UTC datetime; None if it does not read."""
    if not value:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    match = re.match(r"^(\d{14})(?:[.,]\d+)?Z$", text.strip())
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def check_age(token_time: datetime, server_now: datetime, lifetime_days: int) -> None:
    """Refuses a watermark the server may no longer answer for: deletions made right after it may have
    been garbage-collected with their tombstones."""
    age = server_now - token_time
    if age < -timedelta(minutes=5):
        raise TokenRefused(f"the kept USN watermark is dated {token_time:%Y-%m-%d %H:%M}Z, after the server's "
                           f"clock ({server_now:%Y-%m-%d %H:%M}Z)")
    if age >= timedelta(days=lifetime_days) - MARGIN:
        raise TokenRefused(f"the kept USN watermark is {age.days} days old and tombstones live {lifetime_days} "
                           f"days: deletions since may no longer be visible")


# ── what replication metadata and tombstones tell ──────────────────────────────────────────

def name_change_usn(blob: bytes | None) -> int | None:
    """The local USN at which the `name` attribute last changed (a rename or a move), from a
    replPropertyMetaData value (MS-DRSR PROPERTY_META_DATA_EXT_VECTOR, version 1); None if absent or
    not understood."""
    if not blob or len(blob) < 16:
        return None
    version, _, count, _ = struct.unpack_from("<IIII", blob, 0)
    if version != 1 or len(blob) < 16 + 48 * count:
        return None
    for index in range(count):
        attid, _version, _time, _invocation, _originating, local = struct.unpack_from("<IIQ16sqq", blob, 16 + 48 * index)
        if attid == NAME_ATTID:
            return local
    return None


def tombstone_old_dn(dn: str, name: str | None, last_known_rdn: str | None, last_known_parent: str | None) -> str | None:
    """The DN a deleted object had, from its tombstone: RDN type of the tombstone's DN, the RDN value it
    had (msDS-LastKnownRDN, or `name` without the `\\nDEL:<guid>` AD appends), and lastKnownParent."""
    if not last_known_parent:
        return None
    value = last_known_rdn or (name.split("\nDEL:")[0] if name and "\nDEL:" in name else None)
    if not value:
        return None
    rdn_type = dn.split("=", 1)[0].strip() if "=" in dn else "CN"
    return f"{rdn_type}={escape_rdn(value)},{last_known_parent}"


def attribute_verdict(name: str, syntax: str | None, link_id: int | None, system_flags: int) -> str | None:
    """Why a delta cannot follow an attribute's changes (None: it can)."""
    if name.lower() in ALWAYS_CURRENT:
        return None
    if system_flags & FLAG_ATTR_IS_CONSTRUCTED:
        return f"{name} is computed by the server when read"
    if link_id is not None:
        return f"{name} is a link between entries ({'back-link' if link_id % 2 else 'forward link'})"
    if system_flags & FLAG_ATTR_NOT_REPLICATED:
        return f"{name} is kept by each domain controller apart and not replicated"
    if syntax in DN_SYNTAXES:
        return f"{name} holds DNs, which change when the entries they name are renamed"
    return None


def filter_attributes(ldap_filter: str) -> set[str]:
    """The attribute names a filter tests (lower case). Values are escaped in a valid filter (`\\28` for a
    parenthesis), so every `(name=`, `(name>=`, `(name:rule:=` is a clause: a name too many only makes
    the checks stricter."""
    text = ldap_filter.strip()
    text = text if text.startswith("(") else f"({text})"
    return {match.group(1).lower() for match in _FILTER_ATTRIBUTE.finditer(text)}


def guid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


def or_filter(clauses: list[str]) -> str:
    return clauses[0] if len(clauses) == 1 else "(|" + "".join(clauses) + ")"


def and_filter(ldap_filter: str, clause: str) -> str:
    text = ldap_filter.strip()
    return f"(&{text if text.startswith('(') else f'({text})'}{clause})"


def batches(items: Iterable, size: int = BATCH):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _lower(attributes: Mapping[str, list]) -> dict[str, list]:
    return {name.lower(): values for name, values in attributes.items()}


def _text(values) -> str | None:
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(values) -> int | None:
    text = _text(values)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Changed:
    """An object of the naming context whose uSNChanged is inside the delta's window."""

    dn: str
    usn_changed: int
    usn_created: int
    deleted: bool
    group: bool
    name_usn: int | None  # the local USN of its last rename or move (None: metadata not readable)
    old_dn: str | None  # tombstones: the DN it had


def changed_object(entry: RawEntry) -> tuple[str, Changed] | None:
    attributes = _lower(entry.attributes)
    guid = attributes.get("objectguid") or []
    if not guid or len(guid[0]) != 16:
        return None
    deleted = (_text(attributes.get("isdeleted")) or "").upper() == "TRUE"
    classes = {(_text([value]) or "").lower() for value in attributes.get("objectclass") or []}
    metadata = attributes.get("replpropertymetadata") or []
    old = None
    if deleted:
        old = tombstone_old_dn(entry.dn, _text(attributes.get("name")), _text(attributes.get("msds-lastknownrdn")),
                               _text(attributes.get("lastknownparent")))
    return guid_text(guid[0]), Changed(
        dn=entry.dn, usn_changed=_int(attributes.get("usnchanged")) or 0, usn_created=_int(attributes.get("usncreated")) or 0,
        deleted=deleted, group="group" in classes, name_usn=name_change_usn(metadata[0]) if metadata else None, old_dn=old)


class _WithControls:
    """A connection whose searches carry extra request controls (show-deleted), so that
    `paged.paged_search` reads them with its checks; everything else is the connection's own."""

    __slots__ = ("_connection", "_controls")

    def __init__(self, connection, controls: list[tuple]):
        object.__setattr__(self, "_connection", connection)
        object.__setattr__(self, "_controls", controls)

    def search(self, *args, **kwargs):
        kwargs["controls"] = [*self._controls, *(kwargs.get("controls") or ())]
        return self._connection.search(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def __setattr__(self, name, value):
        setattr(self._connection, name, value)


class UsnChanges:
    """`DeltaMethod` for Active Directory (and Samba AD): uSNChanged watermarks of one domain controller."""

    name = "usn"
    uuid_attribute = "objectGUID"

    def __init__(self, page_size: int = 500, batch: int = BATCH):
        self.page_size = page_size
        self.batch = batch

    def uuid_of(self, entry: RawEntry) -> str | None:
        for name, values in entry.attributes.items():
            if name.lower() == "objectguid":
                if values and len(values[0]) == 16:
                    return guid_text(bytes(values[0]))
                return None
        return None

    # ── identity and start ─────────────────────────────────────────────────────────────

    def identity(self, connection, searches: Mapping[str, Search]) -> str:
        directory = _directory(searches)
        return self._identity(connection, directory, self._root(connection, directory), searches)

    def start(self, connection, searches: Mapping[str, Search]) -> tuple[str, dict[str, str]]:
        directory = _directory(searches)
        root = self._root(connection, directory)  # highestCommittedUSN before the full read: changes after it are reported
        usn = _int(root.get("highestcommittedusn"))
        if usn is None:
            raise DirectoryError(f"directory {directory}: the server's root DSE has no highestCommittedUSN; "
                                 f"it is not an Active Directory domain controller")
        token = format_token(usn, generalized_time((root.get("currenttime") or [None])[0]) or datetime.now(timezone.utc))
        return self._identity(connection, directory, root, searches), {name: token for name in searches}

    def _identity(self, connection, directory: str, root: dict, searches: Mapping[str, Search]) -> str:
        service = _text(root.get("dsservicename"))
        if not service:
            raise DirectoryError(f"directory {directory}: the server's root DSE names no dsServiceName; it is not an "
                                 f"Active Directory domain controller (kind active-directory)")
        entry = self._base(connection, Search(directory, service, "(objectClass=*)", "base", ("invocationId",)))
        values = _lower(entry.attributes).get("invocationid") if entry else None
        if not values or len(values[0]) != 16:
            raise DirectoryError(f"directory {directory}: the invocationId of {service} could not be read; the bind "
                                 f"account needs read access to the domain controller's NTDS Settings object")
        return f"{guid_text(bytes(values[0]))}@{'|'.join(_contexts(root, searches))}"

    # ── changes ────────────────────────────────────────────────────────────────────────

    def changes(self, connection, searches: Mapping[str, Search], cached: Mapping[str, Mapping[str, RawEntry]],
                tokens: Mapping[str, str]) -> dict[str, Delta]:
        if not searches:
            return {}
        directory = _directory(searches)
        root = self._root(connection, directory)
        now_usn = _int(root.get("highestcommittedusn"))
        if now_usn is None:
            raise DirectoryError(f"directory {directory}: the server's root DSE has no highestCommittedUSN")
        server_now = generalized_time((root.get("currenttime") or [None])[0]) or datetime.now(timezone.utc)
        marks = {name: parse_token(tokens.get(name)) for name in searches}
        for usn, _ in marks.values():
            if usn > now_usn:
                raise TokenRefused(f"the server's highest committed USN ({now_usn}) is below the kept watermark "
                                   f"({usn}): not the database the kept state was read from")
        check_age(min(when for _, when in marks.values()), server_now, self._lifetime(connection, directory, root))
        new_token = format_token(now_usn, server_now)
        since = min(usn for usn, _ in marks.values())
        latest = max(usn for usn, _ in marks.values())

        self._check_attributes(connection, directory, root, searches)
        contexts = _contexts(root, searches)
        controls = [(SHOW_RECYCLED_OID if SHOW_RECYCLED_OID in _texts(root.get("supportedcontrol")) else SHOW_DELETED_OID,
                     True, None)]
        for context in contexts:
            self._require_tombstones(connection, directory, context, controls)

        changed: dict[str, Changed] = {}
        if since < now_usn:
            for context in contexts:
                changed.update(self._changed(connection, directory, context, since, now_usn, controls))
        if not changed:  # nothing in (since, now]: every search's content is what was kept
            return {name: Delta({}, frozenset(), None, new_token) for name in searches}

        kept_dn: dict[str, str] = {}
        for records in cached.values():
            for key, record in records.items():
                kept_dn.setdefault(key, record.dn)

        # Renames and moves of objects that existed at the watermark.
        renamed: dict[str, Changed] = {}
        for key, item in changed.items():
            if item.deleted or item.usn_created > latest:
                continue
            if key in kept_dn:
                if normalise_dn(kept_dn[key]) != normalise_dn(item.dn):
                    renamed[key] = item
            elif item.name_usn is None or item.name_usn > since:
                renamed[key] = item
        asks_member_of = any(_asks(search, "memberof") for search in searches.values())
        asks_member = any(_asks(search, "member") for search in searches.values())
        for key, item in renamed.items():
            if item.group and key not in kept_dn and asks_member_of:
                raise TokenRefused(f"group {item.dn} was renamed or moved and no search keeps it, so the memberOf "
                                   f"values naming its old DN are not known")
            if self._has_children(connection, directory, item.dn):
                raise TokenRefused(f"{item.dn} was renamed or moved, which changes the DN of every entry below it "
                                   f"without marking them changed")

        # Old DNs of renamed, moved or deleted objects: kept member and memberOf values naming them are stale.
        gone: set[str] = set()
        for key, item in changed.items():
            if key in kept_dn and (item.deleted or key in renamed):
                gone.add(normalise_dn(kept_dn[key]))
            if item.old_dn:
                gone.add(normalise_dn(item.old_dn))
        holders: set[str] = set()  # groups (DN) holding a renamed object no search keeps: their member values changed
        unkept = [key for key in renamed if key not in kept_dn]
        if unkept and asks_member:
            for context in contexts:
                scope = Search(directory, context, "(objectClass=*)", "subtree", ("objectGUID", "memberOf"))
                for entry in self._by_ids(connection, scope, unkept):
                    holders.update(normalise_dn(_decode(v)) for v in _lower(entry.attributes).get("memberof") or [])

        # 1. every search: the entries that changed since its token and match it
        found: dict[str, dict[str, RawEntry]] = {}
        for name, search in searches.items():
            found[name] = self._keyed(self._read(connection, search, f"(uSNChanged>={marks[name][0] + 1})"))

        # 2. changed groups: whose direct membership changed, so whose memberOf did (their uSNChanged did not).
        # A kept group read again in step 1 says exactly who joined and left (its member values then and now);
        # for any other (renamed, or kept by no search) its current members and the kept records naming it.
        before: dict[str, set[str]] = {}
        after: dict[str, set[str]] = {}
        for name, search in searches.items():
            if _asks(search, "member"):
                for key, record in (cached.get(name) or {}).items():
                    before.setdefault(key, _member_dns(record))
                for key, entry in found[name].items():
                    after.setdefault(key, _member_dns(entry))
        joined_or_left: set[str] = set()
        whole_groups: list[str] = []
        for key, item in changed.items():
            if not item.group or item.deleted:
                continue
            if key in before and key in after and key not in renamed:
                joined_or_left |= before[key] ^ after[key]
            else:
                whole_groups.append(item.dn)
        whole_groups.sort(key=normalise_dn)
        any_group = any(item.group for item in changed.values())

        deltas: dict[str, Delta] = {}
        for name, search in searches.items():
            token_usn = marks[name][0]
            kept = cached.get(name) or {}
            here = found[name]
            again: set[str] = set()
            if _asks(search, "memberof"):
                if joined_or_left:
                    again |= {key for key, record in kept.items() if normalise_dn(record.dn) in joined_or_left}
                again |= set(_naming(kept, gone | {normalise_dn(dn) for dn in whole_groups}))
                for group_dns in batches(whole_groups, self.batch):
                    clause = or_filter([f"(memberOf={escape_filter_chars(dn)})" for dn in group_dns])
                    here.update(self._keyed(self._read(connection, search, clause)))
            if _asks(search, "member"):
                again |= set(_naming(kept, gone, ("member",)))
                if holders:
                    again |= {key for key, record in kept.items() if normalise_dn(record.dn) in holders}
            # 3. a filter on memberOf (the in-chain clause) matches through groups: after any group change, the
            # ids it matches now are enumerated; ids no longer there left, new ones are read
            present: set[str] | None = None
            if any_group and "memberof" in filter_attributes(search.filter):
                ids_only = Search(search.directory, search.base, search.filter, search.scope, (self.uuid_attribute,))
                present = set(self._keyed(paged_search(connection, ids_only, self.page_size,
                                                       ignore_ad_system_references=True)))
                again |= present - set(kept)
            # 4. read again what may have changed without its uSNChanged
            again -= set(here)
            asked = set(again)
            here.update(self._keyed(self._by_ids(connection, search, sorted(again))))
            # what left the content: changed since the token (deleted ones too), read again, or no longer
            # matched, and not found in it
            removed = {key for key in kept if key in changed and changed[key].usn_changed > token_usn}
            removed |= asked & set(kept)
            if present is not None:
                removed |= set(kept) - present
            removed -= set(here)
            deltas[name] = Delta(here, frozenset(removed), None, new_token)
        return deltas

    def _keyed(self, entries: Iterable[RawEntry]) -> dict[str, RawEntry]:
        keyed: dict[str, RawEntry] = {}
        for entry in entries:
            key = self.uuid_of(entry)
            if key is not None:
                keyed[key] = entry
        return keyed

    # ── reads ──────────────────────────────────────────────────────────────────────────

    def _read(self, connection, search: Search, clause: str) -> list[RawEntry]:
        """The entries of `search` that also match `clause`, as the full read returns them."""
        narrowed = Search(search.directory, search.base, and_filter(search.filter, clause), search.scope,
                          _with_uuid(search.attributes, self.uuid_attribute))
        return [complete_ranges(connection, narrowed, entry)
                for entry in list(paged_search(connection, narrowed, self.page_size, ignore_ad_system_references=True))]

    def _by_ids(self, connection, search: Search, keys: list[str]) -> list[RawEntry]:
        entries: list[RawEntry] = []
        for chunk in batches(keys, self.batch):
            clause = or_filter([f"(objectGUID={escape_bytes(guid_bytes(key))})" for key in chunk])
            entries += self._read(connection, search, clause)
        return entries

    def _changed(self, connection, directory: str, context: str, since: int, upto: int,
                 controls: list[tuple]) -> dict[str, Changed]:
        search = Search(directory, context, f"(&(uSNChanged>={since + 1})(!(uSNChanged>={upto + 1})))", "subtree",
                        CHANGED_ATTRIBUTES)
        result: dict[str, Changed] = {}
        for entry in paged_search(_WithControls(connection, controls), search, self.page_size,
                                  ignore_ad_system_references=True):
            item = changed_object(entry)
            if item is not None:
                result[item[0]] = item[1]
        return result

    def _root(self, connection, directory: str) -> dict[str, list]:
        entry = self._base(connection, Search(directory, "", "(objectClass=*)", "base", ROOT_ATTRIBUTES))
        if entry is None:
            raise Search(directory, "", "(objectClass=*)", "base").failure("the root DSE could not be read")
        return _lower(entry.attributes)

    def _base(self, connection, search: Search, controls: list[tuple] | None = None) -> RawEntry | None:
        """One entry by its DN; None if it does not exist. Any other failure is a DirectoryError."""
        result = send(connection, search, search_scope=BASE, attributes=list(search.attributes) or None,
                      controls=controls)
        if result.get("description") == "noSuchObject":
            return None
        if result.get("result") != 0:
            raise search.failure(result_cause(result))
        for item in connection.response or ():
            if item.get("type") == "searchResEntry":
                return RawEntry(item["dn"], item["raw_attributes"])
        return None

    def _has_children(self, connection, directory: str, dn: str) -> bool:
        search = Search(directory, dn, "(objectClass=*)", "one", ("1.1",))
        result = send(connection, search, attributes=["1.1"], size_limit=1)
        if result.get("description") == "sizeLimitExceeded":
            return True
        if result.get("result") != 0:
            raise search.failure(result_cause(result))
        return any(item.get("type") == "searchResEntry" for item in connection.response or ())

    def _lifetime(self, connection, directory: str, root: dict) -> int:
        """Days a deleted object stays visible: tombstoneLifetime (and msDS-DeletedObjectLifetime with the
        Recycle Bin), AD's default when not set."""
        configuration = _text(root.get("configurationnamingcontext"))
        if not configuration:
            return DEFAULT_TOMBSTONE_DAYS
        dn = f"CN=Directory Service,CN=Windows NT,CN=Services,{configuration}"
        entry = self._base(connection, Search(directory, dn, "(objectClass=*)", "base",
                                              ("tombstoneLifetime", "msDS-DeletedObjectLifetime")))
        attributes = _lower(entry.attributes) if entry else {}
        days = [value for value in (_int(attributes.get("tombstonelifetime")),
                                    _int(attributes.get("msds-deletedobjectlifetime"))) if value]
        return min(days) if days else DEFAULT_TOMBSTONE_DAYS

    def _require_tombstones(self, connection, directory: str, context: str, controls: list[tuple]) -> None:
        dn = f"<WKGUID={DELETED_OBJECTS_WKGUID},{context}>"
        entry = self._base(connection, Search(directory, dn, "(objectClass=*)", "base", ("isDeleted", "objectGUID")),
                           controls)
        values = _lower(entry.attributes).get("isdeleted") if entry else None
        if not values:
            raise TokenRefused(f"the bind account cannot read the Deleted Objects container of {context}, so "
                               f"deletions would go unseen; grant it List Contents and Read Property there "
                               f"(dsacls \"CN=Deleted Objects,{context}\" /takeownership, then /G DOMAIN\\account:LCRP)")

    def _check_attributes(self, connection, directory: str, root: dict, searches: Mapping[str, Search]) -> None:
        names: dict[str, str] = {}
        filtered: set[str] = set()
        for search in searches.values():
            for attribute in search.attributes:
                names.setdefault(attribute.lower(), attribute)
            for attribute in filter_attributes(search.filter):
                names.setdefault(attribute, attribute)
                filtered.add(attribute)
        schema = _text(root.get("schemanamingcontext"))
        wanted = [name for name in names if name not in ALWAYS_CURRENT and not name[0].isdigit() and name != "1.1"]
        if not schema or not wanted:
            return
        for chunk in batches(sorted(wanted), self.batch):
            clause = or_filter([f"(lDAPDisplayName={escape_filter_chars(name)})" for name in chunk])
            search = Search(directory, schema, f"(&(objectClass=attributeSchema){clause})", "one",
                            ("lDAPDisplayName", "attributeSyntax", "linkID", "systemFlags"))
            for entry in paged_search(connection, search, self.page_size):
                attributes = _lower(entry.attributes)
                display = _text(attributes.get("ldapdisplayname")) or ""
                why = attribute_verdict(display, _text(attributes.get("attributesyntax")), _int(attributes.get("linkid")),
                                        _int(attributes.get("systemflags")) or 0)
                if why:
                    where = "filters on" if display.lower() in filtered else "reads"
                    raise TokenRefused(f"a search {where} {why}; AD does not mark an entry changed when it changes")


def _directory(searches: Mapping[str, Search]) -> str:
    return next(iter(searches.values())).directory if searches else ""


def _texts(values) -> set[str]:
    return {value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value) for value in values or ()}


def _asks(search: Search, attribute: str) -> bool:
    return any(name.lower() == attribute for name in search.attributes)


def _with_uuid(attributes: tuple[str, ...], uuid_attribute: str) -> tuple[str, ...]:
    if any(name.lower() == uuid_attribute.lower() for name in attributes):
        return attributes
    return (*attributes, uuid_attribute)


def _contexts(root: dict, searches: Mapping[str, Search]) -> list[str]:
    """The naming contexts holding the searches' bases (the longest advertised suffix of each)."""
    advertised = [value for value in _texts(root.get("namingcontexts")) if value]
    default = _text(root.get("defaultnamingcontext"))
    chosen: set[str] = set()
    for search in searches.values():
        base = normalise_dn(search.base)
        holders = [nc for nc in advertised if base == normalise_dn(nc) or base.endswith("," + normalise_dn(nc))]
        if holders:
            chosen.add(max(holders, key=lambda nc: len(normalise_dn(nc))))
        else:
            chosen.add(default or search.base)
    return sorted(chosen, key=normalise_dn)


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _member_dns(entry: RawEntry) -> set[str]:
    return {normalise_dn(_decode(value)) for name, values in entry.attributes.items() if name.lower() == "member"
            for value in values or ()}


def _naming(kept: Mapping[str, RawEntry], dns: set[str], attributes: tuple[str, ...] = ("member", "memberof")
            ) -> Iterable[str]:
    """The kept ids whose values of `attributes` (member, memberOf) name one of `dns` (normalised)."""
    if not dns:
        return
    seen: dict = {}
    for key, record in kept.items():
        for name, values in record.attributes.items():
            if name.lower() not in attributes:
                continue
            hit = False
            for value in values or ():
                answer = seen.get(value)
                if answer is None:
                    answer = seen[value] = normalise_dn(_decode(value)) in dns
                if answer:
                    hit = True
                    break
            if hit:
                yield key
                break
