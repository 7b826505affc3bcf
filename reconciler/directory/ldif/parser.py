"""RFC 2849 LDIF content records, read as a stream.

Only content records (what `ldapsearch -LLL`, `slapcat` and `ldifde` export) are
accepted: a snapshot is a picture of a directory, not a list of changes. Every
problem is reported as `FILE:LINE: what is wrong` so a broken export is fixed at
the right place instead of silently dropping entries.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import IO, Iterable, Iterator, NamedTuple, NoReturn

from ...errors import DirectoryError

# Attributes whose values are binary even when their bytes happen to be valid
# UTF-8 (a random GUID can be): kept as bytes so the anchor is never mangled.
BINARY_ATTRIBUTES = frozenset(
    {
        "objectguid",
        "objectsid",
        "sidhistory",
        "ms-ds-consistencyguid",
        "msexchmailboxguid",
        "jpegphoto",
        "thumbnailphoto",
        "usercertificate",
        "cacertificate",
        "usersmimecertificate",
        "userpkcs12",
        "logonhours",
        "ntsecuritydescriptor",
    }
)

# RFC 4512 attribute description: a name (or numeric OID) followed by ;options.
_DESCRIPTION = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)(?:;[A-Za-z0-9-]+)*$")

Value = str | bytes


class LdifRecord(NamedTuple):
    """One entry: its DN, attributes and the line its `dn:` is on.

    `attributes` keys are lower-cased attribute descriptions without the
    `;binary` option (other options such as `;lang-de` stay part of the key);
    values keep file order. Binary values are bytes, everything else text.
    """

    dn: str
    attributes: dict[str, list[Value]]
    line: int


def read_ldif(path: str, binary_attributes: Iterable[str] = ()) -> Iterator[LdifRecord]:
    """Yields the records of the LDIF file at `path`; raises DirectoryError on bad LDIF."""
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise DirectoryError(f"cannot read LDIF snapshot {path}: {error.strerror or error}") from None
    with handle:
        yield from parse_ldif(handle, path, binary_attributes)


def parse_ldif(
    lines: IO[bytes] | Iterable[bytes | str], source: str, binary_attributes: Iterable[str] = ()
) -> Iterator[LdifRecord]:
    """Yields the records of LDIF text given as lines (bytes or str); `source` names it in errors."""
    binary = BINARY_ATTRIBUTES | {name.lower() for name in binary_attributes}
    record: list[tuple[int, str]] = []  # (line number, unfolded line) of the record being read
    first_record = True
    for number, text in _unfolded(lines, source):
        if text is not None:
            record.append((number, text))
            continue
        if record:
            if first_record and _is_version_line(record[0][1]):
                _check_version(record[0], source)
                record = record[1:]
            first_record = False
            if record:
                yield _record(record, source, binary)
            record = []


def _is_version_line(text: str) -> bool:
    return text.lower().startswith("version:")


def _check_version(line: tuple[int, str], source: str) -> None:
    number, text = line
    if text.split(":", 1)[1].strip() != "1":
        _fail(source, number, f"unsupported LDIF version {text.split(':', 1)[1].strip()!r}; only 'version: 1' exists")


def _unfolded(lines: Iterable[bytes | str], source: str) -> Iterator[tuple[int, str | None]]:
    """Logical lines with the number of their first physical line; comments dropped.

    A `None` text marks a record boundary (a blank line, or the end of input).
    """
    pending: tuple[int, str] | None = None
    in_comment = False
    number, ended = 0, True
    for number, raw in enumerate(lines, start=1):
        line = _decode_line(raw, source, number)
        ended = line.endswith(("\n", "\r"))
        line = line.rstrip("\r\n")
        if number == 1:
            line = line.removeprefix("\ufeff")  # Windows tools (ldifde, editors) may start UTF-8 with a BOM
        if line.startswith(" "):
            # A continuation: of a comment (dropped with it), or of the pending line.
            if in_comment:
                continue
            if pending is None:
                _fail(source, number, "continuation line (starting with a space) with nothing to continue")
            pending = (pending[0], pending[1] + line[1:])
            continue
        if pending is not None:
            yield pending
            pending = None
        in_comment = False
        if line.startswith("#"):
            in_comment = True
        elif line == "":
            yield number, None
        else:
            pending = (number, line)
    if not ended:
        # RFC 2849: every line ends with a separator. A last line without one is a file cut off in
        # the middle of a value ('mail: Rache'), which would otherwise import as a shorter value and
        # lose the entries after it: refused, not guessed at.
        _fail(source, number, "the file ends in the middle of a line (no newline after it): the snapshot "
                              "looks cut off; export it again (every LDIF line ends with a newline, RFC 2849)")
    if pending is not None:
        yield pending
    yield 0, None


def _decode_line(raw: bytes | str, source: str, number: int) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(source, number, "line is not UTF-8; encode non-ASCII values as base64 ('attr:: ...')")


def _record(lines: list[tuple[int, str]], source: str, binary: frozenset[str]) -> LdifRecord:
    dn_line, dn_text = lines[0]
    description, value = _attribute_value(dn_line, dn_text, source, binary=False)
    if description.lower() in ("search", "result"):
        _fail(source, dn_line, f"'{description}:' is ldapsearch's result trailer, not an entry; export with ldapsearch -LLL")
    if description.lower() != "dn":
        _fail(source, dn_line, f"entry must start with 'dn:', found '{description}:'")
    dn = value if isinstance(value, str) else _text(value, source, dn_line, "dn")
    if not dn.strip():
        _fail(source, dn_line, "empty DN")
    attributes: dict[str, list[Value]] = {}
    for number, text in lines[1:]:
        description, _ = _split(number, text, source)
        key = description.lower()
        if key == "changetype":
            kind = text.split(":", 1)[1].strip().lower()
            if kind == "add":  # an add record carries the entry's full content
                continue
            _fail(source, number, f"change records ('changetype: {kind}') are not a snapshot; export content LDIF (ldapsearch -LLL, slapcat, ldifde)")
        if key == "control":
            _fail(source, number, "LDIF controls belong to change records; export content LDIF (ldapsearch -LLL, slapcat, ldifde)")
        options = key.split(";")
        name = ";".join(o for o in options if o != "binary")
        keep_bytes = "binary" in options[1:] or options[0] in binary
        _, value = _attribute_value(number, text, source, binary=keep_bytes)
        attributes.setdefault(name, []).append(value)
    return LdifRecord(dn, attributes, dn_line)


def _split(number: int, text: str, source: str) -> tuple[str, str]:
    if ":" not in text:
        _fail(source, number, f"expected 'attribute: value', found {_preview(text)}")
    description, rest = text.split(":", 1)
    if not _DESCRIPTION.match(description):
        _fail(source, number, f"invalid attribute name {description!r}")
    return description, rest


def _attribute_value(number: int, text: str, source: str, binary: bool) -> tuple[str, Value]:
    description, rest = _split(number, text, source)
    if rest.startswith(":"):
        encoded = rest[1:].strip()
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            _fail(source, number, f"invalid base64 value for '{description}'")
        if binary:
            return description, data
        try:
            return description, data.decode("utf-8")
        except UnicodeDecodeError:  # not text: keep the bytes rather than guess an encoding
            return description, data
    if rest.startswith("<"):
        _fail(source, number, f"URL values ('{description}:<') are not supported; inline the value as base64 ('{description}:: ...')")
    value = rest.lstrip(" ")
    return description, value.encode("utf-8") if binary else value


def _text(data: bytes, source: str, number: int, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(source, number, f"{what} is not UTF-8 text")


def _preview(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _fail(source: str, line: int, message: str) -> NoReturn:
    # FILE:LINE: (no column): a logical LDIF line is the unit an editor jumps to.
    raise DirectoryError(f"{source}:{line}: {message}")
