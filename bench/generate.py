"""A deterministic synthetic directory for the benchmark, written as LDIF for `slapadd`.

Shape (what large customers' directories look like, scaled by the user count N):
- N inetOrgPerson users spread over ten OUs (some nested two deep below People),
  about 14 values each plus memberOf; about 1% locked (pwdAccountLockedTime), 2% without mail;
- G = max(50, N // 20) groupOfNames groups (5,000 at 100,000 users): every tenth group
  nests the next three, and the first group is the big one with 20,000 members
  (or N // 5 when N is smaller);
- about five direct memberships per user, written on both sides as the memberof overlay
  keeps them (member on the group, memberOf on the user; `slapadd` runs no overlays).

The same seed and N always give byte-identical LDIF, and `churn_ldif` the same
1% of changes (`ldapmodify` input): attribute edits, locks, deletions, hires,
OU moves and group membership edits.
"""
from __future__ import annotations

import argparse
import random
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

SUFFIX = "dc=bench,dc=example"
PEOPLE = f"ou=People,{SUFFIX}"
GROUPS = f"ou=Groups,{SUFFIX}"
SERVICE_ACCOUNT_DN = f"cn=svc-sync,ou=Service,{SUFFIX}"
SERVICE_PASSWORD = "Bench-Sync-Passw0rd"
MAIL_DOMAIN = "bench.example"
LOCKED = "000001010000Z"  # ppolicy: locked until an administrator unlocks
BIG_GROUP_MEMBERS = 20_000
MEMBERSHIPS_PER_USER = 5

# OU paths below People, outermost first; users are dealt over them round-robin by a hash of their number.
OUS: tuple[tuple[str, ...], ...] = (
    ("Engineering",), ("Engineering", "Platform"), ("Engineering", "Mobile"), ("Sales",), ("Sales", "EMEA"),
    ("Sales", "Americas"), ("Research",), ("Operations",), ("Finance",), ("Support",),
)
GIVEN = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
         "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Walter", "Xena", "Yusuf", "Zoe")
SURNAMES = ("Archer", "Baker", "Cooper", "Dyer", "Evans", "Fisher", "Green", "Hill", "Irving", "Jones", "König",
            "Łukasz", "Müller", "Nakamura", "O'Brien", "Petrov", "Quinn", "Rossi", "Smith", "Tanaka", "Ünal")
TITLES = ("Engineer", "Senior Engineer", "Manager", "Analyst", "Director", "Consultant", "Associate", "Specialist")


def ou_dn(path: tuple[str, ...]) -> str:
    return ",".join([*(f"ou={name}" for name in reversed(path)), PEOPLE])


def group_count(users: int) -> int:
    return max(50, users // 20)


def group_dn(index: int) -> str:
    return f"cn=grp-{index:06d},{GROUPS}"


def uid(number: int) -> str:
    return f"u{number:07d}"


def user_ou(number: int) -> tuple[str, ...]:
    return OUS[(number * 7919) % len(OUS)]


def user_dn(number: int, ou: tuple[str, ...] | None = None) -> str:
    return f"uid={uid(number)},{ou_dn(ou if ou is not None else user_ou(number))}"


@dataclass
class Directory:
    """Who is in which group, as group index lists per user (the LDIF writes both directions)."""

    users: int
    groups: int
    memberships: list[array]  # user number -> direct group indexes
    nested: dict[int, tuple[int, ...]]  # parent group -> child groups

    def members_of_groups(self) -> list[array]:
        members = [array("I") for _ in range(self.groups)]
        for number, groups in enumerate(self.memberships):
            for index in groups:
                members[index].append(number)
        return members


def plan_directory(users: int, seed: int = 1) -> Directory:
    rng = random.Random(seed)
    groups = group_count(users)
    big = min(BIG_GROUP_MEMBERS, max(1, users // 5))
    memberships: list[array] = []
    for number in range(users):
        mine = {0} if number < big else set()
        while len(mine) < MEMBERSHIPS_PER_USER:
            mine.add(rng.randrange(1, groups))
        memberships.append(array("I", sorted(mine)))
    nested = {parent: tuple(c for c in range(parent + 1, parent + 4) if c < groups)
              for parent in range(10, groups, 10)}
    return Directory(users, groups, memberships, nested)


def _user_attributes(number: int, rng: random.Random) -> list[tuple[str, str]]:
    given = GIVEN[number % len(GIVEN)]
    surname = SURNAMES[(number // len(GIVEN)) % len(SURNAMES)]
    ou = user_ou(number)
    attributes = [
        ("objectClass", "inetOrgPerson"),
        ("uid", uid(number)),
        ("cn", f"{given} {surname} {number}"),
        ("sn", surname),
        ("givenName", given),
        ("displayName", f"{given} {surname} ({number})"),
        ("departmentNumber", ou[0]),
        ("title", rng.choice(TITLES)),
        ("employeeNumber", str(100000 + number)),
        ("telephoneNumber", f"+44 20 7946 {number % 10000:04d}"),
        ("l", "London" if number % 3 else "Berlin"),
        ("description", f"Synthetic person {number} of the reconciler benchmark"),
    ]
    if number % 50 != 7:  # 2% without an email address
        attributes.append(("mail", f"{uid(number)}@{MAIL_DOMAIN}"))
    if number % 100 == 3:  # 1% locked
        attributes.append(("pwdAccountLockedTime", LOCKED))
    return attributes


def _line(out: TextIO, name: str, value: str) -> None:
    if value.isascii() and not value.startswith((" ", ":", "<")) and not value.endswith(" "):
        out.write(f"{name}: {value}\n")
    else:
        import base64

        out.write(f"{name}:: {base64.b64encode(value.encode()).decode()}\n")


def write_ldif(out: TextIO, users: int, seed: int = 1) -> Directory:
    """The whole directory: suffix, OUs, the sync account, users, groups. Returns the membership plan."""
    directory = plan_directory(users, seed)
    rng = random.Random(seed + 1)
    out.write(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: bench\no: bench\n\n")
    for ou in ("People", "Groups", "Service"):
        out.write(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
    out.write(f"dn: {SERVICE_ACCOUNT_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
              f"cn: svc-sync\nuserPassword: {SERVICE_PASSWORD}\n\n")
    written: set[tuple[str, ...]] = set()
    for path in OUS:
        for depth in range(1, len(path) + 1):
            if path[:depth] not in written:
                written.add(path[:depth])
                out.write(f"dn: {ou_dn(path[:depth])}\nobjectClass: organizationalUnit\nou: {path[depth - 1]}\n\n")
    for number in range(users):
        out.write(f"dn: {user_dn(number)}\n")
        for name, value in _user_attributes(number, rng):
            _line(out, name, value)
        for index in directory.memberships[number]:
            out.write(f"memberOf: {group_dn(index)}\n")
        out.write("\n")
    members = directory.members_of_groups()
    parents = {child: parent for parent, children in directory.nested.items() for child in children}
    for index in range(directory.groups):
        out.write(f"dn: {group_dn(index)}\nobjectClass: groupOfNames\ncn: grp-{index:06d}\n")
        out.write(f"description: {'Everyone in the big group' if index == 0 else f'Team {index}'}\n")
        values = [user_dn(n) for n in members[index]] + [group_dn(c) for c in directory.nested.get(index, ())]
        for value in values or [user_dn(0)]:  # groupOfNames needs a member
            out.write(f"member: {value}\n")
        if index in parents:
            out.write(f"memberOf: {group_dn(parents[index])}\n")
        out.write("\n")
    return directory


def churn_ldif(out: TextIO, users: int, seed: int = 1, share: float = 0.01) -> dict[str, int]:
    """`share` of N changes as ldapmodify input; returns how many of each kind."""
    directory = plan_directory(users, seed)
    rng = random.Random(seed + 2)
    total = max(10, int(users * share))
    kinds = {"modify": 0.40, "lock": 0.15, "delete": 0.10, "hire": 0.15, "move": 0.10, "group": 0.10}
    counts = {kind: round(total * weight) for kind, weight in kinds.items()}
    touched: set[int] = set()

    def someone() -> int:
        while True:
            number = rng.randrange(users)
            if number not in touched:
                touched.add(number)
                return number

    for _ in range(counts["modify"]):
        number = someone()
        out.write(f"dn: {user_dn(number)}\nchangetype: modify\nreplace: title\ntitle: {rng.choice(TITLES)} II\n-\n"
                  f"replace: displayName\ndisplayName: Renamed Person {number}\n-\n\n")
    for _ in range(counts["lock"]):
        number = someone()
        if number % 100 == 3:
            continue  # already locked
        out.write(f"dn: {user_dn(number)}\nchangetype: modify\nreplace: pwdAccountLockedTime\n"
                  f"pwdAccountLockedTime: {LOCKED}\n-\n\n")
    for _ in range(counts["delete"]):
        out.write(f"dn: {user_dn(someone())}\nchangetype: delete\n\n")
    for offset in range(counts["hire"]):
        number = users + offset
        out.write(f"dn: {user_dn(number)}\nchangetype: add\n")
        for name, value in _user_attributes(number, rng):
            _line(out, name, value)
        out.write("\n")
        for index in sorted({rng.randrange(1, directory.groups) for _ in range(3)}):
            out.write(f"dn: {group_dn(index)}\nchangetype: modify\nadd: member\nmember: {user_dn(number)}\n-\n\n")
    for _ in range(counts["move"]):
        number = someone()
        target = OUS[(OUS.index(user_ou(number)) + 1) % len(OUS)]
        out.write(f"dn: {user_dn(number)}\nchangetype: modrdn\nnewrdn: uid={uid(number)}\ndeleteoldrdn: 1\n"
                  f"newsuperior: {ou_dn(target)}\n\n")
    for _ in range(counts["group"]):
        number = someone()
        current = set(directory.memberships[number])
        leave = rng.choice(sorted(current - {0}))
        join = next(i for i in (rng.randrange(1, directory.groups) for _ in range(100)) if i not in current)
        out.write(f"dn: {group_dn(leave)}\nchangetype: modify\ndelete: member\nmember: {user_dn(number)}\n-\n\n")
        out.write(f"dn: {group_dn(join)}\nchangetype: modify\nadd: member\nmember: {user_dn(number)}\n-\n\n")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the benchmark directory (and its churn) as LDIF.")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="the directory's LDIF (slapadd input)")
    parser.add_argument("--churn", type=Path, help="also write 1%% of changes here (ldapmodify input)")
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as out:
        write_ldif(out, args.users, args.seed)
    if args.churn:
        with open(args.churn, "w", encoding="utf-8") as out:
            churn_ldif(out, args.users, args.seed)


if __name__ == "__main__":
    main()
