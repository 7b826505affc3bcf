"""A lean decoder for search result entries on ldap3's own connection.

ldap3 decodes every message into a generic tree of BER tuples and then copies
each entry's values twice (raw bytes and "formatted" text in case-insensitive
dicts). A directory read of 100,000 users spends most of its time there. The
reader needs only the DN and the raw values, so a searchResEntry without
controls is decoded here straight from the message bytes into the dict ldap3
would have built, minus the formatted copy: `dn`, `raw_dn`, `raw_attributes`
(values as bytes, None for an attribute sent without values, exactly as
ldap3's `raw_attributes_to_dict_fast`) and `attributes` (the same values; the
reader never uses ldap3's formatting). Every other message (search done,
references, binds, extended responses, an entry with controls or with text
that is not UTF-8) goes through ldap3's own decoder unchanged. Checked value
for value against ldap3 in tests/unit/test_lean_decoder.py.

`install(connection)` swaps the class of the connection's sync strategy for
one that uses this decoder and frames messages from one growing buffer
(ldap3's own framing copies the rest of its buffer after every message). The
decoding itself is `ber.py`'s (standard library only, so that a helper process
can run it); a paged search may also ask the strategy to keep its entries
undecoded and decode them there (`LeanSyncStrategy.undecoded`).

Swapping the class and overriding ldap3's private `_get_response` ties this
module to the ldap3 releases it is tested with (`TESTED_LDAP3`, and the pin in
pyproject.toml): `install` refuses any other release with one DirectoryError
rather than risk decoding its messages wrongly.
"""
from __future__ import annotations

import ldap3
from ldap3.strategy.base import RESPONSE_COMPLETE, SESSION_TERMINATED_BY_SERVER, TRANSACTION_ERROR
from ldap3.strategy.sync import SyncStrategy
from ldap3.core.exceptions import (
    LDAPExceptionError, LDAPExtensionError, LDAPSocketReceiveError, communication_exception_factory,
)
from ldap3.utils.asn1 import decode_message_fast

from ...errors import DirectoryError
from .ber import (  # noqa: F401  (NotLean: for the tests)
    NotLean, decode_entry, entry_prefix, is_search_entry, message_size, starts_as_entry,
)

# The ldap3 releases this module was checked against (tests/unit/test_lean_decoder.py, the live tests);
# pyproject.toml pins ldap3 to the same. Another release is a new test run first, then a line here.
TESTED_LDAP3 = ("2.9.1",)
RECEIVE_SIZE = 1 << 16


def decode_search_entry(message: bytes) -> tuple[int, dict] | None:
    """(message id, entry dict) for a searchResEntry without controls; None for any other message.

    The dict is the one ldap3 would have built, minus its formatted copy. Raises NotLean for an entry
    this decoder leaves to ldap3 (malformed, or text that is not UTF-8).
    """
    entry = decode_entry(message)
    if entry is None:
        return None
    message_id, raw_dn, dn, attributes = entry
    if any(";" in name for name in attributes):
        # ldap3's auto-range (AD's member;range=0-1499) extends raw_attributes and attributes separately:
        # they must not share value lists then
        formatted = {name: (list(values) if values is not None else None) for name, values in attributes.items()}
    else:
        formatted = dict(attributes)
    return message_id, {
        "raw_dn": raw_dn,
        "dn": dn,
        "raw_attributes": attributes,
        "attributes": formatted,
        "type": "searchResEntry",
    }


class LeanSyncStrategy(SyncStrategy):
    """ldap3's synchronous strategy with search entries decoded by `decode_search_entry`.

    While `undecoded` is a list (`paged.paged_search` sets it for one search at a time), the search
    entries answering the current request are appended to it as message bytes and not decoded here at
    all: the caller decodes them, in a helper process for a big read (`entry_decoder.py`).
    """

    undecoded: list[bytes] | None = None

    def receiving(self):
        connection = self.connection
        if connection.sasl_mechanism:
            return super().receiving()  # SASL signing may wrap messages: ldap3's framing knows how
        buffer = bytearray()
        start = 0
        messages: list[bytes] = []
        while True:
            try:
                data = connection.socket.recv(RECEIVE_SIZE)
            except (OSError, AttributeError) as error:  # as ldap3 reports a broken socket
                connection.last_error = f"error receiving data: {error}"
                try:
                    self.close()
                except (OSError, LDAPExceptionError):
                    pass
                raise communication_exception_factory(LDAPSocketReceiveError, type(error)(str(error)))(
                    connection.last_error) from None
            if not data:
                return messages
            buffer += data
            while True:
                size = message_size(buffer, start)
                if size < 0 or len(buffer) - start < size:
                    break
                messages.append(bytes(buffer[start : start + size]))
                start += size
            if start == len(buffer):
                return messages
            if start > RECEIVE_SIZE:
                del buffer[:start]
                start = 0

    def _get_response(self, message_id, timeout):
        responses = []
        while True:
            messages = self.receiving()
            if not messages:
                return SESSION_TERMINATED_BY_SERVER
            undecoded = self.undecoded
            usage = self.connection._usage if self.connection.usage else None
            prefix = entry_prefix(message_id)
            for raw in messages:
                if usage is not None:
                    usage.update_received_message(len(raw))
                if undecoded is not None and (starts_as_entry(raw, prefix) or is_search_entry(raw, message_id)):
                    undecoded.append(raw)
                    continue
                try:
                    lean = decode_search_entry(raw)
                except NotLean:
                    lean = None
                if lean is not None and lean[0] == message_id:
                    responses.append(lean[1])
                    continue
                ldap_response = decode_message_fast(raw)
                response = self.decode_response_fast(ldap_response)
                received_id = int(ldap_response["messageID"])
                if received_id == message_id:
                    responses.append(response)
                    if response["type"] not in ("searchResEntry", "searchResRef", "intermediateResponse"):
                        responses.append(RESPONSE_COMPLETE)
                        return responses
                elif received_id == 0:  # unsolicited notification (RFC 4511 4.4)
                    if response.get("responseName") == "1.3.6.1.4.1.1466.20036":
                        return SESSION_TERMINATED_BY_SERVER
                    if response.get("responseName") == "2.16.840.1.113719.1.27.103.4":
                        return TRANSACTION_ERROR
                    self.connection.last_error = "unknown unsolicited notification from server"
                    raise LDAPSocketReceiveError(self.connection.last_error)
                elif response["type"] == "extendedResp":
                    self.connection.last_error = "multiple extended responses to a single extended request"
                    raise LDAPExtensionError(self.connection.last_error)
                else:
                    self.connection.last_error = "invalid messageId received"
                    raise LDAPSocketReceiveError(self.connection.last_error)



def require_tested_ldap3() -> None:
    """Raises DirectoryError unless the installed ldap3 is one this module is tested with."""
    found = getattr(ldap3, "__version__", "of unknown version")
    if found not in TESTED_LDAP3:
        raise DirectoryError(
            f"ldap3 {found} is installed, but the live directory reader is tested with ldap3 "
            f"{' and '.join(TESTED_LDAP3)} only (it replaces ldap3's private response decoding, which another "
            f"release may change)",
            advice=f"Install a tested release: pip install 'ldap3=={TESTED_LDAP3[-1]}'",
        )


def install(connection) -> None:
    """Makes a (not yet opened or already opened) ldap3 SYNC connection decode entries leanly, with a
    tested ldap3 only (DirectoryError otherwise)."""
    require_tested_ldap3()
    if type(connection.strategy) is SyncStrategy:
        connection.strategy.__class__ = LeanSyncStrategy
