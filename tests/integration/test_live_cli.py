"""The core promise through the installed command, against real directories: a policy
pointing at a Samba AD DC or an OpenLDAP slapd (LDAPS, the test CA verified, the bind
password by reference), `plan`/`apply` on an SQLite store, and directory events
(hire, leave, disable, re-enable, OU move, nested group changes) becoming the right
store changes; `preview` and `check` against a server; a truncated read that aborts.

The servers are shared by the session: scenarios that edit the directory work in an
OU of their own (`Sandbox`), removed again when the test ends.
"""
from __future__ import annotations

import re

import pytest

from tests.integration.live_cli_support import LiveCompany, Sandbox, anchor, changes, email
from tests.servers.population import DISABLED, PEOPLE, WITHOUT_MAIL

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

IMPORTED = [p for p in PEOPLE if p.account not in DISABLED | WITHOUT_MAIL]


@pytest.fixture
def company(tmp_path, live_server) -> LiveCompany:
    return LiveCompany(tmp_path, {"corp": live_server})


@pytest.fixture
def sandbox(request, live_server):
    """An OU of this test's own below People (named after the test), removed with everything in it afterwards."""
    name = "cli-" + request.node.originalname.removeprefix("test_").replace("_", "-")[:40]
    box = Sandbox(live_server, name)
    yield box
    box.remove()


def read_sandbox(company: LiveCompany, box: Sandbox, **users) -> None:
    """A policy reading only the sandbox. Small populations: a safety limit in percent would refuse
    the single deactivation a scenario makes, so the limit here is a count."""
    directory = box.server.policy_directory(users={"search_bases": [box.base], **users})
    company.write_policy({"corp": directory}, safety={"max_deactivations": 5})


def key_of(server, account: str) -> str:
    return f"corp:{anchor(server, account)}"


def assert_no_changes(company: LiveCompany) -> None:
    again = company.run("plan", "policy.yaml", "--detailed-exitcode")
    assert again.code == 0 and "No changes. The store matches the directories." in again.out, again.output


# ── the whole seeded population ─────────────────────────────────────────────


def test_first_apply_then_the_second_plan_is_empty(live_server, company):
    company.write_policy({"corp": live_server.policy_directory()})
    plan = company.plan_json()
    assert plan["directories"]["corp"] == {"read": len(PEOPLE), "in_scope": len(PEOPLE), "imported": len(IMPORTED),
                                           "ignored": len(WITHOUT_MAIL), "disabled": len(DISABLED)}
    assert {c["subject"] for c in changes(plan, "create")} == {email(live_server, p.account) for p in IMPORTED}
    applied = company.apply()
    assert f"{len(IMPORTED)} users to create" in applied.out
    assert company.sql("SELECT count(*) FROM users WHERE managed = 1 AND status = 'active'") == [(len(IMPORTED),)]
    alice, bob, judy = (company.user(email(live_server, a)) for a in ("alice", "bob", "judy"))
    assert alice["key"] == key_of(live_server, "alice")  # keyed by the server's own stable anchor
    assert (alice["display_name"], alice["team"]) == ("Alice Archer", "Org/Engineering")
    assert bob["team"] == "Org/Sales/EMEA" and judy["team"] == "Org"  # judy sits at the search base itself
    assert_no_changes(company)


def test_two_directories_merge_by_email_into_one_user(samba_dc, slapd_emea, tmp_path):
    """Samba and a second slapd hold the same people (same emails, different anchors): one user each, two links."""
    company = LiveCompany(tmp_path, {"corp": samba_dc, "emea": slapd_emea})
    company.write_policy({"corp": samba_dc.policy_directory(), "emea": slapd_emea.policy_directory()},
                         identity={"merge_by_email": True, "precedence": ["corp", "emea"]})
    plan = company.plan_json()
    assert plan["summary"]["user.create"] == len(IMPORTED)
    company.apply()
    assert company.sql("SELECT count(*) FROM users") == [(len(IMPORTED),)]
    alice = company.user("alice@corp.example.com")
    assert alice["key"] == key_of(samba_dc, "alice")  # precedence: corp's entry names the user
    assert company.links("alice@corp.example.com") == [("corp", anchor(samba_dc, "alice")),
                                                       ("emea", anchor(slapd_emea, "alice"))]
    assert company.sql("SELECT count(*) FROM user_links") == [(2 * len(IMPORTED),)]
    assert_no_changes(company)


# ── directory events, each in its own sandbox ──────────────────────────────────


def test_a_new_hire_is_created(live_server, company, sandbox):
    sandbox.hire("hire-ann", "Staff")
    read_sandbox(company, sandbox)
    company.apply()
    mail = sandbox.hire("hire-ben", "Staff")
    plan = company.plan_json()
    [create] = changes(plan)
    assert (create["action"], create["subject"], create["reason"]) == ("create", mail, "new in corp")
    assert create["key"] == key_of(live_server, "hire-ben")
    company.apply()
    user = company.user(mail)
    assert (user["status"], user["managed"], user["team"]) == ("active", True, sandbox.team("Staff"))
    assert_no_changes(company)


def test_a_leaver_whose_entry_is_deleted_is_deactivated_not_deleted(live_server, company, sandbox):
    sandbox.hire("gone-cy")
    mail = sandbox.hire("gone-di")
    read_sandbox(company, sandbox)
    company.apply()
    key = company.user(mail)["key"]
    live_server.delete_user("gone-di")
    [leaver] = changes(company.plan_json())
    assert (leaver["action"], leaver["key"], leaver["subject"]) == ("deactivate", key, mail)
    assert leaver["reason"] == "left scope: no longer found in corp under its search bases and filter"
    company.apply()
    assert company.user(mail)["status"] == "deactivated"  # the record stays
    assert_no_changes(company)


def test_a_disabled_account_is_deactivated_and_reactivated_when_re_enabled(live_server, company, sandbox):
    sandbox.hire("off-eli")
    mail = sandbox.hire("off-fay")
    read_sandbox(company, sandbox)
    company.apply()
    key = company.user(mail)["key"]
    live_server.set_disabled("off-fay")
    [off] = changes(company.plan_json())
    assert (off["action"], off["key"], off["reason"]) == ("deactivate", key, "disabled in corp")
    company.apply()
    assert company.user(mail)["status"] == "deactivated"
    live_server.set_disabled("off-fay", False)
    [back] = changes(company.plan_json())
    assert (back["action"], back["key"]) == ("reactivate", key)  # the same user, not a second one
    company.apply()
    user = company.user(mail)
    assert (user["key"], user["status"]) == (key, "active")
    assert_no_changes(company)


def test_an_ou_move_becomes_a_team_move(live_server, company, sandbox):
    sandbox.hire("move-gil", "Sales")
    mail = sandbox.hire("move-hal", "Sales")
    read_sandbox(company, sandbox)
    company.apply()
    live_server.move_user("move-hal", (sandbox.name, "Research", "Lab"))
    plan = company.plan_json()
    [move] = changes(plan)
    assert (move["action"], move["key"]) == ("move", key_of(live_server, "move-hal"))  # same entry, new DN
    assert (move["before"], move["after"]) == ({"team": "Org/Sales"}, {"team": "Org/Research/Lab"})
    assert {c["key"] for c in changes(plan, "create", kind="team")} == {"Org/Research", "Org/Research/Lab"}
    company.apply()
    assert company.user(mail)["team"] == "Org/Research/Lab"
    assert_no_changes(company)


def test_nested_membership_brings_people_in_and_losing_it_deactivates(live_server, company, sandbox):
    """member_of a group whose member group holds the people; removing the inner membership is leaving."""
    kept, leaving = sandbox.hire("nest-ivy"), sandbox.hire("nest-jo")
    sandbox.hire("nest-kai")  # in the sandbox's OU but in no group: never in scope
    sandbox.group("CLI Inner", members=("nest-ivy", "nest-jo"))
    outer = sandbox.group("CLI Outer", groups=("CLI Inner",))
    read_sandbox(company, sandbox, member_of=[outer])
    plan = company.plan_json()
    assert {c["subject"] for c in changes(plan, "create")} == {kept, leaving}
    company.apply()
    live_server.remove_from_group("nest-jo", "CLI Inner")
    [leaver] = changes(company.plan_json())
    assert (leaver["action"], leaver["subject"]) == ("deactivate", leaving)
    assert leaver["reason"].startswith("left scope: ") and f"not a member of {outer}" in leaver["reason"]
    company.apply()
    assert company.user(leaving)["status"] == "deactivated" and company.user(kept)["status"] == "active"
    assert_no_changes(company)


def test_a_person_without_email_is_ignored_with_the_reason(live_server, company, sandbox):
    mail = sandbox.hire("mail-lou")
    sandbox.hire("mail-max", mail=False)
    read_sandbox(company, sandbox)
    plan = company.plan_json()
    assert [c["subject"] for c in changes(plan)] == [mail]
    [ignored] = [v for v in plan["ignored"] if v["account_name"] == "mail-max"]
    assert (ignored["verdict"], ignored["email"], ignored["directory"]) == ("ignored", None, "corp")
    assert ignored["reason"].startswith("no email") and "{mail}" in ignored["reason"]
    company.apply()
    assert company.sql("SELECT email FROM users") == [(mail,)]
    assert_no_changes(company)


# ── preview and check ─────────────────────────────────────────────────────


def preview_rows(out: str) -> list[list[str]]:
    """The table rows under the `account name email team verdict reason` header: columns are at least two spaces
    apart."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.split()[:6] == ["account", "name", "email", "team", "verdict", "reason"])
    return [re.split(r"\s{2,}", line.strip(), maxsplit=5) for line in lines[header + 1:] if line.strip()]


def expected_row(server, account: str) -> tuple[str, str, str]:
    """(email shown, verdict, start of the reason) for a seeded person, from the population's own data."""
    person = next(p for p in PEOPLE if p.account == account)
    if not person.mail:
        return "—", "ignored", "no email"
    if person.disabled:
        return email(server, account), "disabled", "disabled in corp"
    return email(server, account), "imported", "in scope of corp; email from {mail}"


def test_preview_shows_the_count_read_and_the_first_rows_with_verdicts(live_server, company):
    company.write_policy({"corp": live_server.policy_directory()})
    shown = company.run("preview", "policy.yaml", "--limit", "5")
    assert shown.code == 0, shown.output
    assert shown.out.splitlines()[0] == (
        f"corp: {len(PEOPLE)} entries read, {len(IMPORTED)} would be imported, {len(WITHOUT_MAIL)} ignored, "
        f"{len(DISABLED)} disabled; showing the first 5")
    rows = preview_rows(shown.out)
    assert len(rows) == 5
    everyone = preview_rows(company.run("preview", "policy.yaml", "--limit", "100").out)
    assert rows == everyone[:5]  # the first five of the same order
    assert sorted(row[0] for row in everyone) == sorted(p.account for p in PEOPLE)
    for account, _name, shown_email, _team, verdict, reason in everyone:
        want_email, want_verdict, reason_start = expected_row(live_server, account)
        assert (shown_email, verdict) == (want_email, want_verdict), account
        assert reason.startswith(reason_start), (account, reason)
    assert not company.store.exists()  # preview never writes


def test_check_passes_every_step_against_a_good_policy(live_server, company):
    company.write_policy({"corp": live_server.policy_directory()})
    checked = company.run("check", "policy.yaml")
    assert checked.code == 0, checked.output
    lines = checked.out.splitlines()
    assert lines and all(line.startswith("OK ") for line in lines), checked.out
    url = live_server.connection.ldaps_url
    assert [line.split(": ")[1] for line in lines[:4]] == [f"dns {url}", f"tcp {url}", f"tls {url}", f"bind {url}"]
    assert any(line.startswith(f"OK   corp: read users base {live_server.connection.people_base}: ") for line in lines)
    assert lines[-1].startswith("OK   store: sqlite: opened")


def test_check_with_a_wrong_password_names_the_cause_and_never_the_password(live_server, company):
    company.write_policy({"corp": live_server.policy_directory()})
    wrong = "Wr0ng-But-Plausible-Passw0rd!"
    checked = company.run("check", "policy.yaml", env={live_server.connection.password_env: wrong})
    assert checked.code == 1
    [failed] = [line for line in checked.out.splitlines() if line.startswith("FAIL")]
    assert failed.startswith(f"FAIL corp: bind {live_server.connection.ldaps_url}: ")
    if live_server.kind == "active-directory":
        assert "wrong password for the bind account" in failed and "(AD code 52e)" in failed
    else:
        assert "invalidCredentials" in failed
    assert wrong not in checked.output and live_server.connection.bind_password not in checked.output


def test_plan_with_a_wrong_password_is_one_line_without_the_password(live_server, company):
    company.write_policy({"corp": live_server.policy_directory()})
    wrong = "Wr0ng-But-Plausible-Passw0rd!"
    planned = company.run("plan", "policy.yaml", env={live_server.connection.password_env: wrong})
    assert planned.code == 1 and planned.out == ""
    [message] = planned.err.splitlines()
    assert message.startswith("policy.yaml:") and "directory corp: cannot connect" in message
    assert f"bind as {live_server.connection.bind_dn} failed: " in message
    assert ("(AD code 52e)" if live_server.kind == "active-directory" else "(invalidCredentials)") in message
    assert wrong not in planned.output and not company.store.exists()


# ── failing closed ────────────────────────────────────────────────────────


def test_a_truncated_read_aborts_plan_and_apply_and_leaves_the_store_alone(slapd_server, tmp_path):
    """The limited account may read fewer entries than there are: that is not two dozen leavers."""
    company = LiveCompany(tmp_path, {"corp": slapd_server})
    company.write_policy({"corp": slapd_server.policy_directory()})
    company.apply()
    before = company.dump()
    company.write_policy({"corp": slapd_server.policy_directory(
        bind={"user": slapd_server.connection.extra["limited_dn"], "password": "${" + slapd_server.connection.password_env + "}"})})
    planned = company.run("plan", "policy.yaml")
    assert planned.code == 1 and planned.out == ""
    [message] = planned.err.splitlines()
    assert message.startswith(f"directory corp: incomplete read of base '{slapd_server.connection.people_base}'")
    assert "(objectClass=inetOrgPerson)" in message
    assert "sizeLimitExceeded" in message or "adminLimitExceeded" in message
    applied = company.run("apply", "policy.yaml", "--auto-approve")
    assert applied.code == 1 and applied.err == planned.err
    assert company.dump() == before
