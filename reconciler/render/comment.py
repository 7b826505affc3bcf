"""How a Markdown plan fits in pull-request comments: what to shorten, and where to split.

The rule, by risk:

- sections with a `shorten` rank (low risk: memberships, moves, updates, creates,
  entries not imported) keep their first rows and lose the rest, lowest rank first,
  with a line saying how many rows were left out;
- the other sections (deactivations, deletions, adoptions, reactivations) are never
  shortened: when they alone do not fit one comment, the plan is split over as
  many comments as they need, as Atlantis does. A table split across comments
  repeats its header row, and a `<details>` block is closed in one comment and
  reopened in the next, so every comment is valid Markdown on its own.

Everything here works on text that is already escaped; nothing here escapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

FOLD_AFTER = 10  # sections longer than this fold into <details>; the summary line gives the count


@dataclass(eq=False)
class Section:
    title: str  # safe Markdown: "Users to deactivate (60)"
    head: str  # the table's header lines, each ending in "\n"
    rows: list[str]  # each ending in "\n"
    note: Callable[[int], str]  # the line saying that n rows were left out
    shorten: int | None = None  # low risk: shortened in this order (0 first); None: never shortened
    foldable: bool = True  # False: never folded into <details> (it takes access away: seen at a glance)
    shown: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.shown < 0:
            self.shown = len(self.rows)

    @property
    def folded(self) -> bool:
        return self.foldable and len(self.rows) > FOLD_AFTER and self.shown > 0

    def opening(self, continued: bool) -> str:
        title = self.title + (", continued" if continued else "")
        return f"\n<details><summary>{title}</summary>\n\n" if self.folded else f"\n#### {title}\n\n"

    def closing(self) -> str:
        return "\n</details>\n" if self.folded else ""


class _TooMany(Exception):
    pass


def paginate(first: str, continued: Callable[[int], str], sections: list[Section], limit: int,
             max_parts: int | None = None) -> list[str]:
    """Fill comments in order, each at most `limit` characters; `continued(k)` opens comment k (k >= 2).
    Raises _TooMany as soon as more than `max_parts` comments would be needed."""
    if len(first) > limit:
        raise ValueError(f"the comment limit of {limit} characters cannot hold the plan's header ({len(first)})")
    parts: list[list[str]] = [[first]]
    size = len(first)

    def new_part() -> None:
        nonlocal size
        if max_parts is not None and len(parts) >= max_parts:
            raise _TooMany
        heading = continued(len(parts) + 1)
        parts.append([heading])
        size = len(heading)

    for section in sections:
        n, total = section.shown, len(section.rows)
        note = section.note(total - n) + "\n" if n < total else ""
        closing = section.closing()
        i, resumed = 0, False
        while True:
            opening = section.opening(resumed)
            if i < n:  # the smallest piece: the header row and one row (and the note after the last row)
                smallest = len(section.head) + len(section.rows[i]) + (1 + len(note) if note and i == n - 1 else 0)
            else:
                smallest = len(note)
            if size + len(opening) + smallest + len(closing) > limit:
                if len(parts) > 1 and len(parts[-1]) == 1:
                    raise ValueError(f"a row of {section.title} is longer than the comment limit of {limit} characters")
                new_part()
                continue
            out = parts[-1]
            out.append(opening)
            size += len(opening)
            if i < n:
                out.append(section.head)
                size += len(section.head)
                while i < n:
                    row = section.rows[i]
                    room = len(row) + (1 + len(note) if note and i == n - 1 else 0) + len(closing)
                    if size + room > limit:
                        break
                    out.append(row)
                    size += len(row)
                    i += 1
                if i < n:  # the rest goes on in the next comment
                    out.append(closing)
                    new_part()
                    resumed = True
                    continue
                if note:
                    out.append("\n" + note)
                    size += 1 + len(note)
            else:
                out.append(note)
                size += len(note)
            out.append(closing)
            size += len(closing)
            break
    return ["".join(part) for part in parts]


Head = Callable[[int], str]  # the first comment's header, given how many comments there are
Continued = Callable[[int, int], str]  # the heading of comment k of n


def layout(first: Head, continued: Continued, sections: list[Section], limit: int,
           parts: int | None = None) -> list[str] | None:
    """The comments for the sections as they are shortened now; with `parts`, None if more are needed.
    The headers name the number of comments, so lay out again until that number holds."""
    n = parts or 1
    while True:
        try:
            found = paginate(first(n), lambda k: continued(k, n), sections, limit, max_parts=parts)
        except _TooMany:
            return None
        if len(found) == n or (parts is not None and len(found) < n):
            return found if len(found) == n else layout(first, continued, sections, limit)
        n = len(found)  # longer headers never need fewer comments: this only grows, and stops


def fit(first: Head, continued: Continued, sections: list[Section], limit: int) -> list[str]:
    """As few comments as the never-shortened sections need, with as much of the low-risk ones as fits:
    whole sections while they fit, from the least low-risk; then as many rows of the next as fit."""
    for section in sections:
        section.shown = len(section.rows)
    whole = layout(first, continued, sections, limit, parts=1)
    if whole is not None:
        return whole
    low = sorted((s for s in sections if s.shorten is not None), key=lambda s: s.shorten or 0)
    for section in low:
        section.shown = 0
    target = len(layout(first, continued, sections, limit) or ())
    for section in reversed(low):
        section.shown = len(section.rows)
        if layout(first, continued, sections, limit, parts=target) is not None:
            continue
        fits, over = 0, len(section.rows)  # 0 rows fit (that is where we started), all do not
        while over - fits > 1:
            section.shown = (fits + over) // 2
            if layout(first, continued, sections, limit, parts=target) is not None:
                fits = section.shown
            else:
                over = section.shown
        section.shown = fits
        break  # lower-risk sections stay shortened to nothing
    return layout(first, continued, sections, limit) or []
