"""Raw attribute values -> `DirectoryEntry`, the same way for every source.

The LDIF source hands over parsed LDIF values, the live sources ldap3's raw
bytes; both meet here so an entry read from a snapshot and the same entry read
from the server produce identical `DirectoryEntry` values (same anchor text,
same disabled verdict, same attribute selection).
"""
from __future__ import annotations

import base64
import re
import uuid
from functools import cache
from typing import Iterable, Mapping, Sequence

from ..dn import first_rdn_value
from ..errors import DirectoryError
from ..model import Attributes, DirectoryEntry, DirectoryGroup, DnSet
from ..policy.model import AttributeMapping as PolicyMapping, Directory, DisabledRule

Value = str | bytes
RawAttributes = Mapping[str, Sequence[Value]]

# Attributes holding a 16-byte GUID in AD's mixed-endian layout.
GUID_ATTRIBUTES = frozenset({"objectguid", "ms-ds-consistencyguid", "msexchmailboxguid"})

_GUID_TEXT = re.compile(r"^\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?$")


class LoweredAttributes(dict):
    """Attributes whose names `lower_keys` already lower-cased: lowering them again is a no-op."""


def lower_keys(attributes: RawAttributes) -> dict[str, Sequence[Value]]:
    """Attribute names are case-insensitive: one spelling, lower case, values of every spelling merged.

    The value lists are shared with `attributes` unless two spellings are merged; callers only read them.
    An attribute sent without values is left out.
    """
    if isinstance(attributes, LoweredAttributes):
        return attributes
    merged = LoweredAttributes()
    for name, values in attributes.items():
        if not isinstance(values, (list, tuple)):
            if values is None:  # sent without values (ldap3 and the lean decoder give None): as if not sent
                continue
            values = [values]
        key = name.lower()
        merged[key] = [*merged[key], *values] if key in merged else values
    return merged


def guid_text(data: bytes) -> str:
    """AD's text form of a binary GUID: first three fields little-endian, no braces (as ldap3's format_uuid_le)."""
    return str(uuid.UUID(bytes_le=data))


def value_text(attribute: str, value: Value) -> str:
    """A value as text: GUIDs in their canonical form, UTF-8 text decoded, other binary as base64."""
    if isinstance(value, str):
        return value
    if attribute.lower() in GUID_ATTRIBUTES and len(value) == 16:
        return guid_text(value)
    return _utf8_or_base64(value)


def anchor_text(directory: str, dn: str, attribute: str, values: Sequence[Value]) -> str:
    """The anchor that ties an entry to its store user across renames and moves.

    Raises DirectoryError naming the entry when it has none: without an anchor a
    rename would read as one person leaving and another arriving.
    """
    if not values:
        raise DirectoryError(
            f"directory {directory}: entry {dn} has no {attribute} (the anchor attribute); "
            f"export it with the entry or set schema.anchor to an attribute every user has"
        )
    if len(values) > 1:
        raise DirectoryError(f"directory {directory}: entry {dn} has {len(values)} values of the anchor attribute {attribute}; an anchor must be single-valued")
    value = values[0]
    if attribute.lower() in GUID_ATTRIBUTES:
        if isinstance(value, bytes) and len(value) == 16:
            return guid_text(value)
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        match = _GUID_TEXT.match(text.strip())
        if not match:
            raise DirectoryError(f"directory {directory}: entry {dn} has an invalid {attribute} (expected 16 bytes or a GUID string)")
        return match.group(1).lower()
    text = value_text(attribute, value).strip()
    if not text:
        raise DirectoryError(f"directory {directory}: entry {dn} has an empty {attribute} (the anchor attribute)")
    return text


def is_disabled(rule: DisabledRule, values: Sequence[Value]) -> bool:
    """Whether the account is disabled by `rule`: a bit flag (AD userAccountControl),
    a value (nsAccountLock: TRUE), or the attribute's mere presence (pwdAccountLockedTime)."""
    texts = [value_text(rule.attribute, v).strip() for v in values]
    if rule.flag is not None:
        return any(_flag_set(text, rule.flag) for text in texts)
    if rule.equals is not None:
        wanted = rule.equals.casefold()
        return any(text.casefold() == wanted for text in texts)
    return any(texts)


def _flag_set(text: str, flag: int) -> bool:
    try:
        return int(text) & flag == flag
    except ValueError:
        return False


def template_attributes(mapping: PolicyMapping) -> frozenset[str]:
    """Every attribute a directory's mapping templates name, lower-cased."""
    templates = [*mapping.email, mapping.display_name, *(template for _, template in mapping.attributes)]
    return frozenset(name.lower() for template in templates for name in template.attributes)


@cache
def _layout(names: tuple[str, ...]) -> dict[str, int]:
    """Name -> position of `names`, one dict shared by every entry built with these names (`Attributes`)."""
    return {name: index for index, name in enumerate(names)}


def _utf8_or_base64(value: bytes) -> str:
    """value_text for an attribute that holds no GUID."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


class EntryBuilder:
    """`make_entry` for the many entries of one read: the schema's attribute names are lowered and the
    needed names sorted once per read instead of once per entry.

    Per entry it keeps the needed values in the compact form of `model.Attributes` (aligned to the read's
    names, one text where there is one value) and the groups as a `DnSet`. Values that repeat across the
    read (a department, a title) are decoded once and the one text shared by every entry that has it; an
    attribute whose values turn out to be mostly distinct (mail, displayName) stops being looked up after
    a couple of thousand entries, so the sharing costs nothing where it saves nothing.
    """

    SHARED_DISTINCT = 2048  # distinct values an attribute may show beyond half the entries read and still be shared

    def __init__(self, directory: Directory, needed: Iterable[str] | None = None):
        schema = directory.schema
        self.name = directory.name
        self.anchor, self.anchor_key = schema.anchor, schema.anchor.lower()
        self.account, self.account_key = schema.account_name, schema.account_name.lower()
        self.disabled, self.disabled_key = schema.disabled, schema.disabled.attribute.lower()
        wanted = template_attributes(directory.mapping) if needed is None else needed
        self.names = tuple(sorted({n.lower() for n in wanted}))
        self.layout = _layout(self.names)
        # per needed attribute, in `names` order: (name, whether it holds GUIDs, raw value -> text while shared)
        self._columns = [(name, name in GUID_ATTRIBUTES, {}) for name in self.names]
        self._anchor_guid = self.anchor_key in GUID_ATTRIBUTES
        self._built = 0

    def _values(self, lowered: Mapping[str, Sequence[Value]]) -> tuple[str | tuple[str, ...] | None, ...]:
        """The needed values, aligned to `names`: None, one text, or a tuple of texts."""
        row: list[str | tuple[str, ...] | None] = []
        append = row.append
        for column in self._columns:
            name, guid, texts = column
            values = lowered.get(name)
            if not values:
                append(None)
                continue
            if len(values) != 1:
                append(tuple(self._text(name, guid, value) for value in values))
                continue
            value = values[0]
            if texts is None:  # one value, not shared: the common case of mail and displayName, inline
                if type(value) is bytes and not guid:
                    try:
                        append(value.decode("utf-8"))
                    except UnicodeDecodeError:
                        append(base64.b64encode(value).decode("ascii"))
                else:
                    append(self._text(name, guid, value))
                continue
            text = texts.get(value)
            if text is None:
                text = texts[value] = self._text(name, guid, value)
                if len(texts) * 2 > self._built + self.SHARED_DISTINCT:  # mostly distinct: stop sharing
                    self._columns[self._columns.index(column)] = (name, guid, None)
            append(text)
        self._built += 1
        return tuple(row)

    @staticmethod
    def _text(name: str, guid: bool, value: Value) -> str:
        if isinstance(value, str):
            return value
        return value_text(name, value) if guid else _utf8_or_base64(value)

    def _anchor(self, dn: str, values: Sequence[Value]) -> str:
        """`anchor_text` of the anchor's values; one UTF-8 value of a text anchor (entryUUID) inline."""
        if len(values) == 1 and not self._anchor_guid:
            value = values[0]
            if type(value) is bytes:
                try:
                    text = value.decode("utf-8").strip()
                except UnicodeDecodeError:
                    text = ""
                if text:
                    return text
        return anchor_text(self.name, dn, self.anchor, values)  # GUIDs, several values, none, empty: its errors

    def __call__(self, dn: str, attributes: RawAttributes, search_base: str, groups: Iterable[str] = ()) -> DirectoryEntry:
        lowered = lower_keys(attributes)
        account_values = lowered.get(self.account_key)
        disabled_values = lowered.get(self.disabled_key)
        return DirectoryEntry(
            self.name,
            dn,
            self._anchor(dn, lowered.get(self.anchor_key, ())),
            value_text(self.account, account_values[0]) if account_values else None,
            Attributes(self.layout, self._values(lowered)),  # 120 bytes at four attributes, not a dict of tuples
            is_disabled(self.disabled, disabled_values) if disabled_values else False,  # none: never disabled
            search_base,
            DnSet(groups),  # a tuple, not a frozenset: 80 bytes for five groups instead of 472
        )


def make_entry(
    directory: Directory,
    dn: str,
    attributes: RawAttributes,
    search_base: str,
    groups: Iterable[str] = (),
    needed: Iterable[str] | None = None,
) -> DirectoryEntry:
    """One user entry as every source hands it on.

    `search_base` is the policy's base as written; `groups` the normalised DNs of
    the groups the entry is a direct member of; `needed` defaults to the
    attributes the directory's mapping names. Sources reading many entries use
    one `EntryBuilder` for all of them.
    """
    return EntryBuilder(directory, needed)(dn, attributes, search_base, groups)


def make_group(directory: Directory, dn: str, attributes: RawAttributes, members: Iterable[str]) -> DirectoryGroup:
    """One group of the groups scope; `members` are normalised DNs of its direct members.

    The name falls back to the first RDN value when the group-name attribute is missing.
    """
    lowered = lower_keys(attributes)
    schema = directory.schema
    names = lowered.get(schema.group_name.lower(), ())
    name = value_text(schema.group_name, names[0]) if names else first_rdn_value(dn)
    return DirectoryGroup(
        directory=directory.name,
        dn=dn,
        anchor=anchor_text(directory.name, dn, schema.anchor, lowered.get(schema.anchor.lower(), ())),
        name=name,
        members=DnSet(members),
    )
