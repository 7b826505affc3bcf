"""A merge by email never jams the store: the record that loses an entry to another user releases its link
in the same apply, so the other user's update goes through and later applies (leavers included) are not
blocked run after run. Through the installed command on a copy of the quickstart, SQLite store."""
from __future__ import annotations

from tests.e2e.conftest import changes, remove_people


def links_of(company, email: str) -> list[str]:
    rows = company.sql("SELECT l.directory || ':' || l.anchor FROM user_links l JOIN users u ON u.id = l.user_id "
                       "WHERE lower(u.email) = lower(?) ORDER BY 1", email)
    return [row[0] for row in rows]


def emea_only_person(company) -> tuple[str, str]:
    """(DN, email) of an emea person whose store record holds only their emea link."""
    emea = company.snapshot("emea")
    for dn, attributes in emea.entries.items():
        mail = (attributes.get("mail") or [None])[0]
        if mail and links_of(company, mail) and all(l.startswith("emea:") for l in links_of(company, mail)):
            return dn, mail
    raise AssertionError("no emea-only person in the quickstart")


def give_corp_address(company, emea_dn: str, corp_mail: str) -> None:
    emea = company.snapshot("emea")
    emea.set(emea_dn, "mail", corp_mail)
    emea.set(emea_dn, "userPrincipalName")
    emea.save()


def test_an_emea_person_taking_a_corp_address_merges_and_the_apply_goes_through(synced):
    dn, mail = emea_only_person(synced)
    emea_link = links_of(synced, mail)[0]
    give_corp_address(synced, dn, "Margaret.Chen@corp.example.com")

    plan = synced.plan_json()
    deactivate, = changes(plan, "deactivate")
    assert deactivate["subject"] == mail.lower()
    assert deactivate["reason"] == ("merged by email into margaret.chen@corp.example.com, "
                                    "which now holds this person")
    assert deactivate["before"] == {"status": "active", "links": [emea_link]}
    assert deactivate["after"] == {"status": "deactivated", "links": []}

    synced.apply()
    assert synced.user(mail)["status"] == "deactivated" and links_of(synced, mail) == []
    assert emea_link in links_of(synced, "Margaret.Chen@corp.example.com")
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 0  # converged


def test_a_leaver_in_the_same_plan_is_deactivated_too(synced):
    """The defect's cost: a merge the store refused kept every leaver active, run after run."""
    dn, mail = emea_only_person(synced)
    give_corp_address(synced, dn, "Margaret.Chen@corp.example.com")
    remove_people(synced, ["sosei"])
    synced.apply()
    assert synced.plan_json()["changes"] == []
    assert synced.sql("SELECT count(*) FROM users WHERE status = 'deactivated'")[0][0] == 2


def test_a_person_deactivated_before_releases_the_link_with_an_update(synced):
    """Deactivated earlier (disabled), then their entry's address becomes another person's: no second
    deactivation, an update that only releases the link, naming who holds it now."""
    dn, mail = emea_only_person(synced)
    emea_link = links_of(synced, mail)[0]
    emea = synced.snapshot("emea")
    emea.set(dn, "userAccountControl", "514")  # ACCOUNTDISABLE
    emea.save()
    synced.apply()
    assert synced.user(mail)["status"] == "deactivated"
    emea = synced.snapshot("emea")
    emea.set(dn, "userAccountControl", "512")
    emea.save()
    give_corp_address(synced, dn, "Margaret.Chen@corp.example.com")

    plan = synced.plan_json()
    release, = [c for c in changes(plan, "update") if c["subject"] == mail.lower()]
    assert release["before"] == {"links": [emea_link]} and release["after"] == {"links": []}
    assert release["reason"].endswith(f"releases {emea_link} to margaret.chen@corp.example.com")
    assert changes(plan, "deactivate") == []
    synced.apply()
    assert links_of(synced, mail) == [] and emea_link in links_of(synced, "Margaret.Chen@corp.example.com")
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 0


def test_lifecycle_keep_still_releases_the_link(synced):
    synced.set_policy("when_out_of_scope: deactivate", "when_out_of_scope: keep")
    dn, mail = emea_only_person(synced)
    give_corp_address(synced, dn, "Margaret.Chen@corp.example.com")
    synced.apply()
    assert synced.user(mail)["status"] == "active"  # kept, as the policy says
    assert links_of(synced, mail) == []
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 0


def test_an_email_template_that_merges_across_directories_applies(synced):
    """A new email template makes corp and emea people with the same account name one person each."""
    synced.set_policy("email: ['{mail}', '{userPrincipalName}']", "email: ['{sAMAccountName}@example.com']")
    merged = [c for c in changes(synced.plan_json(), "deactivate") if c["reason"].startswith("merged by email into ")]
    assert len(merged) == 16  # people in both domains under one account name
    result = synced.run("apply", "policy.yaml", "--auto-approve", "--force", "--reason", "address scheme change")
    assert result.code == 0, result.err
    assert "already belongs" not in result.err
    assert synced.run("plan", "policy.yaml", "--detailed-exitcode").code == 0
    # nobody holds a link twice, and every active user holds at least one
    assert synced.sql("SELECT count(*) FROM users u WHERE status = 'active' AND NOT EXISTS "
                      "(SELECT 1 FROM user_links l WHERE l.user_id = u.id)")[0][0] == 0
