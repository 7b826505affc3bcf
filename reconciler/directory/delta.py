"""Delta reads: what a directory's searches returned last time, kept with the store, and what changed since.

A delta read never plans from the changes alone. The records every search returned at the last read
(`SearchState.records`, keyed by the entry's unique id: entryUUID, objectGUID, a Graph object id) are
kept with the store together with the server's token (an RFC 4533 cookie, a USN watermark, a Graph
delta link); a delta read asks the server what changed since the token and applies it to those
records, and the source then builds its `DirectoryRead` from the result exactly as from a full read.
So a delta plan is the full plan whenever the server reported its changes completely, and everything
after the directory stage is the same code.

The state is trusted only for the server it came from (`server`), the same searches (`scope`: bases,
filters, attributes, kind and flavour) and the same reconciler version; a missing, foreign or doubtful
state, a refused token (`TokenRefused`) or `full_read_every` elapsed means a full read, and the plan
says which kind of read it made and why (`ReadNote`). The store writes a new state only in the
transaction of the apply that the read led to (`Store.apply(..., sync=...)`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from ..model import ReadNote  # noqa: F401  (the sources take it from here, with the rest of a delta read)
from .entries import GUID_ATTRIBUTES

FORMAT = 2
MAX_STATE_BYTES = 2 * 1024 ** 3  # a decompressed state larger than this is not a state this version wrote


def reconciler_version() -> str:
    from .. import __version__

    return __version__


class TokenRefused(Exception):
    """The server will not answer from this token (RFC 4533 e-syncRefreshRequired, Graph's 410 Gone, a USN
    watermark older than the tombstone lifetime): the read falls back to a full read. The message says why."""


class SearchState:
    """One search's token and the records it returned (id -> record as the source keeps it, JSON-able).

    Read back from the store, the records stay compressed until something asks for them (`records`): a
    delta that finds nothing changed never decodes them, and `encode` writes them back as they came."""

    def __init__(self, token: str, records: dict[str, Any] | None = None, packed: bytes | None = None):
        self.token = token
        self._records = records if records is not None or packed is not None else {}
        self._packed = packed  # the zlib-compressed JSON these records were read from, while they are unchanged

    @property
    def records(self) -> dict[str, Any]:
        if self._records is None:
            self._records = _unpack(self._packed or b"")
        return self._records

    @records.setter
    def records(self, records: dict[str, Any]) -> None:
        self._records, self._packed = records, None

    @property
    def packed(self) -> bytes | None:
        """The compressed records as read, if they were never decoded (so certainly unchanged)."""
        return self._packed if self._records is None else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchState) and (self.token, self.records) == (other.token, other.records)

    def __repr__(self) -> str:
        count = "packed" if self._records is None else len(self._records)
        return f"SearchState(token={self.token!r}, records={count})"


@dataclass
class SyncState:
    """What a directory's delta reads start from. Kept with the store, one per directory."""

    directory: str
    method: str  # "syncrepl", "usn", "graph-delta"
    server: str  # identity of the server the tokens belong to (database UUID, invocationId, tenant)
    scope: str  # `scope_digest` of what the searches ask
    version: str  # the reconciler version that wrote it
    full_read_at: str  # ISO 8601 UTC of the last full read these records descend from
    searches: dict[str, SearchState] = field(default_factory=dict)
    changes_since_full: int = 0  # records changed by deltas since that full read (the plan's note says)


@dataclass(frozen=True)
class Delta:
    """What one search's content became since its token.

    `changed`: records now in the content, added or modified (id -> record); `removed`: ids that left it
    (deleted, moved out of the base, no longer matching the filter); `present`: when the server sent the
    complete set of ids still in the content (RFC 4533's present phase), every record in neither
    `changed` nor `present` left it too; `token`: where the next delta starts."""

    changed: dict[str, Any]
    removed: frozenset[str]
    present: frozenset[str] | None
    token: str

    def applied_to(self, records: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The records after this delta, and how many records it added, changed or removed."""
        result = dict(records) if self.present is None else {
            key: record for key, record in records.items() if key in self.present}
        touched = len(records) - len(result)
        for key in self.removed:
            if result.pop(key, None) is not None:
                touched += 1
        for key, record in self.changed.items():
            if result.get(key) != record:
                touched += 1
            result[key] = record
        return result, touched


def scope_digest(*parts: Any) -> str:
    """A digest of what the searches ask (bases, filters, scopes, attributes, kind): records kept for other
    searches are not the content of these."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ── kept with the store: bytes in, bytes out ──────────────────────────────────────────────

MAGIC = b"reconciler-delta-state\n"


def encode(state: SyncState) -> bytes:
    """The state as kept: a magic line, the header's length and the header (canonical JSON: everything but the
    records), then each search's records as zlib-compressed canonical JSON, made a thousand records at a time
    (a million records are never one string). Records that are not JSON themselves say how they are kept
    (`to_record()`, as `RawEntry` does); records read back and never decoded are written as they came."""
    packed = {name: search.packed if search.packed is not None else _pack(search.records)
              for name, search in sorted(state.searches.items())}
    header = {
        "format": FORMAT, "directory": state.directory, "method": state.method, "server": state.server,
        "scope": state.scope, "version": state.version, "full_read_at": state.full_read_at,
        "changes_since_full": state.changes_since_full,
        "searches": [{"name": name, "token": state.searches[name].token, "bytes": len(blob)} for name, blob in packed.items()],
    }
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    return b"".join([MAGIC, len(text).to_bytes(8, "big"), text, *packed.values()])


def _pack(records: Mapping[str, Any]) -> bytes:
    encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=_record_json)
    compressor = zlib.compressobj(6)
    parts = [compressor.compress(b"{")]
    items = sorted(records.items())
    for start in range(0, len(items), 1000):
        text = encoder.encode(dict(items[start:start + 1000]))[1:-1]
        if text:
            parts.append(compressor.compress((("," if start else "") + text).encode()))
    parts.append(compressor.compress(b"}"))
    parts.append(compressor.flush())
    return b"".join(parts)


def _unpack(blob: bytes) -> dict[str, Any]:
    decompressor = zlib.decompressobj()
    try:
        text = decompressor.decompress(blob, MAX_STATE_BYTES)
        if decompressor.unconsumed_tail:
            raise UnreadableState("the kept delta state is larger than any this version writes")
        records = json.loads(text)
    except (zlib.error, ValueError) as error:
        raise UnreadableState(f"the kept delta state's records do not read ({error.__class__.__name__})") from None
    if not isinstance(records, dict):
        raise UnreadableState("the kept delta state's records are not a mapping")
    return records


class UnreadableState(Exception):
    """Kept records that do not decode: found only when they are first used, which is a reason to read in full."""


def _record_json(record: Any) -> Any:
    to_record = getattr(record, "to_record", None)
    if to_record is None:
        raise TypeError(f"a kept record cannot be a {record.__class__.__name__}")
    return to_record()


def decode(blob: bytes | None) -> tuple[SyncState | None, str]:
    """The state kept with the store (its records still compressed), or None and why it cannot be used (never
    an exception: a state that does not read is a reason for a full read, not a failed plan)."""
    if not blob:
        return None, "no delta state is kept yet"
    blob = bytes(blob)
    try:
        if not blob.startswith(MAGIC):
            return None, "the kept delta state has another format"
        start = len(MAGIC) + 8
        length = int.from_bytes(blob[len(MAGIC):start], "big")
        document = json.loads(blob[start:start + length])
        if document.get("format") != FORMAT:
            return None, "the kept delta state has another format"
        searches, offset = {}, start + length
        for search in document["searches"]:
            size = int(search["bytes"])
            if size < 0 or offset + size > len(blob):
                return None, "the kept delta state is cut short"
            searches[str(search["name"])] = SearchState(str(search["token"]), packed=blob[offset:offset + size])
            offset += size
        if offset != len(blob):
            return None, "the kept delta state has bytes after its last search"
        return SyncState(
            directory=str(document["directory"]), method=str(document["method"]), server=str(document["server"]),
            scope=str(document["scope"]), version=str(document["version"]), full_read_at=str(document["full_read_at"]),
            searches=searches, changes_since_full=int(document.get("changes_since_full", 0)),
        ), ""
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return None, f"the kept delta state does not read ({error.__class__.__name__})"


def usable(state: SyncState | None, why_not: str, *, directory: str, method: str, scope: str,
           full_read_every: timedelta, now: datetime, server: str | None = None) -> tuple[bool, str]:
    """Whether a delta may start from `state`; if not, the reason the plan gives for its full read."""
    if state is None:
        return False, why_not or "no delta state is kept yet"
    if state.directory != directory or state.method != method:
        return False, f"the kept state is for {state.method} reads of {state.directory}"
    if state.version != reconciler_version():
        return False, f"the kept state was written by reconciler {state.version}, this is {reconciler_version()}"
    if state.scope != scope:
        return False, "the searches changed since the last read (bases, filters or attributes)"
    if server is not None and state.server != server:
        return False, f"the server is not the one the kept state is from ({_short(state.server)} → {_short(server)})"
    try:
        last_full = datetime.fromisoformat(state.full_read_at.replace("Z", "+00:00"))
    except ValueError:
        return False, "the kept state's last full read has no readable time"
    if last_full > now + timedelta(minutes=5):
        return False, "the kept state's last full read is in the future (clock or state doubtful)"
    if now - last_full >= full_read_every:
        return False, f"the last full read was {_age(now - last_full)} ago (full_read_every: {_age(full_read_every)})"
    return True, ""


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "…"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0 and seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds // 60}m"


def now_text(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ── LDAP records: RawEntry <-> JSON ───────────────────────────────────────────────────────
#
# A record is [dn, {name: [text, ...]}] or, when some values are not UTF-8 text (an objectGUID),
# [dn, {name: [text, ...]}, {name: [base64, ...]}]. An entry made from a record keeps the text values as
# `str` (what every consumer of an entry accepts: the entry builder, the delta methods) and shares the
# record's mapping, so making a hundred thousand of them copies no value, and the record is written back
# as it was read.

def raw_to_record(dn: str, attributes: Mapping[str, list[bytes | str]]) -> list[Any]:
    texts: dict[str, list[str]] = {}
    binary: dict[str, list[str]] = {}
    for name, values in attributes.items():
        if values is None:  # sent without values: nothing to keep, as `entries.lower_keys` reads it
            continue
        try:
            if name.lower() in GUID_ATTRIBUTES:  # 16 bytes that happen to be UTF-8 are still a GUID, never text
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "a GUID")
            texts[name] = [v if isinstance(v, str) else v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            binary[name] = [base64.b64encode(v if isinstance(v, bytes) else v.encode("utf-8")).decode("ascii")
                            for v in values]
    return [dn, texts, binary] if binary else [dn, texts]


def record_to_raw(record: list[Any], make: Callable[..., Any]) -> Any:
    """The entry a record describes; `make(dn, attributes, record)`."""
    if not isinstance(record, list) or len(record) not in (2, 3) or not isinstance(record[0], str) \
            or not isinstance(record[1], dict):
        raise ValueError("a kept record is [dn, {name: [values]}] or [dn, texts, binary]")
    if len(record) == 2:
        return make(record[0], record[1], record)
    attributes = dict(record[1])
    for name, values in record[2].items():
        attributes[name] = [base64.b64decode(v, validate=True) for v in values]
    return make(record[0], attributes, record)
