"""Search result entries decoded straight from their BER bytes, in this process or in a helper process.

Standard library only, on purpose: `python -I -S ber.py` is the helper process that decodes the pages of a
big read on the machine's other core (`entry_decoder.py` starts and stops it), and it should start in
milliseconds without importing reconciler, ldap3 or anything the environment adds to the path.

The decoder handles a searchResEntry without controls, whose DN and attribute names are UTF-8: every
value is kept as the server sent it (bytes). Anything else is `NotLean` (or None: not an entry) and is
left to ldap3's own decoder. Checked value for value against ldap3 in tests/unit/test_lean_decoder.py.

The helper's protocol, on its standard input and output: a request is an 8-byte big-endian length and
that many bytes of whole LDAP messages, back to back; the answer is an 8-byte length and the `marshal`
of one item per message, in order: `(dn, attributes)`, or None for a message this decoder leaves to
ldap3. End of input ends the helper. marshal, not pickle: the answer holds only str, bytes, list, dict
and None, and reading it back cannot run code.
"""
from __future__ import annotations

import marshal
import sys
from collections.abc import Iterable, Iterator

SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4], constructed
_SIZE = 8  # bytes of a request's or an answer's length


class NotLean(Exception):
    """The message is not one this decoder handles: ldap3 decodes it."""


def _length(data: bytes, position: int) -> tuple[int, int]:
    """(content length, content start) of the BER length octets at `position` (definite form only)."""
    first = data[position]
    if first < 0x80:
        return first, position + 1
    count = first & 0x7F
    if count == 0 or count > 4:
        raise NotLean("indefinite or oversized length")
    return int.from_bytes(data[position + 1 : position + 1 + count], "big"), position + 1 + count


def decode_entry(message: bytes) -> tuple[int, bytes, str, dict[str, list[bytes] | None]] | None:
    """(message id, DN bytes, DN, attributes) of a searchResEntry without controls; None for any other message.

    Attributes are named as the server spelled them, each with its values as bytes (None for an attribute
    sent without values, as ldap3's `raw_attributes_to_dict_fast` has it).

    Raises NotLean for an entry this decoder leaves to ldap3 (malformed, or text that is not UTF-8).
    """
    if len(message) < 2 or message[0] != 0x30:
        return None
    _, position = _length(message, 1)
    if message[position] != 0x02:  # messageID INTEGER
        return None
    size, position = _length(message, position + 1)
    message_id = int.from_bytes(message[position : position + size], "big")
    position += size
    if message[position] != SEARCH_RESULT_ENTRY:
        return None
    size, position = _length(message, position + 1)
    end = position + size
    if end != len(message):  # controls follow the entry: ldap3 decodes those
        raise NotLean("entry with controls")
    if message[position] != 0x04:
        raise NotLean("objectName is not an OCTET STRING")
    size, position = _length(message, position + 1)
    raw_dn = message[position : position + size]
    position += size
    if message[position] != 0x30:
        raise NotLean("attributes is not a SEQUENCE")
    size, position = _length(message, position + 1)
    if position + size != end:
        raise NotLean("attributes do not end with the entry")
    attributes: dict[str, list[bytes] | None] = {}
    try:
        # The hot loop of a big read: short-form lengths (under 128 bytes, nearly every value) are read
        # inline, the long forms by _length.
        while position < end:
            if message[position] != 0x30:
                raise NotLean("attribute is not a SEQUENCE")
            size = message[position + 1]
            if size < 0x80:
                position += 2
            else:
                size, position = _length(message, position + 1)
            attribute_end = position + size
            if message[position] != 0x04:
                raise NotLean("attribute type is not an OCTET STRING")
            size = message[position + 1]
            if size < 0x80:
                position += 2
            else:
                size, position = _length(message, position + 1)
            name = message[position : position + size].decode("utf-8")
            position += size
            if message[position] != 0x31:
                raise NotLean("vals is not a SET")
            size = message[position + 1]
            if size < 0x80:
                position += 2
            else:
                size, position = _length(message, position + 1)
            if position + size != attribute_end:
                raise NotLean("vals do not end with the attribute")
            values: list[bytes] = []
            while position < attribute_end:
                if message[position] != 0x04:
                    raise NotLean("value is not an OCTET STRING")
                size = message[position + 1]
                if size < 0x80:
                    position += 2
                else:
                    size, position = _length(message, position + 1)
                values.append(message[position : position + size])
                position += size
            if position != attribute_end:
                raise NotLean("value runs past its attribute")
            attributes[name] = values or None
        dn = raw_dn.decode("utf-8")
    except (UnicodeDecodeError, IndexError):
        raise NotLean("not UTF-8 or truncated") from None
    if position != end:
        raise NotLean("attribute runs past the entry")
    return message_id, raw_dn, dn, attributes


def message_size(buffer: bytes | bytearray, start: int) -> int:
    """Bytes of the whole message starting at `start`, or -1 when its header has not fully arrived."""
    if len(buffer) - start < 2:
        return -1
    first = buffer[start + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if len(buffer) - start < 2 + count:
        return -1
    return 2 + count + int.from_bytes(buffer[start + 2 : start + 2 + count], "big")


def entry_prefix(message_id: int) -> bytes:
    """What follows the outer header of a searchResEntry answering `message_id` when the server encodes the
    ID in the fewest octets, as servers do: `starts_as_entry` tells a page's entries from the rest with it."""
    body = message_id.to_bytes((message_id.bit_length() + 8) // 8, "big")  # a leading 0 keeps it positive
    return bytes((0x02, len(body))) + body + bytes((SEARCH_RESULT_ENTRY,))


def starts_as_entry(message: bytes, prefix: bytes) -> bool:
    """Whether `message` goes on as `entry_prefix` after an outer length of definite form (one octet, or one
    and one to four more): one `startswith` instead of parsing the header. True means `is_search_entry` is
    True; False means it must be asked (the page's end, an ID in more octets than it needs)."""
    second = message[1]
    if second < 0x80:
        return message.startswith(prefix, 2)
    return 0x81 <= second <= 0x84 and message.startswith(prefix, 2 + (second & 0x7F))


def is_search_entry(message: bytes, message_id: int) -> bool:
    """Whether `message` is a searchResEntry answering `message_id` (its header only: the rest may still be
    anything; the decoder judges that)."""
    try:
        _, position = _length(message, 1)
        if message[position] != 0x02:
            return False
        size, position = _length(message, position + 1)
        return int.from_bytes(message[position : position + size], "big") == message_id and \
            message[position + size] == SEARCH_RESULT_ENTRY
    except (IndexError, NotLean):
        return False


Decoded = tuple[str, dict[str, list[bytes] | None]]  # (dn, attributes), as decode_entry finds them


def decode_messages(messages: Iterable[bytes]) -> list[Decoded | None]:
    """(dn, attributes) for each message, None where ldap3 decodes: what the helper answers for a page, and
    what `entry_decoder` works out in the main process when the helper is not used."""
    decoded: list[Decoded | None] = []
    for message in messages:
        try:
            entry = decode_entry(message)
        except NotLean:
            entry = None
        decoded.append(None if entry is None else (entry[2], entry[3]))
    return decoded


def split_messages(data: bytes) -> Iterator[bytes]:
    """The whole messages that `data` holds back to back."""
    start = 0
    while start < len(data):
        size = message_size(data, start)
        if size < 0 or start + size > len(data):
            raise ValueError("a request ends inside a message")
        yield data[start : start + size]
        start += size


def _read_exactly(stream, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(requests, answers) -> None:
    """The helper's loop: decode each request until end of input."""
    while True:
        header = _read_exactly(requests, _SIZE)
        if header is None:
            return
        data = _read_exactly(requests, int.from_bytes(header, "big"))
        if data is None:
            return
        answer = marshal.dumps(decode_messages(split_messages(data)))
        answers.write(len(answer).to_bytes(_SIZE, "big"))
        answers.write(answer)
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
