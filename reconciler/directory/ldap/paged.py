"""Complete reads or none: a paged search and ranged attribute retrieval that
check every result and raise `DirectoryError` on anything short of success.

ldap3's own `paged_search` generator is not used on purpose: when a server
answers a page with adminLimitExceeded (slapd's answer to a paged search over
a bind account's size limit) it simply stops, and the caller sees a shorter,
successful-looking result. A short read of a directory becomes a plan that
deactivates everyone missing from it, so every page's result code is checked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

from ldap3 import BASE, LEVEL, SUBTREE
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException, LDAPInvalidFilterError

from ...errors import DirectoryError
from ...model import quick_init
from ...progress import current

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
SCOPES = {"subtree": SUBTREE, "one": LEVEL, "base": BASE}

# The naming contexts an AD domain controller refers to when a subtree search
# starts at the domain root. They hold configuration, schema and DNS records,
# never the domain's users or groups, so not following them loses nothing.
AD_SYSTEM_CONTEXTS = ("cn=configuration,", "cn=schema,", "dc=domaindnszones,", "dc=forestdnszones,")

_RANGE = re.compile(r"^(?P<name>[^;]+);range=(?P<start>\d+)-(?P<end>\d+|\*)$", re.IGNORECASE)

# Result codes worth a sentence of advice; anything else is shown as the server named it.
_ADVICE = {
    "sizeLimitExceeded": "the bind account may read fewer entries than the directory holds; raise its size limit "
                         "(OpenLDAP: limits ... size.prtotal=unlimited; AD: MaxPageSize/MaxResultSetSize) or narrow the base",
    "adminLimitExceeded": "an administrative limit of the server stopped the search; raise the bind account's limits "
                          "(OpenLDAP: limits ... size.prtotal=unlimited) or narrow the base",
    "timeLimitExceeded": "the server's time limit stopped the search; raise timeouts.operation or the server's limit, "
                         "or narrow the base or filter",
    "busy": "the server is busy; try again later or list another domain controller in urls",
    "unavailable": "the server is unavailable; try again later or list another domain controller in urls",
    "unwillingToPerform": "the server refused the search",
    "referral": "the search base is not held by this server; point urls at a server that holds it",
    "noSuchObject": "the search base does not exist; check users/groups search_bases",
    "insufficientAccessRights": "the bind account may not read this base; grant it read access",
    "unavailableCriticalExtension": "the server does not support paged results (RFC 2696)",
}


@dataclass(frozen=True)
class Search:
    """What one search asks for; enough to name it in an error message."""

    directory: str
    base: str
    filter: str
    scope: str = "subtree"
    attributes: tuple[str, ...] = ()

    def failure(self, cause: str) -> DirectoryError:
        return DirectoryError(
            f"directory {self.directory}: incomplete read of base {self.base!r} with filter {self.filter}: {cause}; "
            f"nothing was planned or applied"
        )


@quick_init
@dataclass(frozen=True, slots=True)
class RawEntry:
    """An entry as the server sent it: DN and raw (bytes) values, attribute names as the server spelled them.
    An entry a delta state kept has its text values as `str` (`delta.record_to_raw`)."""

    dn: str
    attributes: dict[str, list[bytes]]
    # the kept record it was made from, written back as it is (not compared: the same entry either way)
    record: list | None = field(default=None, compare=False, repr=False)

    def to_record(self) -> list:
        """As a delta state keeps it (`delta.raw_to_record`); `from_record` reads it back."""
        if self.record is not None:
            return self.record
        from ..delta import raw_to_record

        return raw_to_record(self.dn, self.attributes)

    @staticmethod
    def from_record(record: list) -> "RawEntry":
        from ..delta import record_to_raw

        return record_to_raw(record, RawEntry)

    def kept(self) -> "RawEntry":
        """This entry as a kept record reads back: text values as `str`; equal to the kept one if unchanged."""
        return self if self.record is not None else RawEntry.from_record(self.to_record())


def result_cause(result: dict) -> str:
    description = result.get("description") or f"result code {result.get('result')}"
    message = (result.get("message") or "").strip()
    text = f"the server answered {description}" + (f" ({message})" if message else "")
    advice = _ADVICE.get(description)
    if description == "referral" and result.get("referrals"):
        text += f" to {', '.join(result['referrals'])}"
    return f"{text}; {advice}" if advice else text


def paged_search(connection, search: Search, page_size: int, ignore_ad_system_references: bool = False,
                 time_limit: int = 0) -> Iterator[RawEntry]:
    """Yields every entry of a paged search, page by page, or raises DirectoryError.

    Fails closed on: a non-success result on any page, a lost connection between
    pages, a continuation reference (a part of the tree held elsewhere, which
    ldap3 is not asked to chase), and a server that ignores the paging control
    after the first page.

    On a connection with the lean decoder, a page's entries arrive undecoded and are decoded while the
    server answers the next page's request (`entry_decoder.EntryDecoder`: in a helper process once the
    read is big); their order within a page may then differ from the server's, which no reader relies on.
    """
    from .entry_decoder import EntryDecoder
    from .lean_decoder import LeanSyncStrategy

    strategy = getattr(connection, "strategy", None)
    decoder = EntryDecoder(strategy) if isinstance(strategy, LeanSyncStrategy) else None
    pending = None  # the last page's entries, being decoded while the server answers this page's request
    cookie: bytes | None = None
    pages = 0
    report = current().read  # entries read, a page at a time, to the progress observer (this may be a worker thread)
    try:
        while True:
            undecoded: list[bytes] = []
            if decoder is not None:
                strategy.undecoded = undecoded
            try:
                connection.search(
                    search.base,
                    search.filter,
                    search_scope=SCOPES[search.scope],
                    attributes=list(search.attributes) or None,
                    paged_size=page_size,
                    paged_cookie=cookie,
                    paged_criticality=True,  # a server without paging must fail, not answer with its size limit
                    time_limit=time_limit,
                )
            except LDAPCommunicationError as error:
                where = f"after {pages} page(s)" if pages else "on the first page"
                raise search.failure(f"the connection was lost {where} ({error.__class__.__name__}: {error})") from None
            except LDAPException as error:
                raise search.failure(client_side_cause(error)) from None
            finally:
                if decoder is not None:
                    strategy.undecoded = None
            result = connection.result
            if result.get("result") != 0:
                raise search.failure(result_cause(result))
            pages += 1
            entries = len(undecoded)
            for item in connection.response or ():
                kind = item.get("type")
                if kind == "searchResEntry":
                    entries += 1
                    yield RawEntry(item["dn"], item["raw_attributes"])
                elif kind == "searchResRef":
                    urls = item.get("uri") or []
                    if ignore_ad_system_references and all(_is_ad_system_reference(u) for u in urls):
                        continue
                    raise search.failure(f"the server referred part of the tree elsewhere ({', '.join(urls)}) and "
                                         f"referrals are not followed; point a search base at that server's directory")
            connection.response = None  # let the page go before the next one arrives
            # the last page's answer is taken before this page is handed over: the helper holds one page at a
            # time (handing this one over first, both sides would wait on a full pipe, each for the other)
            ready = pending() if pending is not None else ()
            pending = decoder.submit(undecoded) if undecoded else None
            yield from ready
            report(search.directory, entries)
            cookie = _cookie(result)
            if not cookie:
                break
        if pending is not None:
            yield from pending()
    finally:
        if decoder is not None:
            decoder.close()


def send(connection, search: Search, *, during: str = "", **options) -> dict:
    """`connection.search` of `search` (its base, filter and scope; `options` for the rest), the result dict, or
    `search.failure` when the connection is lost (`during`: " while <doing what>") or ldap3 refuses to send it.
    The caller judges the result code: what it may accept (noSuchObject, sizeLimitExceeded) differs."""
    options.setdefault("search_scope", SCOPES[search.scope])
    try:
        connection.search(search.base, search.filter, **options)
    except LDAPCommunicationError as error:
        raise search.failure(f"the connection was lost{during} ({error.__class__.__name__}: {error})") from None
    except LDAPException as error:
        raise search.failure(client_side_cause(error)) from None
    return connection.result or {}


def client_side_cause(error: Exception) -> str:
    """ldap3 refused to send the search at all: name the part of the policy that is wrong."""
    if isinstance(error, LDAPInvalidFilterError):
        return f"the filter is not a valid LDAP filter (RFC 4515): {error}; check users.filter / groups.filter"
    return f"{error.__class__.__name__}: {error}"


def _cookie(result: dict) -> bytes | None:
    control = (result.get("controls") or {}).get(PAGED_RESULTS_OID)
    if not control:
        return None
    return control.get("value", {}).get("cookie") or None


def _is_ad_system_reference(url: str) -> bool:
    from urllib.parse import unquote, urlsplit

    dn = unquote(urlsplit(url).path.lstrip("/")).lower()
    return dn.startswith(AD_SYSTEM_CONTEXTS)


def complete_ranges(connection, search: Search, entry: RawEntry) -> RawEntry:
    """Follows AD's ranged values (`member;range=0-1499`) to the last range (`;range=N-*`).

    AD returns at most MaxValRange (1500) values of a multi-valued attribute per
    entry and leaves the plain `member` out; a reader that takes only what came
    with the entry silently drops every member after the first 1500.
    """
    for name in entry.attributes:
        if ";" in name:
            break
    else:  # no attribute options at all: the usual entry
        return entry
    ranged = {name: _RANGE.match(name) for name in entry.attributes}
    ranged = {name: match for name, match in ranged.items() if match}
    if not ranged:
        return entry
    attributes = {name: values for name, values in entry.attributes.items() if name not in ranged}
    for name, match in ranged.items():
        attribute = match.group("name")
        values = list(entry.attributes[name])
        end = match.group("end")
        while end != "*":
            start = int(end) + 1
            wanted = f"{attribute};range={start}-*"
            sub = Search(search.directory, entry.dn, "(objectClass=*)", "base", (wanted,))
            try:
                connection.search(entry.dn, "(objectClass=*)", search_scope=BASE, attributes=[wanted])
            except LDAPCommunicationError as error:
                raise sub.failure(f"the connection was lost while reading {attribute} values from {start} on "
                                  f"({error.__class__.__name__}: {error})") from None
            except LDAPException as error:
                raise sub.failure(client_side_cause(error)) from None
            if connection.result.get("result") != 0:
                raise sub.failure(f"reading {attribute} values from {start} on: {result_cause(connection.result)}")
            found = None
            for item in connection.response or ():
                if item.get("type") != "searchResEntry":
                    continue
                for key, more in item["raw_attributes"].items():
                    next_match = _RANGE.match(key)
                    if next_match and next_match.group("name").lower() == attribute.lower() \
                            and int(next_match.group("start")) == start:
                        found = (next_match.group("end"), more)
            if found is None:
                raise sub.failure(f"the range {attribute};range={start}-* of {entry.dn} was not returned, so "
                                  f"{attribute} would be incomplete")
            end, more = found
            values.extend(more)
        merged = attributes.setdefault(attribute, [])
        merged.extend(values)
    return RawEntry(entry.dn, attributes)
