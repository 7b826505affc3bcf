"""The mapping's templates rendered against an entry: email candidates, display name, attributes."""
from __future__ import annotations

from functools import cache

from ..model import DirectoryEntry
from ..policy.model import AttributeMapping, Template


@cache
def _names(text: str) -> tuple[tuple[str, str, str], ...]:
    """A template's (attribute, lower-cased attribute, placeholder), parsed once per template text
    rather than once per entry (keyed by the text: a str's hash is cached, a Template's is not)."""
    return tuple((name, name.lower(), "{" + name + "}") for name in Template(text).attributes)


def render_template(template: Template, entry: DirectoryEntry) -> str | None:
    """The template's text with each {attribute} replaced, or None if any is missing or empty."""
    text = template.text
    attributes = entry.attributes
    for _name, key, placeholder in _names(text):
        values = attributes.get(key)  # entry.first(name), without a call per placeholder
        value = values[0] if values else None
        if not value:
            return None
        text = text.replace(placeholder, value)
    return text.strip() or None


def email_of(mapping: AttributeMapping, entry: DirectoryEntry) -> tuple[str | None, str | None]:
    """(email, template text that produced it): the first candidate that yields a value."""
    for template in mapping.email:
        value = render_template(template, entry)
        if value:
            return value.lower(), template.text
    return None, None
