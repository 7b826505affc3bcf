"""Snapshots that lie, through the installed command on a copy of the quickstart: a broken read aborts
the plan in one line (no traceback, nobody deactivated); entries that cannot be imported are listed as
ignored with the reason."""
from __future__ import annotations

import base64

from tests.e2e.conftest import changes

PEOPLE = "OU=People,DC=corp,DC=example,DC=com"


def active(company) -> int:
    return company.sql("SELECT count(*) FROM users WHERE status = 'active'")[0][0]


def refused_in_one_line(company, *needles: str) -> None:
    """plan and apply both stop with exit 1 and one line on stderr; the store is untouched."""
    before = company.sql("SELECT key, status FROM users ORDER BY key")
    for command in (("plan", "policy.yaml"), ("apply", "policy.yaml", "--auto-approve")):
        result = company.run(*command)
        assert result.code == 1, (command, result.out, result.err)
        assert "Traceback" not in result.err
        lines = [line for line in result.err.splitlines() if line.strip()]
        assert len(lines) == 1, result.err
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
    assert company.sql("SELECT key, status FROM users ORDER BY key") == before


def ignored(plan: dict, dn_start: str) -> list[dict]:
    return [v for v in plan["ignored"] if v["dn"].startswith(dn_start)]


def test_a_snapshot_cut_off_mid_line_is_refused_and_nobody_is_deactivated(synced):
    path = synced.folder / "corp.ldif"
    data = path.read_bytes()
    cut = data.index(b"mail: Rachel.Carter@") + len(b"mail: Rache")
    path.write_bytes(data[:cut])
    last_line = data[:cut].count(b"\n") + 1
    refused_in_one_line(synced, f"corp.ldif:{last_line}: the file ends in the middle of a line")
    assert active(synced) == 288


def test_an_address_that_is_not_an_address_is_ignored_with_the_reason(company):
    corp = company.snapshot()
    bad = {"CN=Mei Watson": "two words@x.com", "CN=Nathan Lopez": "a@b@c.com"}
    for start, mail in bad.items():
        dn = next(dn for dn in corp.entries if dn.startswith(start + ","))
        corp.set(dn, "mail", mail)
        corp.set(dn, "userPrincipalName")
    corp.save()
    plan = company.plan_json()
    mei, = ignored(plan, "CN=Mei Watson,")
    assert mei["reason"] == "email 'two words@x.com' is not a valid address: it contains a space (' ')"
    nathan, = ignored(plan, "CN=Nathan Lopez,")
    assert nathan["reason"] == "email 'a@b@c.com' is not a valid address: it has more than one '@'"
    subjects = {c["subject"] for c in changes(plan, "user.create")}
    assert "two words@x.com" not in subjects and "a@b@c.com" not in subjects
    assert plan["summary"]["user.create"] == 288 - 2


def test_two_entries_with_one_anchor_are_both_ignored_naming_each_other(company):
    corp = company.snapshot()
    mei = next(dn for dn in corp.entries if dn.startswith("CN=Mei Watson,"))
    nathan = next(dn for dn in corp.entries if dn.startswith("CN=Nathan Lopez,"))
    corp.set(nathan, "objectGUID", *corp.entries[mei]["objectguid"])
    corp.save()
    plan = company.plan_json()
    (j,), (g,) = ignored(plan, mei), ignored(plan, nathan)
    assert j["reason"].startswith("conflict: the same objectGUID ") and j["reason"].endswith(f" as {nathan} in corp; neither is imported")
    assert g["reason"].startswith("conflict: the same objectGUID ") and g["reason"].endswith(f" as {mei} in corp; neither is imported")
    assert plan["summary"]["user.create"] == 288 - 2


def test_an_entry_without_objectclass_under_a_users_base_refuses_the_read_against_a_populated_store(synced):
    corp = synced.snapshot()
    mei = next(dn for dn in corp.entries if dn.startswith("CN=Mei Watson,"))
    corp.set(mei, "objectClass")
    corp.save()
    refused_in_one_line(synced, "corp.ldif:", f"entry {mei} has no objectClass")
    assert synced.user("mei.watson@corp.example.com")["status"] == "active"


def test_an_entry_without_objectclass_outside_the_bases_is_listed_as_ignored(synced):
    corp = synced.snapshot()
    corp.add("CN=Stray,DC=corp,DC=example,DC=com", {"cn": ["Stray"], "objectGUID": [bytes(range(16))]})
    corp.save()
    plan = synced.plan_json()
    stray, = ignored(plan, "CN=Stray,")
    assert stray["reason"].startswith("no objectClass")
    assert plan["changes"] == []


def test_a_dn_that_does_not_parse_refuses_the_read_against_a_populated_store(synced):
    path = synced.folder / "corp.ldif"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f"dn: CN=Mei Watson,OU=Sales,{PEOPLE}\n", f"dn: CN=Mei Watson,,OU=Sales,{PEOPLE}\n"),
                    encoding="utf-8")
    refused_in_one_line(synced, "corp.ldif:", "does not parse")
    assert synced.user("mei.watson@corp.example.com")["status"] == "active"


def test_a_base64_display_name_that_is_not_utf8_is_one_line_naming_entry_and_attribute(synced):
    company = synced
    corp = company.snapshot()
    mei = next(dn for dn in corp.entries if dn.startswith("CN=Mei Watson,"))
    corp.set(mei, "displayName", "Meï Watson".encode("latin-1"))
    corp.save()
    assert "displayname:: " + base64.b64encode("Meï Watson".encode("latin-1")).decode() in (company.folder / "corp.ldif").read_text()
    refused_in_one_line(company, f"entry {mei}: the value of displayname is not UTF-8 text")


def test_a_dn_folded_with_two_spaces_is_no_traceback_and_keeps_the_user(synced):
    path = synced.folder / "corp.ldif"
    data = path.read_bytes()
    line = f"dn: CN=Mei Watson,OU=Sales,{PEOPLE}\n".encode()
    assert line in data
    path.write_bytes(data.replace(line, line[:-5] + b"\n  =com\n"))  # 'DC\n  =com': the value keeps one space
    result = synced.run("plan", "policy.yaml", "--format", "json")
    assert "Traceback" not in result.err
    assert result.code == 0, result.err
    assert not [c for c in changes(__import__("json").loads(result.out)) if c["action"] == "user.deactivate"]
    assert synced.user("mei.watson@corp.example.com")["status"] == "active"
