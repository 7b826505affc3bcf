"""`users.include_disabled: true` imports disabled accounts deactivated, never active (lifecycle.when_disabled
decides, explain says so). Through the installed command on a copy of the quickstart, whose corp domain
has six disabled accounts."""
from __future__ import annotations

from tests.e2e.conftest import changes

CORP_BASES = "        - OU=Contractors,DC=corp,DC=example,DC=com\n"
DISABLED = ["dmitri.volkov@corp.example.com", "greta.novak@corp.example.com", "hannah.berg@corp.example.com",
            "lucia.romero@corp.example.com", "owen.price@corp.example.com", "victor.hale@corp.example.com"]


def include_disabled(company) -> None:
    company.set_policy(CORP_BASES, CORP_BASES + "      include_disabled: true\n")


def set_disabled(company, account: str, disabled: bool) -> None:
    corp = company.snapshot()
    corp.set(corp.find(sAMAccountName=account), "userAccountControl", "514" if disabled else "512")
    corp.save()


def test_disabled_accounts_are_created_deactivated(company):
    include_disabled(company)
    plan = company.plan_json()
    created = {c["subject"]: c["after"] for c in changes(plan, "create")}
    assert len(created) == 288 + 6
    assert sorted(s for s, after in created.items() if after["status"] == "deactivated") == DISABLED
    company.apply()
    for email in DISABLED:
        assert company.user(email)["status"] == "deactivated", email
    assert company.sql("SELECT count(*) FROM users WHERE status = 'active'")[0][0] == 288
    assert company.run("plan", "policy.yaml", "--detailed-exitcode").code == 0

    explained = company.run("explain", "policy.yaml", "greta.novak@corp.example.com")
    assert explained.code == 0, explained.err
    assert ("disabled in corp, imported deactivated (users.include_disabled, lifecycle.when_disabled: deactivate)"
            in explained.out)
    assert "(managed, deactivated)" in explained.out


def test_enabled_again_is_reactivated_and_disabled_again_is_deactivated_but_kept(company):
    include_disabled(company)
    company.apply()
    greta = company.snapshot().find(mail="greta.novak@corp.example.com")
    account = company.snapshot().entries[greta]["samaccountname"][0]
    set_disabled(company, account, False)
    [back] = changes(company.plan_json(), "reactivate")
    assert back["subject"] == "greta.novak@corp.example.com"
    company.apply()
    assert company.user("greta.novak@corp.example.com")["status"] == "active"

    set_disabled(company, "sosei", True)
    [out] = changes(company.plan_json(), "deactivate")
    assert out["subject"] == "samuel.osei@corp.example.com"
    assert out["reason"] == "disabled in corp; users.include_disabled keeps them in the store, deactivated"
    company.apply()
    assert company.user("samuel.osei@corp.example.com")["status"] == "deactivated"
    assert company.run("plan", "policy.yaml", "--detailed-exitcode").code == 0


def test_with_when_disabled_keep_a_new_account_is_created_deactivated_and_an_existing_one_left_as_is(synced):
    synced.set_policy("when_disabled: deactivate", "when_disabled: keep")
    include_disabled(synced)
    set_disabled(synced, "sosei", True)
    plan = synced.plan_json()
    assert {c["subject"] for c in changes(plan, "create") if c["after"]["status"] == "deactivated"} == set(DISABLED)
    assert changes(plan, "deactivate") == []
    synced.apply()
    assert synced.user("samuel.osei@corp.example.com")["status"] == "active"  # keep: as the store has them
    assert synced.user("greta.novak@corp.example.com")["status"] == "deactivated"


def test_with_when_disabled_delete_nothing_disabled_is_imported(company):
    company.set_policy("when_disabled: deactivate", "when_disabled: delete")
    include_disabled(company)
    plan = company.plan_json()
    assert len(changes(plan, "create")) == 288
    greta, = [v for v in plan["ignored"] if v["email"] == "greta.novak@corp.example.com"]
    assert greta["verdict"] == "disabled"
    assert greta["reason"] == ("disabled in corp; users.include_disabled imports nothing while "
                               "lifecycle.when_disabled is delete")
