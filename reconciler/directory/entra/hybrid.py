"""Hybrid identities: a user synced from Active Directory to Entra ID by Entra Connect (or Cloud Sync)
carries its AD source anchor in `onPremisesImmutableId`, by default the base64 of the 16 bytes of the
AD `objectGUID` (https://learn.microsoft.com/en-us/entra/identity/hybrid/connect/plan-connect-design-concepts,
"sourceAnchor"). Decoded, it is the anchor the AD reader gives that entry, so one person's two
records can be matched by it before their emails are compared (`desired.merge`).
"""
from __future__ import annotations

import base64
import binascii

from ...model import DirectoryEntry
from ..entries import guid_text

IMMUTABLE_ID_KEY = "onpremisesimmutableid"


def immutable_id_guid(value: str | None) -> str | None:
    """The objectGUID (AD's text form, lower case) an onPremisesImmutableId stands for; None when it is
    not the base64 of 16 bytes (a tenant whose source anchor is another attribute)."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return guid_text(raw) if len(raw) == 16 else None


def source_anchor(entry: DirectoryEntry) -> str | None:
    """The AD objectGUID a cloud entry is synced from, if it says so."""
    return immutable_id_guid(entry.first(IMMUTABLE_ID_KEY))


def immutable_id(object_guid: str) -> str:
    """The onPremisesImmutableId Entra Connect gives the AD entry with this objectGUID (its text form)."""
    import uuid

    return base64.b64encode(uuid.UUID(object_guid).bytes_le).decode("ascii")
