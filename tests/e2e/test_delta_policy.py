"""`delta:` in the policy, as `validate` judges it: on the live kinds whose change feeds reconciler reads
(OpenLDAP's syncprov, AD's uSNChanged, Graph's delta queries), refused in one line where a snapshot is
read or no change feed is implemented, and `full_read_every` spelled as minutes, hours or days."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import Company

LIVE = """\
directories:
  corp:
    kind: {kind}
    urls: [ldaps://dc1.corp.example.com]
    bind: {{user: 'CN=svc,DC=corp,DC=example,DC=com', password: '${{CORP_PASSWORD}}'}}
    users: {{search_bases: ['OU=People,DC=corp,DC=example,DC=com']}}
{delta}
mapping:
  email: ['{{mail}}']
  display_name: '{{displayName}}'
store: {{kind: sqlite, path: store.db}}
"""


def write(company: Company, kind: str, delta: str) -> None:
    company.policy.write_text("version: 1\n" + LIVE.format(kind=kind, delta=delta))


@pytest.mark.parametrize("kind", ["active-directory", "openldap"])
@pytest.mark.parametrize("delta", ["    delta: {}", "    delta: {full_read_every: 12h}", "    delta: {full_read_every: 30m}"])
def test_delta_is_valid_on_the_kinds_with_a_change_feed(company, kind, delta):
    write(company, kind, delta)
    result = company.run("validate", "policy.yaml")
    assert result.code == 0, result.err


@pytest.mark.parametrize("kind", ["389ds", "freeipa"])
def test_delta_on_389ds_and_freeipa_is_refused_with_the_way_out(company, kind):
    write(company, kind, "    delta: {}")
    result = company.run("validate", "policy.yaml")
    assert result.code != 0 and "Traceback" not in result.err
    assert "delta is not available for 389 Directory Server and FreeIPA yet" in result.err
    assert "remove delta:" in result.err


@pytest.mark.parametrize("every", ["1w", "0d", "24", "-1h", "1.5h"])
def test_a_full_read_interval_that_is_not_minutes_hours_or_days_is_refused_at_its_line(company, every):
    write(company, "openldap", f"    delta: {{full_read_every: '{every}'}}")
    result = company.run("validate", "policy.yaml")
    assert result.code != 0 and "Traceback" not in result.err
    assert result.err.startswith("policy.yaml:8:30: ")  # the line and column of the value
    assert "full_read_every is a number of minutes, hours or days: 30m, 12h, 1d" in result.err


def test_a_snapshot_is_always_read_in_full(company):
    company.set_policy("    kind: ldif\n", "    kind: ldif\n    delta: {}\n")
    result = company.run("validate", "policy.yaml")
    assert result.code != 0 and "Traceback" not in result.err
    assert "delta is only for live directories; a snapshot is always read in full" in result.err
