"""Editing LDIF snapshots in tests: read with the product's parser, change entries, write back.

This is how the end-to-end tests play the directory: a new hire is an added
entry, a leaver a removed one, an OU move a changed DN.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

from reconciler.directory.ldif.parser import read_ldif

_SAFE = re.compile(r"^[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*$")


def _line(name: str, value) -> str:
    if isinstance(value, bytes) or not _SAFE.match(value) or value.endswith(" "):
        data = value if isinstance(value, bytes) else value.encode()
        return f"{name}:: {base64.b64encode(data).decode()}"
    return f"{name}: {value}"


class Snapshot:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, dict[str, list]] = {r.dn: r.attributes for r in read_ldif(str(self.path))}

    def find(self, **equals: str) -> str:
        """The DN of the one entry whose attributes have these values (case-insensitive names)."""
        hits = [dn for dn, attrs in self.entries.items()
                if all(str(v).lower() in [str(x).lower() for x in attrs.get(k.lower(), [])] for k, v in equals.items())]
        assert len(hits) == 1, f"{equals} matched {hits}"
        return hits[0]

    def set(self, dn: str, attribute: str, *values) -> None:
        if values:
            self.entries[dn][attribute.lower()] = list(values)
        else:
            self.entries[dn].pop(attribute.lower(), None)

    def move(self, dn: str, new_parent: str) -> str:
        rdn = dn.split(",", 1)[0]
        new_dn = f"{rdn},{new_parent}"
        self.entries[new_dn] = self.entries.pop(dn)
        for attrs in self.entries.values():  # group member values follow the move
            for name in ("member", "uniquemember"):
                attrs[name] = [new_dn if str(v).lower() == dn.lower() else v for v in attrs.get(name, [])]
        return new_dn

    def remove(self, dn: str) -> None:
        del self.entries[dn]
        for attrs in self.entries.values():
            for name in ("member", "uniquemember"):
                if name in attrs:
                    attrs[name] = [v for v in attrs[name] if str(v).lower() != dn.lower()]

    def add(self, dn: str, attributes: dict[str, list]) -> None:
        self.entries[dn] = {k.lower(): v for k, v in attributes.items()}

    def save(self) -> None:
        blocks = []
        for dn, attrs in self.entries.items():
            lines = [_line("dn", dn)] + [_line(name, v) for name, values in attrs.items() for v in values]
            blocks.append("\n".join(lines))
        self.path.write_text("version: 1\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
