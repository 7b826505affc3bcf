"""One object for equal values while they repeat: what keeps the desired state small at a million users.

A hundred thousand people share a dozen departments and titles, so most of their `(name, value)`
attribute pairs, and often the whole attributes tuple, are equal to another person's. Equal immutable
values are interchangeable, so the first one made stands for the rest. Where values turn out to be
mostly distinct (an employee number in the attributes) a lookup would only cost memory: `Sharing`
stops looking then and hands values through.
"""
from __future__ import annotations

from typing import Hashable, TypeVar

T = TypeVar("T", bound=Hashable)


class Sharing:
    """`share(value)` is the first value equal to `value` it was given, or `value` itself."""

    def __init__(self, slack: int = 2048) -> None:
        self.known: dict | None = {}
        self.asked = 0
        self.slack = slack  # distinct values allowed beyond half of those asked before it stops looking

    def __call__(self, value: T) -> T:
        known = self.known
        if known is None:
            return value
        self.asked += 1
        found = known.setdefault(value, value)
        if found is value and len(known) * 2 > self.asked + self.slack:
            self.known = None  # mostly distinct: what is shared stays shared, nothing more is looked up
        return found
