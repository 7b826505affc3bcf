#!/usr/bin/env python3
"""Writes the example company's directory snapshots: corp.ldif and emea.ldif.

Two Active Directory domains of a fictional company, as `ldapsearch -LLL` would
export them, with the awkward cases a real directory has: nested groups and a
nesting cycle, disabled accounts, people without mail, one person in both
domains, two people sharing one mail, DNs and display names that need escaping.
COMPANY.md describes what is in them; tests and example policies rely on it.

Deterministic: a fixed seed and fixed name lists, so re-running it reproduces
the committed files byte for byte. Run from anywhere:

    python examples/quickstart/generate_snapshot.py [OUT_DIR]   # default: next to this script
"""
from __future__ import annotations

import base64
import random
import sys
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20261121
HERE = Path(__file__).resolve().parent

FIRST_NAMES = [
    "Aaron", "Abigail", "Adrian", "Aisha", "Alan", "Alice", "Amara", "Andrew", "Anna", "Arjun", "Ben", "Bianca",
    "Caleb", "Camille", "Carlos", "Chen", "Clara", "Daniel", "Diana", "Eduardo", "Elena", "Elif", "Emma", "Farah",
    "Felix", "Gabriel", "Grace", "Hamza", "Hugo", "Ines", "Ivan", "Jack", "Julia", "Kenji", "Laila", "Leo",
    "Lina", "Lucas", "Maya", "Mei", "Mohammed", "Nadia", "Nathan", "Nina", "Oliver", "Olivia", "Pablo", "Paula",
    "Quentin", "Rachel", "Rafael", "Rosa", "Sam", "Sara", "Sebastian", "Sophie", "Tariq", "Tessa", "Theo",
    "Valeria", "Wei", "William", "Xavier", "Yara", "Yusuf", "Zara", "Björn", "Zoé", "Maël", "Ólafur",
]
LAST_NAMES = [
    "Abbott", "Ahmed", "Alvarez", "Anderson", "Baker", "Bennett", "Brown", "Campbell", "Carter", "Castillo",
    "Clarke", "Cohen", "Cruz", "Davies", "Dhillon", "Edwards", "Evans", "Fischer", "Fleming", "Fournier", "Garcia",
    "Gomez", "Green", "Hansen", "Harris", "Hughes", "Ibrahim", "Ito", "Jensen", "Johnson", "Kaur", "Khan", "Kim",
    "Kowalski", "Lambert", "Lee", "Lopez", "Martin", "Meyer", "Mitchell", "Moreau", "Nakamura", "Nguyen", "Novak",
    "Ortiz", "Parker", "Perez", "Quinn", "Reyes", "Richter", "Roberts", "Santos", "Schmidt", "Shah", "Singh",
    "Stewart", "Sullivan", "Taylor", "Thompson", "Torres", "Turner", "Vargas", "Walker", "Wang", "Watson",
    "Wright", "Yilmaz", "Young", "Zhang", "Gonçalves", "Þórsson", "Åberg",
]
TITLES = {
    "Engineering": ["Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"],
    "Security": ["Security Engineer", "Security Analyst"],
    "Sales": ["Account Executive", "Sales Manager", "Sales Engineer"],
    "Finance": ["Accountant", "Financial Analyst", "Controller"],
    "Human Resources": ["HR Partner", "Recruiter"],
    "Operations": ["Operations Analyst", "Facilities Coordinator", "IT Technician"],
    "Contracting": ["Contractor"],
    "Staff": ["Consultant", "Office Manager", "Analyst"],
}

NORMAL, DISABLED = 512, 514  # userAccountControl: NORMAL_ACCOUNT, + ACCOUNTDISABLE (bit 2)
DONT_EXPIRE = 65536
GLOBAL_SECURITY_GROUP = -2147483646
WORKSTATION = 4096


@dataclass
class Domain:
    name: str  # corp.example.com
    netbios: str
    ous: list[str]  # OU paths below the domain, outermost first: "OU=Platform,OU=Engineering,OU=People"
    entries: list["Entry"] = field(default_factory=list)
    used_names: set[str] = field(default_factory=set)
    used_accounts: set[str] = field(default_factory=set)

    @property
    def dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.name.split("."))


@dataclass
class Entry:
    rdn: str  # "CN=Ann Lee" (escaped as a DN requires)
    parent: str  # full parent DN
    attributes: dict[str, list]  # values: str, int or bytes
    kind: str  # domain | ou | container | user | group | computer

    @property
    def dn(self) -> str:
        return f"{self.rdn},{self.parent}"


def escape_rdn_value(value: str) -> str:
    """RFC 4514: escape , + " \\ < > ; anywhere, # or space first, space last. `*`, `&`, `(` need none."""
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def ascii_fold(text: str) -> str:
    special = {"ß": "ss", "Þ": "Th", "þ": "th", "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Å": "A", "å": "a"}
    text = "".join(special.get(c, c) for c in text)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class Company:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def guid(self) -> bytes:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).bytes_le

    def domain(self, name: str, netbios: str, ous: list[str]) -> Domain:
        domain = Domain(name, netbios, ous)
        first, *rest = name.split(".")
        domain.entries.append(Entry(
            f"DC={first}", ",".join(f"DC={p}" for p in rest),
            {"objectClass": ["top", "domain", "domainDNS"], "dc": [first], "objectGUID": [self.guid()]}, "domain"))
        for path in ous:
            rdn, _, parent = path.partition(",")
            domain.entries.append(Entry(
                rdn, f"{parent},{domain.dn}" if parent else domain.dn,
                {"objectClass": ["top", "organizationalUnit"], "ou": [rdn[3:]], "objectGUID": [self.guid()]}, "ou"))
        return domain

    def account_name(self, domain: Domain, given: str, surname: str) -> str:
        base = ascii_fold(given[0] + surname).lower().replace(" ", "").replace("'", "")[:18]
        name, n = base, 1
        while name in domain.used_accounts:
            n += 1
            name = f"{base}{n}"
        domain.used_accounts.add(name)
        return name

    def person(
        self, domain: Domain, ou: str, given: str, surname: str, department: str, *,
        cn: str | None = None, display: str | None = None, mail: str | None | bool = True,
        upn: bool = True, disabled: bool = False, title: str | None = None,
    ) -> Entry:
        cn = cn or f"{given} {surname}"
        domain.used_names.add(f"{given} {surname}")
        account = self.account_name(domain, given, surname)
        control = (DISABLED if disabled else NORMAL) | (DONT_EXPIRE if self.rng.random() < 0.3 else 0)
        attributes: dict[str, list] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "cn": [cn],
            "sn": [surname],
            "givenName": [given],
            "displayName": [display or f"{given} {surname}"],
            "sAMAccountName": [account],
            "objectGUID": [self.guid()],
            "userAccountControl": [control],
            "department": [department],
            "title": [title or self.rng.choice(TITLES.get(department, TITLES["Staff"]))],
            "company": ["Example Corp"],
        }
        if upn:
            attributes["userPrincipalName"] = [f"{account}@{domain.name}"]
        if mail is True:
            mail = f"{ascii_fold(given)}.{ascii_fold(surname)}@{domain.name}".replace(" ", "").replace("'", "")
        if mail:
            attributes["mail"] = [mail]
        entry = Entry(f"CN={escape_rdn_value(cn)}", f"{ou},{domain.dn}", attributes, "user")
        domain.entries.append(entry)
        return entry

    def random_people(self, domain: Domain, ou: str, department: str, count: int) -> list[Entry]:
        people = []
        while len(people) < count:
            given, surname = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            if f"{given} {surname}" in domain.used_names:
                continue
            people.append(self.person(domain, ou, given, surname, department))
        return people

    def service_account(self, domain: Domain, ou: str, name: str, description: str, mail: bool = False) -> Entry:
        domain.used_accounts.add(name)
        attributes: dict[str, list] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "cn": [name], "sAMAccountName": [name], "objectGUID": [self.guid()],
            "userAccountControl": [NORMAL | DONT_EXPIRE], "description": [description],
            "userPrincipalName": [f"{name}@{domain.name}"],
        }
        if mail:
            attributes["mail"] = [f"{name}@{domain.name}"]
        entry = Entry(f"CN={name}", f"{ou},{domain.dn}", attributes, "user")
        domain.entries.append(entry)
        return entry

    def computer(self, domain: Domain, ou: str, name: str) -> Entry:
        attributes: dict[str, list] = {
            "objectClass": ["top", "person", "organizationalPerson", "user", "computer"],
            "cn": [name], "sAMAccountName": [f"{name}$"], "objectGUID": [self.guid()],
            "userAccountControl": [WORKSTATION], "dNSHostName": [f"{name.lower()}.{domain.name}"],
        }
        entry = Entry(f"CN={name}", f"{ou},{domain.dn}", attributes, "computer")
        domain.entries.append(entry)
        return entry

    def group(self, domain: Domain, ou: str, name: str, members: list[Entry], description: str) -> Entry:
        attributes: dict[str, list] = {
            "objectClass": ["top", "group"], "cn": [name], "sAMAccountName": [name],
            "objectGUID": [self.guid()], "groupType": [GLOBAL_SECURITY_GROUP], "description": [description],
            "member": [m.dn for m in members],
        }
        entry = Entry(f"CN={escape_rdn_value(name)}", f"{ou},{domain.dn}", attributes, "group")
        domain.entries.append(entry)
        return entry

    def add_members(self, group: Entry, members: list[Entry]) -> None:
        group.attributes["member"].extend(m.dn for m in members)


def build_corp(company: Company) -> Domain:
    corp = company.domain("corp.example.com", "CORP", [
        "OU=People",
        "OU=Engineering,OU=People", "OU=Platform,OU=Engineering,OU=People",
        "OU=Security,OU=Engineering,OU=People", "OU=Applications,OU=Engineering,OU=People",
        "OU=Sales,OU=People", "OU=EMEA,OU=Sales,OU=People", "OU=Americas,OU=Sales,OU=People",
        "OU=Finance,OU=People", "OU=Human Resources,OU=People",
        "OU=Operations,OU=People", "OU=Facilities,OU=Operations,OU=People",
        "OU=Contractors", "OU=Service Accounts", "OU=Groups", "OU=Computers",
    ])
    p = company.person
    ppl, eng = "OU=People", "OU=Engineering,OU=People"
    platform, security, apps = f"OU=Platform,{eng}", f"OU=Security,{eng}", f"OU=Applications,{eng}"
    sales_emea, sales_am = "OU=EMEA,OU=Sales,OU=People", "OU=Americas,OU=Sales,OU=People"
    finance, hr, ops, facilities = "OU=Finance,OU=People", "OU=Human Resources,OU=People", "OU=Operations,OU=People", "OU=Facilities,OU=Operations,OU=People"
    contractors = "OU=Contractors"

    # The cast COMPANY.md names; everyone else is drawn at random from the name lists.
    ceo = p(corp, ppl, "Margaret", "Chen", "Executive", title="Chief Executive Officer")
    ravi = p(corp, platform, "Ravi", "Patel", "Engineering", title="Principal Engineer")
    priya = p(corp, platform, "Priya", "Raman", "Engineering", display="Priya Raman | Platform", title="Staff Engineer")
    juergen = p(corp, security, "Jürgen", "Weiß", "Security", title="Head of Security")
    zoe = p(corp, apps, "Zoë", "Adams", "Engineering", title="Engineering Manager")
    tom = p(corp, apps, "Tom", "Baker", "Engineering", cn="Tom <Tommy> Baker", display="Tom <Tommy> Baker", title="Engineering Manager")
    hannah = p(corp, apps, "Hannah", "Berg", "Engineering", disabled=True, title="Engineering Manager")
    samuel = p(corp, ops, "Samuel", "Osei", "Operations", title="IT Technician")
    nora = p(corp, platform, "Nora", "Lindqvist", "Engineering", mail=None, title="Site Reliability Engineer")
    chinedu = p(corp, contractors, "Chinedu", "Okafor", "Contracting", cn="Okafor, Chinedu", display="Chinedu Okafor")
    amelie = p(corp, sales_emea, "Amélie", "Laurent", "Sales", mail="amelie.laurent@example.com", title="Sales Manager")
    ahmed = p(corp, sales_emea, "Ahmed", "Karim", "Sales", mail=None)
    sofia = p(corp, apps, "Sofia", "Rossi", "Engineering")
    henrik = p(corp, platform, "Henrik", "Larsen", "Engineering")
    jane = p(corp, finance, "Jane", "Smith", "Finance", mail="J.Smith@corp.example.com")
    jan = p(corp, ops, "Jan", "Smith", "Operations", mail="j.smith@corp.example.com")
    disabled = [
        hannah,
        p(corp, sales_am, "Victor", "Hale", "Sales", disabled=True),
        p(corp, finance, "Greta", "Novak", "Finance", disabled=True),
        p(corp, facilities, "Owen", "Price", "Operations", disabled=True),
        p(corp, contractors, "Lucia", "Romero", "Contracting", disabled=True),
        p(corp, platform, "Dmitri", "Volkov", "Engineering", disabled=True),
    ]
    p(corp, finance, "Beatriz", "Souza", "Finance", mail=None)
    p(corp, hr, "Chloe", "Dubois", "Human Resources", mail=None)
    p(corp, ops, "Ethan", "Brooks", "Operations", mail=None, upn=False)
    p(corp, security, "Isla", "Murray", "Security", mail=None, upn=False)
    p(corp, contractors, "Mateo", "Garcia", "Contracting", mail=None, upn=False)
    p(corp, apps, "Yuki", "Tanaka", "Engineering", mail=None)

    fill = {  # OU -> (department, how many people it has in total)
        ppl: ("Executive", 3), eng: ("Engineering", 5), platform: ("Engineering", 30), security: ("Security", 15),
        apps: ("Engineering", 35), "OU=Sales,OU=People": ("Sales", 5), sales_emea: ("Sales", 25), sales_am: ("Sales", 30),
        finance: ("Finance", 20), hr: ("Human Resources", 15), ops: ("Operations", 10), facilities: ("Operations", 10),
        contractors: ("Contracting", 25),
    }
    for ou, (department, total) in fill.items():
        present = sum(1 for e in corp.entries if e.kind == "user" and e.parent == f"{ou},{corp.dn}")
        company.random_people(corp, ou, department, total - present)

    company.service_account(corp, "OU=Service Accounts", "svc-sync", "Service account: directory sync (reconciler)")
    company.service_account(corp, "OU=Service Accounts", "svc-backup", "Service account: backups", mail=True)
    company.service_account(corp, "OU=Service Accounts", "svc-scanner", "Service account: document scanner", mail=True)
    company.service_account(corp, "OU=Service Accounts", "svc-reporting", "Service account: BI reporting")
    for name in ("WS-0001", "WS-0002", "WS-0003", "LAPTOP-0042"):
        company.computer(corp, "OU=Computers", name)
    company.computer(corp, eng, "ENG-BUILD01")  # a computer among people: only the user filter keeps it out

    groups = "OU=Groups"
    platform_leads = company.group(corp, groups, "Platform Leads", [ravi, priya], "Leads of the platform team")
    eng_leads = company.group(corp, groups, "Engineering Leads", [platform_leads, juergen, zoe, tom, hannah], "Engineering leadership")
    helpdesk = company.group(corp, groups, "Helpdesk", [nora], "First-line support")
    it_support = company.group(corp, groups, "IT Support", [helpdesk, samuel], "IT support staff")
    company.add_members(helpdesk, [it_support])  # the harmless nesting cycle: Helpdesk <-> IT Support
    company.group(corp, groups, "Security Key Owners", [eng_leads, it_support, ceo, chinedu],
                  "Everyone who gets a hardware security key")
    company.group(corp, groups, "R&D (Europe) *", [juergen, amelie, ahmed, sofia, henrik], "European R&D (the name needs filter escaping)")
    people = [e for e in corp.entries if e.kind == "user" and not e.attributes["sAMAccountName"][0].startswith("svc-")]
    candidates = sorted((e for e in people[16:] if e is not disabled[-1]), key=lambda e: e.dn)
    vpn = company.rng.sample(candidates, 60)
    company.group(corp, groups, "VPN Users", [disabled[-1], *vpn], "Remote access")
    company.group(corp, groups, "All Contractors", [e for e in people if e.parent.startswith(contractors)], "Every contractor")
    company.group(corp, groups, "Empty Project", [], "A group without members")
    return corp


def build_emea(company: Company) -> Domain:
    emea = company.domain("emea.example.com", "EMEA", [
        "OU=Staff", "OU=London,OU=Staff", "OU=Berlin,OU=Staff", "OU=Paris,OU=Staff", "OU=Groups", "OU=Service Accounts",
    ])
    p = company.person
    london, berlin, paris = "OU=London,OU=Staff", "OU=Berlin,OU=Staff", "OU=Paris,OU=Staff"
    amelie = p(emea, paris, "Amélie", "Laurent", "Sales", mail="amelie.laurent@example.com", title="Sales Manager")
    managers = [
        p(emea, london, "Eleanor", "Hughes", "Staff", title="Office Manager"),
        p(emea, berlin, "Matthias", "Krüger", "Staff", title="Office Manager"),
        p(emea, paris, "Camille", "Fournier", "Staff", title="Office Manager"),
    ]
    p(emea, london, "Fiona", "Walsh", "Staff", disabled=True)
    p(emea, berlin, "Karl", "Becker", "Staff", disabled=True)
    p(emea, berlin, "Lars", "Eriksen", "Staff", mail=None)
    p(emea, london, "Aoife", "Byrne", "Staff", mail=None, upn=False)
    for ou, total in ((london, 30), (berlin, 25), (paris, 20)):
        present = sum(1 for e in emea.entries if e.kind == "user" and e.parent == f"{ou},{emea.dn}")
        company.random_people(emea, ou, "Staff", total - present)
    company.service_account(emea, "OU=Service Accounts", "svc-sync", "Service account: directory sync (reconciler)")
    managers_group = company.group(emea, "OU=Groups", "EMEA Managers", managers, "Office managers")
    company.group(emea, "OU=Groups", "Security Key Owners", [managers_group, amelie], "Everyone who gets a hardware security key")
    london_people = [e for e in emea.entries if e.kind == "user" and e.parent.startswith(london)]
    company.group(emea, "OU=Groups", "London Office", london_people, "Everyone in London")
    return emea


def link_member_of(domain: Domain) -> None:
    """memberOf on every member, as AD maintains it from the groups' member values."""
    by_dn = {e.dn: e for e in domain.entries}
    for group in (e for e in domain.entries if e.kind == "group"):
        for member in group.attributes["member"]:
            by_dn[member].attributes.setdefault("memberOf", []).append(group.dn)


# ── LDIF output (RFC 2849), folded at 76 columns like ldapsearch ──

def _safe(value: str) -> bool:
    return value.isascii() and not value.startswith((" ", ":", "<")) and not value.endswith(" ") and not any(c in value for c in "\r\n\0")


def _line(name: str, value) -> str:
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode('ascii')}"
    text = str(value)
    if _safe(text):
        return f"{name}: {text}"
    return f"{name}:: {base64.b64encode(text.encode('utf-8')).decode('ascii')}"


def _fold(line: str, width: int = 76) -> str:
    if len(line) <= width:
        return line
    parts = [line[:width]] + [" " + line[i : i + width - 1] for i in range(width, len(line), width - 1)]
    return "\n".join(parts)


def write_ldif(domain: Domain, path: Path) -> None:
    chunks = [
        f"# {domain.name}: example company snapshot, generated by generate_snapshot.py (seed {SEED}).\n"
        "# Do not edit by hand: change the generator and run it again. See COMPANY.md.\n"
        "version: 1\n"
    ]
    for entry in domain.entries:
        lines = [_line("dn", entry.dn)]
        attributes = dict(entry.attributes)
        attributes["distinguishedName"] = [entry.dn]
        for name, values in attributes.items():
            lines += [_line(name, value) for value in values]
        chunks.append("\n".join(_fold(line) for line in lines) + "\n")
    path.write_text("\n".join(chunks), encoding="utf-8")


def generate(out_dir: Path = HERE) -> list[Path]:
    """Writes corp.ldif and emea.ldif into `out_dir`; returns their paths."""
    company = Company(random.Random(SEED))
    written = []
    for domain, filename in ((build_corp(company), "corp.ldif"), (build_emea(company), "emea.ldif")):
        link_member_of(domain)
        write_ldif(domain, out_dir / filename)
        written.append(out_dir / filename)
        people = sum(1 for e in domain.entries if e.kind == "user")
        print(f"{out_dir / filename}: {len(domain.entries)} entries, {people} user accounts")
    return written


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
