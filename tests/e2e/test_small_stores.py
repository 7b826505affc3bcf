"""Safety limits at small sizes: an ordinary leaver goes through, mass change stays blocked
(safety.min_limit), and percentages are taken of the active users."""
from __future__ import annotations

from tests.e2e.conftest import ROOT, remove_people


def hideez(company):
    """The Hideez seed: the 13 nested members of one security group, from two domains."""
    text = (ROOT / "examples/seeds/hideez-key-owners.yaml").read_text()
    company.policy.write_text(text.replace("../quickstart/", "").replace(".reconciler/hideez.db", ".reconciler/store.db"))
    company.apply()
    assert company.sql("SELECT count(*) FROM users WHERE managed = 1 AND status = 'active'") == [(13,)]


def deactivated(company) -> int:
    return company.sql("SELECT count(*) FROM users WHERE status = 'deactivated'")[0][0]


def test_two_leavers_in_a_store_of_13_go_through_three_more_do_not(company):
    hideez(company)
    remove_people(company, ["sosei", "zadams"])  # 10% of 13 is 1: this hourly run used to fail until forced
    applied = company.run("apply", "policy.yaml", "--auto-approve")
    assert applied.code == 0, applied.err
    assert "Safety: deactivations 2 / allowed 2 ✓ (10% (1 of 13 active users; at least 2, safety.min_limit)" in applied.out
    assert deactivated(company) == 2
    remove_people(company, ["mchen", "rpatel", "praman"])  # now of 11 active users: still at most 2
    refused = company.run("apply", "policy.yaml", "--auto-approve")
    assert refused.code == 3 and "3 deactivations is over the limit of 10% (1 of 11 active users; at least 2" in refused.err
    assert deactivated(company) == 2
