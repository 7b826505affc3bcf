"""The people and groups both test directories are seeded with, and the edits
end-to-end scenarios make (hire, leave, disable, move, group changes).

One population, two dialects: `samba.py` writes it as AD objects (user/group,
sAMAccountName, userAccountControl), `slapd.py` as inetOrgPerson/groupOfNames
(uid, pwdAccountLockedTime). Tests name people by their account name and
groups by their cn, never by a DN spelled out, so they run against either.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Person:
    account: str  # sAMAccountName / uid
    given: str
    surname: str
    ou: tuple[str, ...] = ()  # OU path below People, outermost first: ("Sales", "EMEA")
    mail: bool = True  # False: a person without an email address
    disabled: bool = False
    department: str | None = None

    @property
    def display_name(self) -> str:
        return f"{self.given} {self.surname}"


@dataclass(frozen=True)
class Group:
    cn: str
    members: tuple[str, ...] = ()  # account names
    groups: tuple[str, ...] = ()  # cns of nested member groups
    unique_members: bool = False  # OpenLDAP: groupOfUniqueNames instead of groupOfNames


SECURITY_KEY_OWNERS = "Security Key Owners"
SPECIAL_GROUP = "R&D (Europe) *"  # LDAP-special characters: & ( ) * must not widen or break a filter
SPECIAL_DECOY = "R&D (Europe) Contractors"  # what an unescaped '*' would also match

PEOPLE: tuple[Person, ...] = (
    Person("alice", "Alice", "Archer", ("Engineering",), department="Engineering"),
    Person("bob", "Bob", "Baker", ("Sales", "EMEA"), department="Sales"),
    Person("carol", "Carol", "Cooper", ("Engineering",), disabled=True, department="Engineering"),
    Person("dave", "Dave", "Dyer", ("Sales",), mail=False, department="Sales"),
    Person("erin", "Erin", "Evans", ("Research",), department="Research"),
    Person("frank", "Frank", "Fisher", ("Sales", "EMEA"), department="Sales"),
    Person("grace", "Grace", "Green", ("Research",), department="Research"),
    Person("heidi", "Heidi", "Hill", ("Sales", "EMEA"), disabled=True, department="Sales"),
    Person("ivan", "Ivan", "Irving", ("Engineering",), department="Engineering"),
    Person("judy", "Judy", "Jones", (), department="Administration"),
    # Enough further people that a read spans several pages at the tests' small page size.
    *(Person(f"user{n:02d}", "User", f"Number {n:02d}", ("Engineering",) if n % 2 else ("Sales",),
             department="Engineering" if n % 2 else "Sales") for n in range(1, 21)),
)

GROUPS: tuple[Group, ...] = (
    Group("Engineering Team", members=("alice", "carol", "ivan")),
    Group("Sales EMEA", members=("bob", "frank", "heidi")),
    Group("Key Pilots", members=("grace",)),
    # nested twice: Security Key Owners > Sales EMEA (bob, frank, heidi), Key Pilots (grace); plus alice directly
    Group(SECURITY_KEY_OWNERS, members=("alice",), groups=("Sales EMEA", "Key Pilots")),
    Group(SPECIAL_GROUP, members=("erin",)),
    Group(SPECIAL_DECOY, members=("judy",)),
    Group("Auditors", members=("judy", "dave"), unique_members=True),
)

# The expected answers, written out rather than derived, so a reader bug cannot agree with itself.
SECURITY_KEY_OWNERS_MEMBERS = frozenset({"alice", "bob", "frank", "heidi", "grace"})
DISABLED = frozenset({"carol", "heidi"})
WITHOUT_MAIL = frozenset({"dave"})

SERVICE_ACCOUNT = "svc-sync"
SERVICE_PASSWORD = "Sync-Passw0rd-1!"
PASSWORD_ENV = "RECONCILER_TEST_BIND_PASSWORD"  # the env var policies reference as ${...}


@dataclass
class Connection:
    """What a policy needs to reach a test server."""

    kind: str  # active-directory | openldap
    ldaps_url: str
    ldap_url: str
    ca_file: str
    other_ca_file: str
    base_dn: str
    people_base: str
    groups_base: str
    bind_dn: str
    bind_password: str = SERVICE_PASSWORD
    password_env: str = PASSWORD_ENV
    extra: dict = field(default_factory=dict)  # flavour-specific: upn, down_level, limited_dn, ...
