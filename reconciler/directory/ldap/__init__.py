"""`kind: active-directory`, `openldap`, `389ds` and `freeipa`: a live directory read over LDAP.

The plug-in face (see `reconciler.directory`): `open_source(directory)` -> a
`LiveSource`, whose `read()` returns the complete `DirectoryRead` or raises
`DirectoryError`; `check_directory(directory)` -> the steps `reconciler check`
prints (per URL: DNS, TCP, TLS, bind; then whether each base and member_of
group can be read).

Modules, in the order a read meets them:
- `probe`: URLs and step-by-step diagnosis of one endpoint (DNS, TCP, TLS handshake);
- `connect`: a bound, encrypted connection, failing over across `urls`;
- `lean_decoder`: search entries decoded straight from the message bytes (swaps
  ldap3's strategy class: tied to the ldap3 versions it is tested with); the
  decoder itself is `ber` (standard library only);
- `paged`: a paged search and AD's ranged values, complete or `DirectoryError`;
- `entry_decoder`: a big read's pages decoded by `ber` in a helper process on the
  other core while the next page is asked for (identical entries, or decoded here);
- `read_ahead`: the next page fetched in a worker thread while this one is built;
- `source`: the read itself (`LiveSource`), member_of on the server (AD) or walked here;
- `check`: `reconciler check`'s steps.
"""
from __future__ import annotations

from ...policy.model import Directory
from .check import check_directory
from .source import LiveSource

__all__ = ["open_source", "check_directory"]


def open_source(directory: Directory) -> LiveSource:
    return LiveSource(directory)
