#!/usr/bin/env python3
"""Writes cloud.json: Example Corp's Microsoft Entra ID tenant, as Microsoft Graph returns it.

Example Corp syncs corp.example.com (examples/quickstart/corp.ldif) to its tenant with Entra
Connect, and has people who exist only in the cloud. The snapshot holds, as Graph v1.0 returns
them (https://learn.microsoft.com/en-us/graph/api/resources/user, .../resources/group):

- a synced record for every person in OU=People and OU=Contractors of corp.ldif: the same
  userPrincipalName, `onPremisesImmutableId` the base64 of the entry's objectGUID,
  `onPremisesSyncEnabled: true`, `accountEnabled` false where the AD account is disabled; the
  cloud `mail` is the AD mail, except for the people Exchange Online gave the new domain
  (CLOUD_MAIL: a different cloud mail, and Nora Lindqvist, who has none in AD);
- the corp groups, synced, with their members (nesting and the Helpdesk <-> IT Support cycle kept);
- cloud-only people (CLOUD_ONLY): field sales and customer success, one disabled, one without
  mail, a guest, and one account created by hand before the sync took over Samuel Osei (the same
  mail as his synced record: a conflict a policy reading both directories reports);
- the cloud groups: `Hardware Key Users` (the synced Security Key Owners, the cloud group Field
  Sales, and a few people directly) and `Field Sales`.

The examples/seeds/hideez-entra-hybrid.yaml policy reads it next to corp.ldif. Deterministic: ids
are UUIDv5 of fixed names, so re-running reproduces the committed file byte for byte (a unit test
checks that). Run from anywhere:

    python examples/entra/generate_snapshot.py [OUT_FILE]   # default: cloud.json next to this script
"""
from __future__ import annotations

import base64
import json
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.directory.ldif.parser import read_ldif  # noqa: E402

NAMESPACE = uuid.UUID("6f1c0d6e-2b4a-4f57-9a51-3f4e3b6c2d10")
TENANT = "example.onmicrosoft.com"
SYNCED_BASES = ("ou=people,dc=corp,dc=example,dc=com", "ou=contractors,dc=corp,dc=example,dc=com")
# account -> the mail Exchange Online has for them (their AD mail differs, or AD has none)
CLOUD_MAIL = {
    "mchen": "margaret.chen@example.com",
    "rpatel": "ravi.patel@example.com",
    "nlindqvist": "Nora.Lindqvist@example.com",
}
# people who exist only in the cloud: (display name, given, surname, mail or None, upn, department, title, enabled, type)
CLOUD_ONLY = [
    ("Ines Moreau", "Ines", "Moreau", "Ines.Moreau@example.com", "ines.moreau@example.com", "Sales", "Field Sales Lead", True, "Member"),
    ("Kenji Ito", "Kenji", "Ito", "Kenji.Ito@example.com", "kenji.ito@example.com", "Sales", "Field Sales Representative", True, "Member"),
    ("Lina Santos", "Lina", "Santos", "Lina.Santos@example.com", "lina.santos@example.com", "Sales", "Field Sales Representative", True, "Member"),
    ("Hugo Lambert", "Hugo", "Lambert", "Hugo.Lambert@example.com", "hugo.lambert@example.com", "Customer Success", "Customer Success Manager", True, "Member"),
    ("Tessa Quinn", "Tessa", "Quinn", "Tessa.Quinn@example.com", "tessa.quinn@example.com", "Customer Success", "Support Engineer", False, "Member"),
    ("Yusuf Kaur", "Yusuf", "Kaur", None, "ykaur@example.onmicrosoft.com", "Customer Success", "Support Engineer", True, "Member"),
    ("Pat Partner (Contoso)", "Pat", "Partner", "pat@contoso.example", "pat_contoso.example#EXT#@example.onmicrosoft.com", None, None, True, "Guest"),
    ("Samuel Osei", "Samuel", "Osei", "Samuel.Osei@corp.example.com", "samuel.osei@example.onmicrosoft.com", "Operations", "IT Technician", True, "Member"),
]
FIELD_SALES = ["Ines Moreau", "Kenji Ito", "Lina Santos"]
# Hardware Key Users: the synced Security Key Owners, Field Sales, and these directly (cloud-only, and one synced
# person whose AD account is not in Security Key Owners: they come in through the cloud only)
KEY_USERS_DIRECT = ["Hugo Lambert", "Tessa Quinn", "Yusuf Kaur", "Pat Partner (Contoso)", "Samuel Osei (cloud)", "Ahmed Karim"]


def object_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def first(attributes: dict, name: str):
    values = attributes.get(name.lower()) or [None]
    return values[0]


def synced_user(record) -> dict:
    a = record.attributes
    account = first(a, "sAMAccountName")
    disabled = int(first(a, "userAccountControl") or 512) & 2 == 2
    mail = CLOUD_MAIL.get(account, first(a, "mail"))
    guid = first(a, "objectGUID")
    return {
        "id": object_id("user", account),
        "accountEnabled": not disabled,
        "businessPhones": [],
        "companyName": first(a, "company"),
        "department": first(a, "department"),
        "displayName": first(a, "displayName"),
        "givenName": first(a, "givenName"),
        "jobTitle": first(a, "title"),
        "mail": mail,
        "mobilePhone": None,
        "officeLocation": None,
        "onPremisesDistinguishedName": record.dn,
        "onPremisesImmutableId": base64.b64encode(guid).decode("ascii"),
        "onPremisesSamAccountName": account,
        "onPremisesSyncEnabled": True,
        "surname": first(a, "sn"),
        "userPrincipalName": first(a, "userPrincipalName") or f"{account}@corp.example.com",
        "userType": "Member",
    }


def cloud_user(display, given, surname, mail, upn, department, title, enabled, user_type) -> dict:
    key = display if display != "Samuel Osei" else "Samuel Osei (cloud)"
    return {
        "id": object_id("user", key),
        "accountEnabled": enabled,
        "businessPhones": [],
        "companyName": "Example Corp" if user_type == "Member" else None,
        "department": department,
        "displayName": display,
        "givenName": given,
        "jobTitle": title,
        "mail": mail,
        "mobilePhone": None,
        "officeLocation": None,
        "onPremisesDistinguishedName": None,
        "onPremisesImmutableId": None,
        "onPremisesSamAccountName": None,
        "onPremisesSyncEnabled": None,
        "surname": surname,
        "userPrincipalName": upn,
        "userType": user_type,
    }


def group(name: str, members: list[dict], synced: bool, description: str) -> dict:
    return {
        "id": object_id("group", name),
        "description": description,
        "displayName": name,
        "groupTypes": [],
        "mailEnabled": False,
        "onPremisesSyncEnabled": True if synced else None,
        "securityEnabled": True,
        "members": sorted(members, key=lambda m: (m["@odata.type"], m["id"])),
    }


def member(kind: str, object_id_: str) -> dict:
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": object_id_}


def build(corp_ldif: Path) -> dict:
    records = list(read_ldif(str(corp_ldif), binary_attributes=["objectGUID"]))
    people = [r for r in records if "user" in (r.attributes.get("objectclass") or []) and "computer" not in
              (r.attributes.get("objectclass") or []) and r.dn.lower().endswith(SYNCED_BASES)]
    users = [synced_user(r) for r in people]
    by_dn = {r.dn.lower(): member("user", object_id("user", first(r.attributes, "sAMAccountName"))) for r in people}
    ad_groups = [r for r in records if "group" in (r.attributes.get("objectclass") or [])]
    for g in ad_groups:
        by_dn[g.dn.lower()] = member("group", object_id("group", first(g.attributes, "cn")))
    groups = [group(first(g.attributes, "cn"), [by_dn[m.lower()] for m in g.attributes.get("member", []) if m.lower() in by_dn],
                    True, f"Synced from {g.dn}") for g in ad_groups]
    cloud = [cloud_user(*person) for person in CLOUD_ONLY]
    users += cloud
    by_name = {u["displayName"]: u for u in cloud}
    by_name["Samuel Osei (cloud)"] = next(u for u in cloud if u["id"] == object_id("user", "Samuel Osei (cloud)"))
    by_name.update({u["displayName"]: u for u in users if u.get("onPremisesSyncEnabled") and u["displayName"] == "Ahmed Karim"})
    field_sales = group("Field Sales", [member("user", by_name[n]["id"]) for n in FIELD_SALES], False,
                        "Cloud-only: the field sales team")
    key_users = group("Hardware Key Users",
                      [member("group", object_id("group", "Security Key Owners")), member("group", field_sales["id"]),
                       *(member("user", by_name[n]["id"]) for n in KEY_USERS_DIRECT)], False,
                      "Cloud-only: everyone who is issued a hardware key")
    groups += [field_sales, key_users]
    users.sort(key=lambda u: u["id"])
    groups.sort(key=lambda g: g["id"])
    return {"users": users, "groups": groups}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "cloud.json"
    data = build(ROOT / "examples" / "quickstart" / "corp.ldif")
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{out}: {len(data['users'])} users, {len(data['groups'])} groups")


if __name__ == "__main__":
    main()
