"""The change vocabulary: every kind of change a plan can hold, in one table.

Everything that treats changes by kind reads this table: the apply order, the
plan's section titles and signs, which safety limit counts a change, how much a
pull-request comment may shorten it, and which fields a user change may carry.
Adding an action is one row here (plus a handler in each store, which
`tests/unit/test_changes.py` checks exists).
"""
from __future__ import annotations

from dataclasses import dataclass

USER_FIELDS = ("email", "display_name", "attributes", "team", "links", "status")
TEAM_FIELDS = ("name", "parent")


@dataclass(frozen=True)
class ChangeKind:
    kind: str  # user | team | membership
    action: str
    order: int  # apply order: parents before children, removals last
    title: str  # the plan's section heading, and its count: "Users to create" / "15 users to create"
    sign: str  # + grants, ~ changes, - takes away (text plans)
    limit: str | None  # the safety limit that counts it (policy key under safety)
    shorten: int | None  # a long comment shortens lower numbers first; None: never cut (it changes who has access)
    fields: frozenset[str] = frozenset()  # user changes: the fields `after` may set
    reading: int = 0  # where a reviewer meets it: what takes access away first, then what grants it, then the rest

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.action}"

    @property
    def risky(self) -> bool:
        """Takes access or records away: shown first, in full, never folded or grouped out of sight."""
        return self.sign == "-" and self.kind != "membership"

    def count(self, n: int) -> str:
        """"1 user to create", "15 teams to create": the one way plans, comments and summaries say it."""
        noun, _, rest = self.title.partition(" ")
        noun = noun.lower() if n != 1 else noun.lower()[:-1]
        return f"{n:,} {noun} {rest}"


def _user(*fields: str) -> frozenset[str]:
    return frozenset(fields or USER_FIELDS)


CHANGE_KINDS: tuple[ChangeKind, ...] = (
    ChangeKind("team", "create", 0, "Teams to create", "+", None, 7, reading=10),
    ChangeKind("team", "update", 1, "Teams to update", "~", None, 5, reading=11),
    ChangeKind("user", "create", 2, "Users to create", "+", "max_creates", 8, _user(), reading=3),
    ChangeKind("user", "adopt", 3, "Users to adopt", "+", "max_creates", None, _user(), reading=4),
    ChangeKind("user", "reactivate", 4, "Users to reactivate", "+", None, None, _user("status"), reading=5),
    ChangeKind("user", "update", 5, "Users to update", "~", "max_updates", 6,
               _user("email", "display_name", "attributes", "links"), reading=7),
    ChangeKind("user", "move", 6, "Users to move", "~", "max_updates", 4, _user("team"), reading=8),
    ChangeKind("membership", "add", 7, "Memberships to add", "+", None, 2, reading=6),
    ChangeKind("membership", "remove", 8, "Memberships to remove", "-", None, 3, reading=9),
    # a deactivation may also release links another user now holds (a merge by email)
    ChangeKind("user", "deactivate", 9, "Users to deactivate", "-", "max_deactivations", None,
               _user("status", "links"), reading=1),
    ChangeKind("user", "delete", 10, "Users to delete", "-", "max_deletions", None, reading=0),
    ChangeKind("team", "delete", 11, "Teams to delete", "-", None, None, reading=2),
)
BY_KIND_ACTION: dict[tuple[str, str], ChangeKind] = {(c.kind, c.action): c for c in CHANGE_KINDS}
# the safety limits, in the order they are reported, with the word for what they count
LIMIT_NOUNS = {"max_creates": "creates", "max_updates": "updates", "max_deactivations": "deactivations",
               "max_deletions": "deletions"}


def change_kind(kind: str, action: str) -> ChangeKind:
    return BY_KIND_ACTION[(kind, action)]


# ── membership keys: "user key|team key" in plans, typed everywhere else ──

def membership_key(user_key: str, team_key: str) -> str:
    """The stable key of a membership change (user keys hold no '|': directory:anchor or local:id)."""
    return f"{user_key}|{team_key}"


def membership_parts(key: str) -> tuple[str, str]:
    """(user key, team key) of a membership change's key."""
    user_key, team_key = key.split("|", 1)
    return user_key, team_key
