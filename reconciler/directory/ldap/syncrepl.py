"""OpenLDAP delta reads: RFC 4533 content synchronisation, refreshOnly, against slapd's syncprov overlay.

`SyncRepl` satisfies `delta_read.DeltaMethod`. A token is an RFC 4533 cookie as slapd writes it
(`rid=000,csn=<CSN>[;<CSN>...]`); a delta is one refreshOnly search per search, with that search's
base, scope, filter and attributes (entryUUID added), critical, reloadHint FALSE. What slapd 2.5
answers (seen in tests/integration/test_syncrepl.py, read in syncprov.c):

- a session log covering the cookie (`syncprov-sessionlog N`, the cookie newer than the log's oldest
  operation): a delete phase. One syncIdSet per left entry, refreshDeletes TRUE (deletes, moves out of
  the base, modifies out of the filter; also every other deleted or modified entry of the database,
  which `removed` drops unless it is a kept record), the added and modified entries in full (state add),
  Sync Done with refreshDeletes TRUE;
- otherwise (no session log, or a cookie older than it): a present phase. The uuids of every entry of
  the content in syncIdSet messages (refreshDeletes FALSE, 256 a message), the changed entries in full,
  Sync Done with refreshDeletes FALSE: every kept record in neither left the content;
- nothing at all when nothing in the database changed (Sync Done without a cookie): the token stays;
- a cookie older than every entry: e-syncRefreshRequired (4096, `TokenRefused`) if the overlay has
  `syncprov-reloadhint TRUE`; without it (slapd's default) slapd ignores the cookie and sends the whole
  content as a present phase, which is correct and as costly as a full read.

Cookies slapd cannot use are refused here before it sees them (`TokenRefused`, the caller reads in
full), because slapd takes a cookie that does not parse (no `rid=`, a CSN that is not a CSN) for no
cookie and sends the whole content with refreshDeletes TRUE: a "delta" that never removes a record.
A cookie newer than the naming context's contextCSN (a restored database, a provider behind the one the
cookie came from) or with a server id the database has no changes of is refused too (slapd answers the
first with unwillingToPerform only for its own server id, and skips changes otherwise).

`start` reads the contextCSN of each search base's naming context (the suffix entry, where syncprov
serves it) and makes the cookie from it: every later change has a greater entryCSN, and slapd takes
such a cookie like one it wrote. `identity` is the suffix entry's entryUUID (a database rebuilt from
scratch has a new one; a replica of the same database keeps it, and its cookies are valid there too),
the suffix and the server ids in its contextCSN (a new provider writing to the database changes it: a
full read). A database without syncprov has no contextCSN: `start` fails with a DirectoryError that
says so. (389 DS's content synchronisation plug-in has other cookies and no contextCSN: not this class.)

What syncprov never reports: slapd's memberof overlay (and dynlist) changes memberOf on the members, and
refint rewrites member values, as internal operations without an entryCSN, so no sync search sees
them; `repair_unreplicated` reads the records they may have changed again (see there).

Every sync search is sent with derefAliases never (slapd refuses any other value; the full read
dereferences: a search base with alias entries reads differently). Its entries carry a Sync State
control, which the connection's lean decoder leaves to ldap3's own decoder (it decodes only entries
without controls), so `connection.response` keeps the control values; an entry without one fails the
read. The controls and Sync Info messages are decoded with pyasn1 against RFC 4533's ASN.1; anything
malformed is a `DirectoryError`, never a traceback.

Memory: ldap3 collects one search's messages before it returns, so a delta holds its changed entries
about twice (ldap3's decoded messages, each dropped as it becomes a `RawEntry`) and, in a present
phase, the uuids of the content as text; unchanged entries are never sent in full.
"""
from __future__ import annotations

import re
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ldap3 import BASE, DEREF_NEVER
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import namedtype, namedval, tag, univ

from ...dn import normalise_dn
from ..delta import Delta, TokenRefused
from .paged import PAGED_RESULTS_OID, SCOPES, RawEntry, Search, client_side_cause, result_cause, send

SYNC_REQUEST_OID = "1.3.6.1.4.1.4203.1.9.1.1"
SYNC_STATE_OID = "1.3.6.1.4.1.4203.1.9.1.2"
SYNC_DONE_OID = "1.3.6.1.4.1.4203.1.9.1.3"
SYNC_INFO_OID = "1.3.6.1.4.1.4203.1.9.1.4"
E_SYNC_REFRESH_REQUIRED = 4096
UNWILLING_TO_PERFORM = 53
REFRESH_ONLY = 1
REFRESH_AND_PERSIST = 3
RID = 0  # slapd wants a replica id in every cookie (0..999); it only echoes it back to us


# ── RFC 4533's ASN.1 (section 2, implicit tags) ───────────────────────────────────────────

class _Mode(univ.Enumerated):
    namedValues = namedval.NamedValues(("refreshOnly", REFRESH_ONLY), ("refreshAndPersist", REFRESH_AND_PERSIST))


class _SyncRequestValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("mode", _Mode()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("reloadHint", univ.Boolean(False)),
    )


class _State(univ.Enumerated):
    namedValues = namedval.NamedValues(("present", 0), ("add", 1), ("modify", 2), ("delete", 3))


class _SyncStateValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("state", _State()),
        namedtype.NamedType("entryUUID", univ.OctetString()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
    )


class _SyncDoneValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
    )


def _context(number: int, constructed: bool) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed if constructed else tag.tagFormatSimple, number)


class _RefreshPhase(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDone", univ.Boolean(True)),
    )


class _SyncIdSet(univ.Sequence):
    # syncUUIDs SET OF syncUUID, taken as it came and split by `_uuid_set`: pyasn1 spends 4 ms on a set
    # of 256 (a present phase of a million entries sends 3,900 of them), the split 0.1 ms
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
        namedtype.NamedType("syncUUIDs", univ.Any()),
    )


class _SyncInfoValue(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("newcookie", univ.OctetString().subtype(implicitTag=_context(0, False))),
        namedtype.NamedType("refreshDelete", _RefreshPhase().subtype(implicitTag=_context(1, True))),
        namedtype.NamedType("refreshPresent", _RefreshPhase().subtype(implicitTag=_context(2, True))),
        namedtype.NamedType("syncIdSet", _SyncIdSet().subtype(implicitTag=_context(3, True))),
    )


class MalformedSync(ValueError):
    """A control or Sync Info message that is not RFC 4533's: the message says which and how."""


@dataclass(frozen=True)
class SyncState:
    """An entry's Sync State control: `state` present|add|modify|delete, the entry's uuid as text."""

    state: str
    uuid: str
    cookie: str | None = None


@dataclass(frozen=True)
class SyncDone:
    cookie: str | None
    refresh_deletes: bool


@dataclass(frozen=True)
class SyncInfo:
    """A Sync Info message: `kind` newcookie|refreshDelete|refreshPresent|syncIdSet."""

    kind: str
    cookie: str | None = None
    refresh_done: bool = True  # refreshDelete / refreshPresent
    refresh_deletes: bool = False  # syncIdSet: the uuids left the content (else they are present)
    uuids: tuple[str, ...] = ()


def request_value(cookie: str | None, reload_hint: bool = False, mode: int = REFRESH_ONLY) -> bytes:
    """The Sync Request control's value (DER: BOOLEAN TRUE as 0xFF, DEFAULT values left out)."""
    value = _SyncRequestValue()
    value["mode"] = mode
    if cookie is not None:
        value["cookie"] = cookie.encode("utf-8")
    if reload_hint:
        value["reloadHint"] = True
    return der_encoder.encode(value)


def request_control(cookie: str | None) -> tuple[str, bool, bytes]:
    """The control as ldap3 takes it: critical, so a server without syncprov refuses instead of answering
    a plain search."""
    return SYNC_REQUEST_OID, True, request_value(cookie)


def _decode(data: Any, spec: Any, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise MalformedSync(f"the {what} has no value")
    try:
        value, rest = ber_decoder.decode(bytes(data), asn1Spec=spec)
    except Exception as error:  # PyAsn1Error, and what pyasn1 trips over itself on some input (AttributeError)
        raise MalformedSync(f"the {what} is not valid BER for RFC 4533 ({error.__class__.__name__})") from None
    if rest:
        raise MalformedSync(f"the {what} has {len(rest)} bytes after its value")
    return value


def _text(value: Any, what: str) -> str | None:
    if value is None or not value.isValue:
        return None
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSync(f"the {what} is not UTF-8") from None


def _optional(sequence: Any, name: str) -> Any:
    component = sequence.getComponentByName(name)
    return component if component is not None and component.isValue else None


def uuid_text(raw: bytes) -> str:
    """A syncUUID (16 octets) as entryUUID prints it: lower-case hex with dashes."""
    if len(raw) != 16:
        raise MalformedSync(f"a syncUUID has {len(raw)} octets, not 16")
    return str(uuid_module.UUID(bytes=bytes(raw)))


_STATES = {0: "present", 1: "add", 2: "modify", 3: "delete"}


def decode_state(data: Any) -> SyncState:
    """An entry's Sync State control. Its usual form (short lengths, a 16-octet uuid, the cookie absent or
    short) is read directly, one entry in 2 µs rather than pyasn1's 130 µs (a whole content resent is a
    million of them); any other form goes to pyasn1, which decides whether it is RFC 4533's."""
    quick = _usual_state(data)
    if quick is not None:
        return quick
    value = _decode(data, _SyncStateValue(), "Sync State control")
    number = int(value["state"])
    if number not in _STATES:
        raise MalformedSync(f"the Sync State control has the unknown state {number}")
    return SyncState(_STATES[number], uuid_text(bytes(value["entryUUID"])),
                     _text(_optional(value, "cookie"), "Sync State cookie"))


def _usual_state(data: Any) -> SyncState | None:
    # 30 L | 0a 01 state | 04 10 uuid(16) | [04 l cookie(l)]  with every length under 128
    if not isinstance(data, bytes) or len(data) < 23 or data[0] != 0x30 or data[1] != len(data) - 2 \
            or data[2:4] != b"\x0a\x01" or data[4] not in _STATES or data[5:7] != b"\x04\x10":
        return None
    cookie = None
    if len(data) > 23:
        if data[23] != 0x04 or data[24] >= 0x80 or len(data) != 25 + data[24]:
            return None
        try:
            cookie = data[25:].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return SyncState(_STATES[data[4]], str(uuid_module.UUID(bytes=data[7:23])), cookie)


def decode_done(data: Any) -> SyncDone:
    if data is None or data == b"":  # syncDoneValue with every component absent may come as no value
        return SyncDone(None, False)
    value = _decode(data, _SyncDoneValue(), "Sync Done control")
    return SyncDone(_text(_optional(value, "cookie"), "Sync Done cookie"), bool(value["refreshDeletes"]))


def decode_info(data: Any) -> SyncInfo:
    value = _decode(data, _SyncInfoValue(), "Sync Info message")
    kind = value.getName()
    component = value.getComponent()
    if kind == "newcookie":
        return SyncInfo(kind, _text(component, "Sync Info newcookie"))
    cookie = _text(_optional(component, "cookie"), f"Sync Info {kind} cookie")
    if kind in ("refreshDelete", "refreshPresent"):
        return SyncInfo(kind, cookie, refresh_done=bool(component["refreshDone"]))
    uuids = _uuid_set(bytes(component["syncUUIDs"]))
    return SyncInfo(kind, cookie, refresh_deletes=bool(component["refreshDeletes"]), uuids=uuids)


def _uuid_set(data: bytes) -> tuple[str, ...]:
    """SET OF syncUUID (its whole encoding): each member `04 10` and 16 octets."""
    if len(data) < 2 or data[0] != 0x31:
        raise MalformedSync("the syncIdSet's syncUUIDs is not a SET")
    first = data[1]
    if first < 0x80:
        size, start = first, 2
    elif 0 < first & 0x7F <= 4 and len(data) >= 2 + (first & 0x7F):
        start = 2 + (first & 0x7F)
        size = int.from_bytes(data[2:start], "big")
    else:
        raise MalformedSync("the syncIdSet's syncUUIDs has a length that is not BER's definite form")
    if start + size != len(data) or size % 18:
        raise MalformedSync("the syncIdSet's syncUUIDs is not a set of 16-octet uuids")
    uuids = []
    for position in range(start, len(data), 18):
        if data[position:position + 2] != b"\x04\x10":
            raise MalformedSync("a member of the syncIdSet's syncUUIDs is not a 16-octet OCTET STRING")
        uuids.append(str(uuid_module.UUID(bytes=data[position + 2:position + 18])))
    return tuple(uuids)


# ── cookies ──────────────────────────────────────────────────────────────────────────────

# slapd's CSN syntax: GeneralizedTime with microseconds, change count, server id, modification number
_CSN = re.compile(r"\A[0-9]{14}\.[0-9]{6}Z#[0-9a-f]{6}#(?P<sid>[0-9a-f]{3})#[0-9a-f]{6}\Z", re.IGNORECASE)


@dataclass(frozen=True)
class Cookie:
    """A syncprov cookie: `csns` by server id (three hex digits, lower case)."""

    rid: int
    csns: dict[str, str]


def compose_cookie(csns: Iterable[str], rid: int = RID) -> str:
    """`rid=000,csn=<CSN>;<CSN>` as slapd writes it, the CSNs in server id order."""
    ordered = sorted(csns, key=lambda csn: int(_CSN.match(csn).group("sid"), 16))  # type: ignore[union-attr]
    return f"rid={rid:03d},csn={';'.join(ordered)}"


def parse_cookie(text: str) -> Cookie | None:
    """The cookie if slapd would honour it (a rid, at least one CSN, one per server id), else None."""
    rid: int | None = None
    csns: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key == "rid":
            if not re.fullmatch(r"[0-9]{1,3}", value):
                return None
            rid = int(value)
        elif key == "sid":
            if not re.fullmatch(r"[0-9a-fA-F]{1,3}", value):
                return None
        elif key == "csn":
            for csn in value.split(";"):
                match = _CSN.match(csn)
                if match is None or match.group("sid").lower() in csns:
                    return None
                csns[match.group("sid").lower()] = csn
        elif key == "delcsn":
            if not _CSN.match(value):
                return None
        else:
            return None
    if rid is None or not csns:
        return None
    return Cookie(rid, csns)


# ── the server's naming contexts ──────────────────────────────────────────────────────────

@dataclass(frozen=True)
class NamingContext:
    """A database's suffix entry: its DN, entryUUID and contextCSN (by server id)."""

    dn: str
    uuid: str
    csns: dict[str, str]

    @property
    def identity(self) -> str:
        return f"{self.uuid}@{normalise_dn(self.dn)}:sid={'+'.join(sorted(self.csns))}"


def _search_or_fail(connection, search: Search, base: str, attributes: list[str], what: str) -> list[dict]:
    """A base search for `attributes` of `base` (the root DSE, a suffix entry); DirectoryError otherwise."""
    try:
        connection.search(base, "(objectClass=*)", search_scope=BASE, attributes=attributes)
    except LDAPCommunicationError as error:
        raise search.failure(f"the connection was lost while reading {what} ({error.__class__.__name__}: {error})") \
            from None
    except LDAPException as error:
        raise search.failure(f"reading {what}: {client_side_cause(error)}") from None
    result = connection.result or {}
    if result.get("result") != 0:
        raise search.failure(f"reading {what}: {result_cause(result)}")
    entries = [item for item in connection.response or () if item.get("type") == "searchResEntry"]
    connection.response = None
    return entries


def _values(entry: dict, name: str) -> list[bytes]:
    for key, values in (entry.get("raw_attributes") or {}).items():
        if key.lower() == name.lower():
            return list(values or ())
    return []


def _decoded(values: list[bytes], search: Search, what: str) -> list[str]:
    try:
        return [bytes(v).decode("utf-8") for v in values]
    except UnicodeDecodeError:
        raise search.failure(f"{what} is not UTF-8") from None


def naming_contexts(connection, searches: Mapping[str, Search]) -> dict[str, NamingContext]:
    """Each search's naming context (the root DSE's namingContexts entry its base is in), read now."""
    if not searches:
        return {}
    first = next(iter(searches.values()))
    root = _search_or_fail(connection, first, "", ["namingContexts"], "the root DSE's namingContexts")
    suffixes = _decoded(_values(root[0], "namingContexts"), first, "namingContexts") if root else []
    read: dict[str, NamingContext] = {}
    found: dict[str, NamingContext] = {}
    for name, search in searches.items():
        base = normalise_dn(search.base)
        candidates = [s for s in suffixes if _under(base, normalise_dn(s))]
        if not candidates:
            listed = ", ".join(suffixes) or "none"
            raise search.failure(f"the base is in none of the server's naming contexts ({listed}); delta reads need "
                                 f"the database that holds it")
        suffix = max(candidates, key=lambda s: len(normalise_dn(s)))
        key = normalise_dn(suffix)
        if key not in read:
            read[key] = _naming_context(connection, search, suffix)
        found[name] = read[key]
    return found


def _under(dn: str, suffix: str) -> bool:
    return suffix == "" or dn == suffix or dn.endswith("," + suffix)


def _naming_context(connection, search: Search, suffix: str) -> NamingContext:
    what = f"entryUUID and contextCSN of the naming context {suffix!r}"
    entries = _search_or_fail(connection, search, suffix, ["entryUUID", "contextCSN"], what)
    if not entries:
        raise search.failure(f"the naming context {suffix!r} cannot be read; delta reads need read access to its "
                             f"entryUUID and contextCSN")
    uuids = _decoded(_values(entries[0], "entryUUID"), search, f"the entryUUID of {suffix!r}")
    csns = _decoded(_values(entries[0], "contextCSN"), search, f"the contextCSN of {suffix!r}")
    if not uuids:
        raise search.failure(f"the naming context {suffix!r} has no readable entryUUID; delta reads need read access "
                             f"to it")
    if not csns:
        raise search.failure(f"the naming context {suffix!r} has no contextCSN: the syncprov overlay is not configured "
                             f"on its database (or it holds no entries yet), and delta reads need OpenLDAP's syncprov "
                             f"(not 389 DS's content synchronisation); configure syncprov or remove delta: from this "
                             f"directory")
    by_sid: dict[str, str] = {}
    for csn in csns:
        match = _CSN.match(csn)
        if match is None:
            raise search.failure(f"the contextCSN of {suffix!r} has a value that is not a CSN ({csn!r})")
        by_sid[match.group("sid").lower()] = csn
    return NamingContext(suffix, uuids[0].lower(), by_sid)


def _identity(contexts: Iterable[NamingContext]) -> str:
    return " ".join(sorted({context.identity for context in contexts}))


# ── the method ────────────────────────────────────────────────────────────────────────────

class SyncRepl:
    """Delta reads from OpenLDAP's syncprov (RFC 4533 refreshOnly); see the module's docstring."""

    name = "syncrepl"
    uuid_attribute = "entryUUID"

    def uuid_of(self, entry: RawEntry) -> str | None:
        for key, values in entry.attributes.items():
            if key.lower() == "entryuuid" and values:
                try:
                    return bytes(values[0]).decode("ascii").strip().lower() or None
                except UnicodeDecodeError:
                    return None
        return None

    def identity(self, connection, searches: Mapping[str, Search]) -> str:
        return _identity(naming_contexts(connection, searches).values())

    def start(self, connection, searches: Mapping[str, Search]) -> tuple[str, dict[str, str]]:
        contexts = naming_contexts(connection, searches)
        tokens = {name: compose_cookie(context.csns.values()) for name, context in contexts.items()}
        return _identity(contexts.values()), tokens

    def changes(self, connection, searches: Mapping[str, Search], cached: Mapping[str, Mapping[str, RawEntry]],
                tokens: Mapping[str, str]) -> dict[str, Delta]:
        contexts = naming_contexts(connection, searches)
        deltas: dict[str, Delta] = {}
        for name, search in searches.items():
            token = tokens.get(name)
            if token is None:
                raise TokenRefused(f"no token is kept for {name}")
            cookie = parse_cookie(token)
            if cookie is None:
                raise TokenRefused(f"the kept token of {name} is not a syncprov cookie slapd would honour "
                                   f"({token[:60]!r})")
            _check_against(cookie, contexts[name], name)
        if all(parse_cookie(tokens[name]).csns == contexts[name].csns for name in searches):  # type: ignore[union-attr]
            # the contextCSNs are the cookies' own: nothing was written to these databases since, not even what
            # the memberof overlay writes (only with the operation that causes it): the kept records stand as
            # they are, untouched (never decoded)
            return {name: Delta({}, frozenset(), None, tokens[name]) for name in searches}
        for name, search in searches.items():
            deltas[name] = refresh(connection, search, tokens[name], cached.get(name))
        if all(deltas[name].token == tokens[name] for name in searches):
            return deltas  # nothing at all changed in the database since the tokens
        return repair_unreplicated(connection, searches, cached, tokens, deltas, contexts)


def _check_against(cookie: Cookie, context: NamingContext, name: str) -> None:
    """Refuses a cookie the server cannot answer from: one with CSNs newer than the server's own state
    (a restored database, a provider behind the one the cookie came from) or of server ids it has not."""
    for sid, csn in cookie.csns.items():
        now = context.csns.get(sid)
        if now is None:
            raise TokenRefused(f"the kept cookie of {name} has changes of server id {sid}, which the naming context "
                               f"{context.dn!r} has none of (another database)")
        if csn > now:  # CSNs compare as text: fixed-width time, count, sid, mod
            raise TokenRefused(f"the kept cookie of {name} is newer than the server's state (contextCSN {now}): "
                               f"the database was restored or this server is behind")


def _with_uuid(attributes: tuple[str, ...]) -> list[str]:
    wanted = list(attributes) or ["*"]
    if not any(a.lower() == "entryuuid" for a in wanted):
        wanted.append("entryUUID")
    return wanted


def _refused(result: dict) -> str | None:
    """Why the server will not answer from the cookie, if that is what the result says."""
    code = result.get("result")
    message = (result.get("message") or "").strip()
    if code == E_SYNC_REFRESH_REQUIRED:
        return f"e-syncRefreshRequired: {message or 'the cookie is too old'}"
    # syncprov (2.5): the cookie's CSN of this server is newer than its contextCSN, or it has none at all
    if code == UNWILLING_TO_PERFORM and ("newer than provider" in message or "provider doesn't" in message):
        return f"unwillingToPerform: {message}"
    return None


def refresh(connection, search: Search, cookie: str, kept: Mapping[str, RawEntry] | None = None) -> Delta:
    """One refreshOnly search from `cookie`: the search's content changes as a Delta, `TokenRefused` when
    the server will not answer from the cookie, `DirectoryError` on anything else short of success.
    `kept` (the records the delta will be applied to), when given, narrows `removed` to its ids: a
    session log names every deleted entry of the database, not only this search's."""
    try:
        connection.search(
            search.base, search.filter, search_scope=SCOPES[search.scope], dereference_aliases=DEREF_NEVER,
            attributes=_with_uuid(search.attributes), controls=[request_control(cookie)],
        )
    except LDAPCommunicationError as error:
        raise search.failure(f"the connection was lost during the sync refresh ({error.__class__.__name__}: {error})") \
            from None
    except LDAPException as error:
        raise search.failure(client_side_cause(error)) from None
    result = connection.result or {}
    responses = connection.response or []
    connection.response = None
    refused = _refused(result)
    if refused is not None:
        raise TokenRefused(refused)
    if result.get("description") == "unavailableCriticalExtension":
        raise search.failure("the server does not offer content synchronisation (RFC 4533) for this base; configure "
                             "the syncprov overlay on its database, or remove delta: from this directory")
    if result.get("result") != 0:
        raise search.failure(result_cause(result))
    try:
        return _content(search, responses, result, cookie, kept)
    except MalformedSync as error:
        raise search.failure(f"the server's sync answer is malformed: {error}") from None


def _content(search: Search, responses: list, result: dict, cookie: str,
             kept: Mapping[str, RawEntry] | None) -> Delta:
    changed: dict[str, RawEntry] = {}
    removed: set[str] = set()
    present: set[str] = set()
    present_phase = False
    last_cookie: str | None = None
    for index, item in enumerate(responses):
        responses[index] = None  # ldap3's decoded message goes as soon as it is read
        kind = item.get("type")
        if kind == "searchResEntry":
            control = (item.get("controls") or {}).get(SYNC_STATE_OID)
            if control is None:
                raise search.failure(f"the entry {item.get('dn')!r} came without a Sync State control, so it cannot "
                                     f"be told apart from a deleted or present one")
            state = decode_state(control.get("value"))
            last_cookie = state.cookie or last_cookie
            if state.state in ("add", "modify"):
                attributes = item.get("raw_attributes") or {}
                changed[state.uuid] = RawEntry(item["dn"], {str(k): v for k, v in attributes.items()})
                removed.discard(state.uuid)
            elif state.state == "present":
                present.add(state.uuid)
                present_phase = True
            else:
                removed.add(state.uuid)
                changed.pop(state.uuid, None)
        elif kind == "intermediateResponse":
            if item.get("responseName") != SYNC_INFO_OID:
                raise search.failure(f"the server sent an intermediate response {item.get('responseName')!r} that is "
                                     f"not a Sync Info message")
            info = decode_info(item.get("responseValue"))
            last_cookie = info.cookie or last_cookie
            if info.kind == "syncIdSet":
                if info.refresh_deletes:
                    removed.update(info.uuids)
                    for uuid in info.uuids:
                        changed.pop(uuid, None)
                else:
                    present.update(info.uuids)
                    present_phase = True
            elif info.kind == "refreshPresent":
                present_phase = True  # the end of a present phase (a delete phase may follow)
        elif kind == "searchResRef":
            raise search.failure(f"the server referred part of the tree elsewhere ({', '.join(item.get('uri') or [])}) "
                                 f"and referrals are not followed; point a search base at that server's directory")
    done_control = (result.get("controls") or {}).get(SYNC_DONE_OID)
    if done_control is None:
        raise search.failure("the sync refresh ended without a Sync Done control, so whether it was complete is "
                             "unknown")
    done = decode_done(done_control.get("value"))
    last_cookie = done.cookie or last_cookie
    if not done.refresh_deletes:
        present_phase = True  # RFC 4533 3.3.1: the content is the changed entries and those reported present
    if kept is not None:
        removed.intersection_update(kept.keys())
    everything = None
    if present_phase:
        present.update(changed)
        present.difference_update(removed)
        everything = frozenset(present)
    present.clear()
    return Delta(changed=changed, removed=frozenset(removed), present=everything, token=last_cookie or cookie)


# ── what the sync protocol does not say: values slapd changes without a CSN ──────────────
#
# memberOf (the memberof overlay, or dynlist at read time) changes on the member entries when a group
# gains or loses them, is renamed or deleted; refint (and memberof-refint) rewrite member values in
# groups when a member is renamed or deleted. slapd makes those modifications with o_dont_replicate
# and no entryCSN (a consumer is expected to run the same overlays), so syncprov never reports the
# entries they change: a delta would keep stale memberOf and member values. `repair_unreplicated`
# finds the kept records such changes may have touched and reads them again.

MEMBER_ATTRIBUTES = ("member", "uniqueMember")
GROUPS_FILTER = "(|(member=*)(uniqueMember=*))"  # what memberOf values can name (memberof's member-ad)
BATCH = 100  # entryUUIDs per re-read search
LISTING_PAGE = 1000


def _asks(search: Search, names: tuple[str, ...], operational: bool) -> bool:
    """Whether the search's entries carry any of `names` (`*` brings user attributes, `+` operational ones)."""
    wanted = {a.lower() for a in search.attributes} or {"*"}
    return bool(wanted & {n.lower() for n in names}) or ("+" if operational else "*") in wanted


def _values_of(entry: RawEntry, names: tuple[str, ...]) -> list:
    lowered = {n.lower() for n in names}
    return [v for key, values in entry.attributes.items() if key.lower() in lowered for v in values or ()]


class _Dns:
    """Attribute values as normalised DNs, each distinct value normalised once."""

    def __init__(self) -> None:
        self._seen: dict[Any, str] = {}

    def __call__(self, value: Any) -> str:
        key = self._seen.get(value)
        if key is None:
            text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
            if text.endswith("'B") and "#'" in text:  # uniqueMember's optional UID: dn#'0101'B
                text = text[: text.rindex("#'")]
            key = self._seen[value] = normalise_dn(text)
        return key


def _unchanged(kept: Mapping[str, RawEntry], delta: Delta) -> Iterable[tuple[str, RawEntry]]:
    """The kept records the delta leaves as they were."""
    for key, record in kept.items():
        if key in delta.changed or key in delta.removed or (delta.present is not None and key not in delta.present):
            continue
        yield key, record


def _in_scope(dn: str, search: Search) -> bool:
    base = normalise_dn(search.base)
    if search.scope == "base":
        return dn == base
    if not dn.endswith("," + base):
        return False
    return search.scope != "one" or "," not in dn[: -len(base) - 1].replace("\\,", "")


def _newer(csn: str, cookie: Cookie) -> bool:
    match = _CSN.match(csn)
    if match is None:
        return True
    known = cookie.csns.get(match.group("sid").lower())
    return known is None or csn > known


def repair_unreplicated(connection, searches: Mapping[str, Search], cached: Mapping[str, Mapping[str, RawEntry]],
                        tokens: Mapping[str, str], deltas: dict[str, Delta],
                        contexts: Mapping[str, NamingContext]) -> dict[str, Delta]:
    """The deltas with the records that changes without a CSN may have touched read again:

    - memberOf (searches that ask for it): every kept record naming a group that no longer exists as a
      group (deleted, renamed) or that changed since the token, and every current member of such a group
      (a search whose filter tests memberOf without asking for it: every kept record);
    - member, uniqueMember (searches that ask for them): every kept record naming, as a member, an entry
      of these searches that was removed or renamed (refint rewrites those values).
    Groups are the entries with member or uniqueMember values in the naming context (one paged listing
    of their DNs and entryCSNs per naming context, only when a search asks for memberOf)."""
    dn_of = _Dns()
    again: dict[str, set[str]] = {name: set() for name in searches}  # kept uuids to read again
    lookup: dict[str, set[str]] = {name: set() for name in searches}  # DNs not kept that may have come in

    # refint: old DNs of entries these searches saw leave or move
    old_dns: set[str] = set()
    for name, delta in deltas.items():
        kept = cached.get(name) or {}
        for key, record in kept.items():
            if key in delta.removed or (delta.present is not None and key not in delta.present):
                old_dns.add(dn_of(record.dn))
            elif key in delta.changed and dn_of(delta.changed[key].dn) != dn_of(record.dn):
                old_dns.add(dn_of(record.dn))
    if old_dns:
        names_old: dict[Any, bool] = {}  # member value as kept -> whether it names an old DN (values repeat)
        for name, search in searches.items():
            if _asks(search, MEMBER_ATTRIBUTES, operational=False):
                for key, record in _unchanged(cached.get(name) or {}, deltas[name]):
                    for value in _values_of(record, MEMBER_ATTRIBUTES):
                        stale = names_old.get(value)
                        if stale is None:
                            stale = names_old[value] = dn_of(value) in old_dns
                        if stale:
                            again[name].add(key)
                            break

    # memberOf: groups that changed or are gone since each search's token. A group a search keeps (same DN before
    # and after) says exactly who joined and left: its member values then and now; only they are read again.
    before: dict[str, set[str]] = {}
    after: dict[str, set[str]] = {}
    for name, search in searches.items():
        if not _asks(search, MEMBER_ATTRIBUTES, operational=False):
            continue
        kept = cached.get(name) or {}
        for key, entry in deltas[name].changed.items():
            old = kept.get(key)
            if old is not None and dn_of(old.dn) == dn_of(entry.dn):
                group = dn_of(entry.dn)
                before[group] = {dn_of(v) for v in _values_of(old, MEMBER_ATTRIBUTES)}
                after[group] = {dn_of(v) for v in _values_of(entry, MEMBER_ATTRIBUTES)}
    listings: dict[str, dict[str, tuple[str, list[str]]]] = {}
    members: dict[str, list[str]] = {}
    for name, search in searches.items():
        carried = _asks(search, ("memberOf",), operational=True)
        if not carried and "memberof" not in search.filter.lower():
            continue
        context = contexts[name]
        listing = listings.get(normalise_dn(context.dn))
        if listing is None:
            listing = listings[normalise_dn(context.dn)] = _groups(connection, search, context)
        cookie = parse_cookie(tokens[name])
        assert cookie is not None  # checked before the refresh
        changed_groups = {key for key, (_dn, csns) in listing.items() if any(_newer(c, cookie) for c in csns)}
        kept = cached.get(name) or {}
        delta = deltas[name]
        if not carried:  # a filter on memberOf without its values kept: who left a group is not known
            again[name].update(key for key, _record in _unchanged(kept, delta))
        exact = {group for group in changed_groups if group in before}  # who joined and left is known
        stale_groups: dict[Any, bool] = {}  # memberOf value as kept -> whether its holder must be read again
        for key, record in _unchanged(kept, delta) if carried else ():
            for value in _values_of(record, ("memberOf",)):
                stale = stale_groups.get(value)
                if stale is None:
                    group = dn_of(value)
                    stale = stale_groups[value] = group not in listing or (group in changed_groups and group not in exact)
                if stale:
                    again[name].add(key)
                    break
        affected: set[str] = set()
        for group in sorted(changed_groups):
            if group in exact:
                affected |= before[group] ^ after[group]
            else:
                if group not in members:
                    members[group] = [dn_of(v) for v in _member_values(connection, search, listing[group][0])]
                affected.update(members[group])
        if affected:
            by_dn = {dn_of(record.dn): key for key, record in _unchanged(kept, delta)}
            fresh = {dn_of(entry.dn) for entry in delta.changed.values()}
            for member in sorted(affected):
                if member in by_dn:
                    again[name].add(by_dn[member])
                elif member not in fresh and _in_scope(member, search):
                    lookup[name].add(member)

    for name, search in searches.items():
        if again[name] or lookup[name]:
            deltas[name] = _reread(connection, search, deltas[name], cached.get(name) or {}, again[name], lookup[name])
    return deltas


def _groups(connection, search: Search, context: NamingContext) -> dict[str, tuple[str, list[str]]]:
    """Every group of the naming context: normalised DN -> (DN, entryCSN values). Continuation references
    are passed over: memberOf names entries of this database only. (paged.paged_search would refuse them,
    and count the groups as entries read.)"""
    listing = Search(search.directory, context.dn, GROUPS_FILTER, "subtree", ("entryCSN",))
    groups: dict[str, tuple[str, list[str]]] = {}
    cookie: bytes | None = None
    while True:
        result = send(connection, listing, during=" while listing the groups", dereference_aliases=DEREF_NEVER,
                      attributes=["entryCSN"], paged_size=LISTING_PAGE, paged_cookie=cookie, paged_criticality=True)
        if result.get("result") != 0:
            raise listing.failure(f"listing the groups whose members' memberOf may have changed: "
                                  f"{result_cause(result)}")
        for item in connection.response or ():
            if item.get("type") == "searchResEntry":
                csns = [bytes(v).decode("ascii", "replace") for v in _values(item, "entryCSN")]
                groups[normalise_dn(item["dn"])] = (item["dn"], csns)
        connection.response = None
        control = (result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
        cookie = (control.get("value") or {}).get("cookie") or None
        if not cookie:
            return groups


def _member_values(connection, search: Search, dn: str) -> list:
    entries = _search_or_fail(connection, search, dn, list(MEMBER_ATTRIBUTES), f"the members of {dn!r}")
    if not entries:
        return []
    return [v for name in MEMBER_ATTRIBUTES for v in _values(entries[0], name)]


def _plain_search(connection, search: Search, base: str, scope: str, ldap_filter: str, what: str) -> list[RawEntry]:
    asked = Search(search.directory, base, ldap_filter, scope, search.attributes)
    result = send(connection, asked, during=f" while reading {what} again", attributes=_with_uuid(search.attributes))
    if scope == "base" and result.get("description") == "noSuchObject":
        connection.response = None
        return []
    if result.get("result") != 0:
        raise search.failure(f"reading {what} again: {result_cause(result)}")
    found = [RawEntry(item["dn"], item["raw_attributes"]) for item in connection.response or ()
             if item.get("type") == "searchResEntry"]
    connection.response = None
    return found


def _parenthesised(ldap_filter: str) -> str:
    text = ldap_filter.strip()
    return text if text.startswith("(") else f"({text})"


def _reread(connection, search: Search, delta: Delta, kept: Mapping[str, RawEntry], again: set[str],
            lookup: set[str]) -> Delta:
    """The delta with the kept records `again` and the entries at `lookup` (DNs) as the server has them now."""
    changed = dict(delta.changed)
    removed = set(delta.removed)
    present = set(delta.present) if delta.present is not None else None
    method = SyncRepl()
    found: dict[str, RawEntry] = {}
    keys = sorted(again)
    for start in range(0, len(keys), BATCH):
        batch = keys[start:start + BATCH]
        wanted = "".join(f"(entryUUID={key})" for key in batch)
        for entry in _plain_search(connection, search, search.base, search.scope, f"(&{_parenthesised(search.filter)}"
                                   f"(|{wanted}))",
                                   "entries whose memberOf or member values may have changed"):
            key = method.uuid_of(entry)
            if key is not None:
                found[key] = entry
        for key in batch:
            if key not in found:  # it left the content without a CSN (a filter on memberOf)
                removed.add(key)
                changed.pop(key, None)
                if present is not None:
                    present.discard(key)
    for dn in sorted(lookup):
        for entry in _plain_search(connection, search, dn, "base", search.filter, f"the new member {dn!r}"):
            key = method.uuid_of(entry)
            if key is not None:
                found[key] = entry
    for key, entry in found.items():
        changed[key] = entry
        removed.discard(key)
        if present is not None:
            present.add(key)
    removed &= kept.keys()
    return Delta(changed=changed, removed=frozenset(removed),
                 present=frozenset(present) if present is not None else None, token=delta.token)
