"""The mapping's templates rendered against an entry: email candidates, display name, attributes."""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from ..model import Attributes, DirectoryEntry
from ..policy.model import AttributeMapping, Template


@cache
def _names(text: str) -> tuple[tuple[str, str, str], ...]:
    """A template's (attribute, lower-cased attribute, placeholder), parsed once per template text
    rather than once per entry (keyed by the text: a str's hash is cached, a Template's is not)."""
    return tuple((name, name.lower(), "{" + name + "}") for name in Template(text).attributes)


def render_template(template: Template, entry: DirectoryEntry) -> str | None:
    """The template's text with each {attribute} replaced, or None if any is missing or empty."""
    return renderer(template.text)(entry)


@cache
def renderer(text: str) -> Callable[[DirectoryEntry], str | None]:
    """`render_template` of the template `text`, as a function of the entry made once per template: a plan
    renders four templates per person, and what can be worked out from the text alone is, here."""
    names = _names(text)
    if len(names) == 1 and names[0][2] == text:  # the template is one attribute: its text, shared, not a copy
        key = names[0][1]

        def one(entry: DirectoryEntry) -> str | None:
            attributes = entry.attributes
            if type(attributes) is Attributes:  # an entry read (explain hands in other mappings)
                value = attributes.first(key)
            else:
                values = attributes.get(key)
                value = values[0] if values else None
            return (value.strip() or None) if value else None

        return one

    def several(entry: DirectoryEntry) -> str | None:
        attributes = entry.attributes
        read = type(attributes) is Attributes
        rendered = text
        for _name, key, placeholder in names:
            if read:
                value = attributes.first(key)
            else:
                values = attributes.get(key)
                value = values[0] if values else None
            if not value:
                return None
            rendered = rendered.replace(placeholder, value)
        return rendered.strip() or None

    return several


def email_of(mapping: AttributeMapping, entry: DirectoryEntry) -> tuple[str | None, str | None]:
    """(email, template text that produced it): the first candidate that yields a value."""
    for template in mapping.email:
        value = renderer(template.text)(entry)
        if value:
            lowered = value.lower()
            return (value if lowered == value else lowered), template.text  # mail is mostly lower case: shared
    return None, None


# RFC 5322 atext: the characters a dot-atom may hold besides the dots between atoms.
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")


# The usual address, in one C-level match: ASCII, a dot-atom local part of at most 64 characters, LDH labels.
# Every address it matches passes each check of email_problem (tests/unit/test_templates.py compares them);
# what it does not match is judged by those checks, which also accept Unicode letters in the domain.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_USUAL_ADDRESS = re.compile(rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*", re.ASCII)


def email_problem(address: str) -> str | None:
    """Why `address` is not a usable email, or None if it is one.

    A practical subset of RFC 5321/5322, what directories hold in `mail`:
    - exactly one '@';
    - a local part of 1-64 characters, a dot-atom: RFC 5322 atext characters
      (letters, digits, ``!#$%&'*+-/=?^_`{|}~``) in atoms separated by single dots,
      no leading, trailing or double dot (no quoted strings, no comments);
    - a domain of at least one label separated by dots, each 1-63 characters of
      letters, digits and '-', not starting or ending with '-' (RFC 5321 LDH labels);
      letters may be Unicode letters (internationalised domain names as written);
      no address literals ('[192.0.2.1]');
    - at most 254 characters in all;
    - no space or control character anywhere.
    """
    if len(address) <= 254 and _USUAL_ADDRESS.fullmatch(address):
        return None
    for char in address:
        if char.isspace() or ord(char) < 32 or ord(char) == 127:
            return f"it contains {'a space' if char == ' ' else 'a control or space character'} ({char!r})"
    if address.count("@") != 1:
        return "it needs exactly one '@'" if "@" not in address else "it has more than one '@'"
    if len(address) > 254:
        return f"it is {len(address)} characters long; at most 254 are allowed"
    local, domain = address.split("@")
    if not local:
        return "nothing before the '@'"
    if not domain:
        return "no domain after the '@'"
    if len(local) > 64:
        return f"the part before '@' is {len(local)} characters long; at most 64 are allowed"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "the part before '@' starts or ends with a dot or has two dots in a row"
    bad = sorted({c for c in local if c != "." and c not in _ATEXT})
    if bad:
        return f"the part before '@' holds {''.join(bad)!r}, not allowed unquoted"
    for label in domain.split("."):
        if not label:
            return f"the domain {domain!r} has an empty label (a leading, trailing or double dot)"
        if len(label) > 63:
            return f"the domain label {label[:20]!r}... is longer than 63 characters"
        if label.startswith("-") or label.endswith("-"):
            return f"the domain label {label!r} starts or ends with '-'"
        if not all(c == "-" or c.isalnum() for c in label):
            return f"the domain label {label!r} holds characters other than letters, digits and '-'"
    return None
