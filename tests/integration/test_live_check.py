"""`check_directory` against real servers: every failure it can meet here is
produced, and the failing step says what is wrong."""
from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.directory import check_directory
from reconciler.policy.model import Tls
from tests.servers import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3


@pytest.fixture(autouse=True)
def _password(live_server, bind_password):
    bind_password(live_server)


def failures(steps):
    return [s for s in steps if not s.ok]


def only_failure(steps):
    (failed,) = failures(steps)
    return failed


def test_a_healthy_directory_passes_every_step(live_server):
    directory = live_server.directory(users={"member_of": (live_server.group_dn("Sales EMEA"),)})
    steps = check_directory(directory)
    assert failures(steps) == []
    url = live_server.connection.ldaps_url
    assert [s.name for s in steps] == [
        f"dns {url}", f"tcp {url}", f"tls {url}", f"bind {url}",
        f"read users base {live_server.connection.people_base}",
        f"read groups base {live_server.connection.groups_base}",
        f"read member_of group {live_server.group_dn('Sales EMEA')}",
    ]
    assert "subject CN=localhost" in steps[2].detail
    assert "at least one entry matches" in steps[4].detail


def test_starttls_is_checked_on_plain_ldap_urls(live_server):
    steps = check_directory(live_server.directory(urls=(live_server.connection.ldap_url,)))
    assert failures(steps) == []
    assert steps[2].name.startswith("tls ") and "TLSv1" in steps[2].detail


def test_wrong_password(live_server, monkeypatch):
    monkeypatch.setenv("WRONG_PASSWORD", "Not-The-Passw0rd!")
    failed = only_failure(check_directory(live_server.directory(password_env="WRONG_PASSWORD")))
    assert failed.name.startswith("bind ")
    assert "Not-The-Passw0rd!" not in failed.detail
    if live_server.kind == "active-directory":
        assert "wrong password for the bind account" in failed.detail and "(AD code 52e)" in failed.detail


def test_password_variable_not_set(live_server, monkeypatch):
    monkeypatch.delenv("UNSET_PASSWORD_VARIABLE", raising=False)
    failed = only_failure(check_directory(live_server.directory(password_env="UNSET_PASSWORD_VARIABLE")))
    assert failed.name.startswith("bind ") and "UNSET_PASSWORD_VARIABLE is not set" in failed.detail


def test_wrong_ca(live_server):
    directory = replace(live_server.directory(), tls=Tls(ca_file=live_server.connection.other_ca_file))
    failed = only_failure(check_directory(directory))
    assert failed.name.startswith("tls ")
    assert "subject CN=localhost,O=reconciler tests, issued by CN=reconciler test CA" in failed.detail
    assert f"is tls.ca_file ({live_server.connection.other_ca_file}) the CA that issued it?" in failed.detail


def test_nothing_listening(live_server):
    url = f"ldaps://127.0.0.1:{free_port()}"
    failed = only_failure(check_directory(live_server.directory(urls=(url,))))
    assert failed.name == f"tcp {url}" and "refused: nothing listens there" in failed.detail


def test_name_that_does_not_resolve(live_server):
    url = "ldaps://dc1.does-not-exist.invalid"
    failed = only_failure(check_directory(live_server.directory(urls=(url,))))
    assert failed.name == f"dns {url}" and "cannot resolve dc1.does-not-exist.invalid" in failed.detail


def test_ldaps_url_pointing_at_the_plain_port(live_server):
    plain_port = live_server.connection.ldap_url.rsplit(":", 1)[1] if live_server.kind == "openldap" else "389"
    url = f"ldaps://127.0.0.1:{plain_port}"
    failed = only_failure(check_directory(live_server.directory(urls=(url,))))
    assert failed.name == f"tls {url}"


def test_insecure_bind_refused(live_server):
    directory = replace(live_server.directory(urls=(live_server.connection.ldap_url,)), tls=Tls(start_tls=False))
    steps = check_directory(directory)
    failed = only_failure(steps)
    assert failed.name.startswith("bind ") and "allow_insecure_bind: true" in failed.detail


def test_one_bad_url_among_good_ones_is_reported_and_the_reads_still_checked(live_server):
    dead = f"ldaps://127.0.0.1:{free_port()}"
    steps = check_directory(live_server.directory(urls=(dead, live_server.connection.ldaps_url)))
    assert [s.name for s in failures(steps)] == [f"tcp {dead}"]
    assert any(s.name.startswith("read users base") and s.ok for s in steps)


def test_base_that_does_not_exist(live_server):
    base = live_server.connection.people_base.replace("People", "Nobody Here")
    failed = only_failure(check_directory(live_server.directory(users={"search_bases": (base,)})))
    assert failed.name == f"read users base {base}" and "noSuchObject" in failed.detail


def test_base_the_bind_account_may_not_read(slapd_server, bind_password):
    bind_password(slapd_server)
    base = slapd_server.connection.extra["restricted_base"]
    failed = only_failure(check_directory(slapd_server.directory(users={"search_bases": (base,)})))
    assert failed.name == f"read users base {base}"
    assert "may not read looks like one that does not exist" in failed.detail


def test_a_filter_the_server_rejects(live_server):
    directory = live_server.directory(users={"filter": "(objectClass=user"})
    failed = only_failure(check_directory(directory))
    assert failed.name.startswith("read users base")
    assert "is not a valid LDAP filter" in failed.detail and "users.filter" in failed.detail


@pytest.mark.parametrize("account, code, meaning", [
    ("svc-disabled", "533", "is disabled"),
    ("svc-expired", "701", "has expired"),
    ("svc-mustchange", "773", "must change its password"),
    ("svc-hours", "530", "may not log on at this time"),
    ("svc-workstation", "531", "may not log on from this computer"),
])
def test_ad_bind_failure_codes_are_translated(samba_dc, bind_password, account, code, meaning):
    bind_password(samba_dc)
    user = samba_dc.connection.extra["failing_binds"][account]
    failed = only_failure(check_directory(samba_dc.directory(bind_user=user)))
    assert failed.name.startswith("bind ")
    assert meaning in failed.detail and f"(AD code {code})" in failed.detail
