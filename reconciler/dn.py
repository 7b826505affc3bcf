"""Distinguished names (RFC 4514), in one place: the key form in which every stage
compares DNs, escaping and unescaping of attribute values, and the few things
read out of a DN (the OU path below a search base, the first RDN's value).

ldap3 parses DNs but keeps the escapes in the values it returns: `unescape_value`
is the one unescaper. Most DNs are plain (no escapes, no '+', no stray spaces);
those take a fast path of string operations, ldap3's parser only the others
(and is imported only then).
"""
from __future__ import annotations

import re

# RDNs `type=value` whose values need no escaping and have no spaces at either end.
_PLAIN_VALUE = r'[^\\+",=<>;#\s](?:[^\\+",=<>;#]*[^\\+",=<>;#\s])?'
_PLAIN_DN = re.compile(rf"[A-Za-z][A-Za-z0-9-]*={_PLAIN_VALUE}(?:,[A-Za-z][A-Za-z0-9-]*={_PLAIN_VALUE})*\Z")
_DN_HEX_PAIR = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)", re.DOTALL)


def normalise_dn(dn: str) -> str:
    """A DN in the form used as a dictionary key: RDNs trimmed, case folded,
    escapes canonical (RFC 4514 minimal escaping).

    LDAP compares DNs case-insensitively for the attribute types used in
    directories (cn, ou, dc); two spellings of one DN must meet in set algebra,
    so `CN=R&D \\2A`, `cn=R&D *` and `CN = R&D *` are one key.
    """
    if _PLAIN_DN.match(dn):  # nothing to unescape, trim or reorder: the common case, kept fast for big reads
        return dn.lower()
    avas = parse_avas(dn)
    if avas is None:  # a DN ldap3 cannot parse is compared as written
        return dn.strip().lower()
    rdns: list[str] = []
    rdn: list[str] = []
    for attribute_type, value, separator in avas:
        rdn.append(f"{attribute_type.strip().lower()}={escape_value(unescape_value(value)).lower()}")
        if separator != "+":
            rdns.append("+".join(sorted(rdn)))  # a multi-valued RDN is a set
            rdn = []
    return ",".join(rdns)


def parse_avas(dn: str) -> list[tuple[str, str, str]] | None:
    """The DN's (type, value as written, separator) triples, or None if it does not parse.

    Strict RFC 4514 first; then with spaces around types and values stripped, the
    LDAPv2 leniency RFC 4514 section 4 allows (`DC =com` from an LDIF line folded
    with two spaces is `DC=com`): strict first, as stripping would eat an escaped
    trailing space. Every reader of a DN's parts goes through here, so a DN that
    one function accepts is never a traceback in another.
    """
    from ldap3.utils.dn import parse_dn

    for strip in (False, True):
        try:
            avas = parse_dn(dn, escape=False, strip=strip)
        except Exception:
            continue
        if avas and all(attribute.strip() for attribute, _, _ in avas):
            return [(attribute.strip(), value, separator) for attribute, value, separator in avas]
    return None


def dn_parses(dn: str) -> bool:
    """Whether the DN is one `parse_avas` can read (plain DNs without the parser)."""
    return bool(_PLAIN_DN.match(dn)) or parse_avas(dn) is not None


def unescape_value(value: str, errors: str = "surrogateescape") -> str:
    r"""An attribute value as written in a DN, as text: 'A\,B' -> 'A,B', '\2A' -> '*'.

    Hex pairs are bytes of UTF-8 (several in a row may form one character), so the
    work is on bytes; `\c` is c itself. Bytes that are not UTF-8 are decoded with
    `errors`: kept as surrogates by default, so two such keys stay apart; 'replace'
    where the text is shown (a team name). A BER-encoded value (`#04...`) is kept
    as its hex text.
    """
    if value.startswith("#"):
        return value
    raw = bytearray()
    position = 0
    for match in _DN_HEX_PAIR.finditer(value):
        raw += value[position : match.start()].encode("utf-8")
        raw += bytes([int(match.group(1), 16)]) if match.group(1) else match.group(2).encode("utf-8")
        position = match.end()
    raw += value[position:].encode("utf-8")
    return raw.decode("utf-8", errors=errors)


def escape_value(value: str) -> str:
    """An attribute value escaped for a DN, minimally (RFC 4514 2.4); a BER-encoded `#hex` value as it is."""
    if value.startswith("#") and re.fullmatch(r"#[0-9A-Fa-f]+", value):
        return value
    last = len(value) - 1
    return "".join(
        "\\00" if c == "\x00"
        else "\\" + c if c in '"+,;<>\\' or (i == 0 and c in " #") or (i == last and c == " ")
        else c
        for i, c in enumerate(value)
    )


def ou_path(dn: str, base: str) -> list[str]:
    """The OU names between the base and the entry, top-down: OU=EMEA,OU=Sales,<base> → [Sales, EMEA]."""
    if _PLAIN_DN.match(dn) and (not base or _PLAIN_DN.match(base)):
        # no escapes, '+' or stray spaces: the RDNs are the comma-separated parts, as parse_dn would find
        # them, and a hundred times faster (one call per user)
        parts = dn.split(",")
        below = parts[1 : len(parts) - (base.count(",") + 1)] if base else parts[1:]
        return [value for attribute, _, value in (p.partition("=") for p in reversed(below)) if attribute.lower() == "ou"]
    rdns = parse_avas(dn)
    base_rdns = parse_avas(base) if base else []
    if rdns is None or base_rdns is None:
        raise ValueError(f"DN {dn!r} does not parse (RFC 4514)")  # sources refuse such DNs before placement
    below = rdns[1 : len(rdns) - len(base_rdns)] if base else rdns[1:]
    return [unescape_value(value, "replace") for attr, value, _ in reversed(below) if attr.lower() == "ou"]


def first_rdn_value(dn: str) -> str:
    """The value of the DN's first RDN as ldap3 returns it (escapes kept); the DN itself if it does not parse."""
    from ldap3.utils.dn import parse_dn

    try:
        return parse_dn(dn, escape=False, strip=True)[0][1]
    except Exception:
        return dn
