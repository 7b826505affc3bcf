"""The core promise, through the installed command: plan, apply, and the next plan is empty;
directory events (hire, leave, disable, move, mail change) become the right store changes."""
from __future__ import annotations

import base64
import uuid

from tests.e2e.conftest import changes


def test_first_plan_apply_then_the_second_plan_is_empty(company):
    first = company.plan_json()
    assert first["summary"]["user.create"] == 288
    assert first["directories"]["corp"] == {"read": 228, "in_scope": 228, "imported": 217, "ignored": 5, "disabled": 6}
    applied = company.apply()
    assert "Applied: 288 users to create, 15 teams to create." in applied.out
    assert company.sql("SELECT count(*) FROM users WHERE managed = 1") == [(288,)]
    again = company.run("plan", "policy.yaml", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out


def test_a_new_hire_appears(synced):
    corp = synced.snapshot()
    corp.add("CN=Nina Hire,OU=Platform,OU=Engineering,OU=People,DC=corp,DC=example,DC=com", {
        "objectClass": ["top", "person", "organizationalPerson", "user"], "cn": ["Nina Hire"],
        "sAMAccountName": ["nhire"], "mail": ["Nina.Hire@corp.example.com"], "displayName": ["Nina Hire"],
        "department": ["Engineering"], "userAccountControl": ["512"],
        "objectGUID": [uuid.UUID("12345678-1234-5678-1234-567812345678").bytes_le],
    })
    corp.save()
    plan = synced.plan_json()
    [create] = changes(plan, "create")
    assert create["subject"] == "nina.hire@corp.example.com" and create["reason"] == "new in corp"
    assert create["key"] == "corp:12345678-1234-5678-1234-567812345678"
    synced.apply()
    assert synced.user("nina.hire@corp.example.com")["team"] == "Example Corp/Engineering/Platform"


def test_a_leaver_is_deactivated_not_deleted(synced):
    corp = synced.snapshot()
    corp.remove(corp.find(sAMAccountName="sosei"))
    corp.save()
    plan = synced.plan_json()
    [leaver] = changes(plan, "deactivate")
    assert leaver["subject"] == "samuel.osei@corp.example.com"
    assert leaver["reason"] == "left scope: no longer found in corp under its search bases and filter"
    synced.apply()
    assert synced.user("samuel.osei@corp.example.com")["status"] == "deactivated"


def test_a_disabled_account_is_deactivated_and_reactivated_when_re_enabled(synced):
    corp = synced.snapshot()
    dn = corp.find(sAMAccountName="mchen")
    corp.set(dn, "userAccountControl", "514")
    corp.save()
    [off] = changes(synced.plan_json(), "deactivate")
    assert (off["subject"], off["reason"]) == ("margaret.chen@corp.example.com", "disabled in corp")
    synced.apply()
    key_before = synced.user("margaret.chen@corp.example.com")["key"]
    corp.set(dn, "userAccountControl", "512")
    corp.save()
    [back] = changes(synced.plan_json(), "reactivate")
    assert back["key"] == key_before
    synced.apply()
    user = synced.user("margaret.chen@corp.example.com")
    assert user["status"] == "active" and user["key"] == key_before


def test_an_ou_move_becomes_a_team_move(synced):
    corp = synced.snapshot()
    corp.move(corp.find(sAMAccountName="rpatel"), "OU=EMEA,OU=Sales,OU=People,DC=corp,DC=example,DC=com")
    corp.save()
    [move] = changes(synced.plan_json(), "move")
    assert move["before"] == {"team": "Example Corp/Engineering/Platform"}
    assert move["after"] == {"team": "Example Corp/Sales/EMEA"}
    synced.apply()
    assert synced.user("ravi.patel@corp.example.com")["team"] == "Example Corp/Sales/EMEA"


def test_a_changed_mail_updates_the_same_user(synced):
    corp = synced.snapshot()
    corp.set(corp.find(sAMAccountName="praman"), "mail", "priya.r@corp.example.com")
    corp.save()
    [update] = changes(synced.plan_json(), "update")
    assert update["before"] == {"email": "priya.raman@corp.example.com"}
    assert update["after"] == {"email": "priya.r@corp.example.com"}
    key = synced.user("priya.raman@corp.example.com")["key"]
    synced.apply()
    assert synced.user("priya.r@corp.example.com")["key"] == key
    assert synced.user("priya.raman@corp.example.com") is None


def test_a_hand_made_store_user_is_adopted_and_the_directory_wins(company):
    company.apply()  # creates the store
    company.sql("DELETE FROM users WHERE email = 'zoe.adams@corp.example.com'")
    company.sql("INSERT INTO users (key, email, display_name, attributes, status, managed, created_at, updated_at) "
                "VALUES (NULL, 'ZOE.ADAMS@corp.example.com', 'zoe (added by hand)', '{}', 'active', 0, 'x', 'x')")
    [adopt] = changes(company.plan_json(), "adopt")
    assert adopt["subject"] == "zoe.adams@corp.example.com" and adopt["before"]["key"].startswith("local:")
    company.apply()
    user = company.user("zoe.adams@corp.example.com")
    assert user["managed"] and user["display_name"] == "Zoë Adams" and user["key"].startswith("corp:")


def test_a_manual_edit_to_a_managed_user_is_reverted(synced):
    synced.sql("UPDATE users SET display_name = 'Margaret (edited in the app)' WHERE email = 'margaret.chen@corp.example.com'")
    [update] = changes(synced.plan_json(), "update")
    assert update["before"] == {"display_name": "Margaret (edited in the app)"} and update["after"] == {"display_name": "Margaret Chen"}
    assert update["reason"] == ("edited in the application since the last apply: display name "
                                "'Margaret (edited in the app)' put back to 'Margaret Chen'")
    synced.apply()
    assert synced.user("margaret.chen@corp.example.com")["display_name"] == "Margaret Chen"


def test_one_person_in_two_domains_stays_one_user(synced):
    rows = synced.sql("SELECT u.key, l.directory FROM users u JOIN user_links l ON l.user_id = u.id "
                      "WHERE u.email = 'amelie.laurent@example.com' ORDER BY l.directory")
    assert [d for _, d in rows] == ["corp", "emea"] and len({k for k, _ in rows}) == 1
    assert rows[0][0].startswith("corp:")  # precedence: corp's attributes win


def test_special_characters_survive_the_round_trip(synced):
    tom = synced.user("tom.baker@corp.example.com")
    assert tom["display_name"] == "Tom <Tommy> Baker"
    assert synced.user("priya.raman@corp.example.com")["display_name"] == "Priya Raman | Platform"
    assert synced.user("jurgen.weiss@corp.example.com")["display_name"] == "Jürgen Weiß"


def test_nothing_is_ever_written_by_plan(company):
    company.run("plan", "policy.yaml")
    assert not company.store.exists()
