"""Reading real directories: Samba AD and OpenLDAP give the same entry model.

Every test here runs against both servers (the `live_server` fixture), reading
through LDAPS with certificate verification against the test CA, at a page size
of 7 so the 30-person population spans several pages.
"""
from __future__ import annotations

import os
import re

import pytest

from reconciler.directory.ldap.source import LiveSource
from reconciler.errors import DirectoryError
from reconciler.model import normalise_dn
from tests.servers.population import (
    DISABLED, PEOPLE, SECURITY_KEY_OWNERS, SECURITY_KEY_OWNERS_MEMBERS, SPECIAL_GROUP, WITHOUT_MAIL,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

AD_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(autouse=True)
def _password(live_server, bind_password):
    bind_password(live_server)


def accounts(read) -> set[str]:
    return {u.account_name for u in read.users}


def test_the_whole_population_is_read_across_pages(live_server):
    read = LiveSource(live_server.directory()).read()
    assert accounts(read) == {p.account for p in PEOPLE}
    assert read.entries_read == len(PEOPLE)  # 30 entries at page size 7: five pages
    assert all(AD_GUID.match(u.anchor) for u in read.users)  # objectGUID as text, entryUUID as is
    assert len({u.anchor for u in read.users}) == len(PEOPLE)


def test_disabled_accounts_are_read_and_flagged(live_server):
    read = LiveSource(live_server.directory()).read()
    assert {u.account_name for u in read.users if u.disabled} == DISABLED


def test_people_without_mail_come_without_it(live_server):
    read = LiveSource(live_server.directory()).read()
    by_account = {u.account_name: u for u in read.users}
    assert {a for a, u in by_account.items() if u.first("mail") is None} == WITHOUT_MAIL
    assert by_account["alice"].first("displayName") == "Alice Archer"


def test_only_the_attributes_the_policy_names_are_kept(live_server):
    read = LiveSource(live_server.directory(mapping={"email": ["{mail}"], "display_name": "{mail}"})).read()
    assert all(set(u.attributes) <= {"mail"} for u in read.users)


def test_member_of_includes_nested_members(live_server):
    directory = live_server.directory(users={"member_of": (live_server.group_dn(SECURITY_KEY_OWNERS),)})
    read = LiveSource(directory).read()
    assert accounts(read) == SECURITY_KEY_OWNERS_MEMBERS


def test_a_group_name_with_ldap_special_characters_matches_only_itself(live_server):
    # Unescaped, "(Europe) *" would break the filter or let '*' also match "R&D (Europe) Contractors" (judy).
    directory = live_server.directory(users={"member_of": (live_server.group_dn(SPECIAL_GROUP),)})
    read = LiveSource(directory).read()
    assert accounts(read) == {"erin"}


def test_groups_are_read_with_their_direct_members_including_nested_groups(live_server):
    read = LiveSource(live_server.directory()).read()
    owners = read.groups[normalise_dn(live_server.group_dn(SECURITY_KEY_OWNERS))]
    assert owners.name == SECURITY_KEY_OWNERS
    assert owners.members == {normalise_dn(live_server.user_dn("alice")), normalise_dn(live_server.group_dn("Sales EMEA")),
                              normalise_dn(live_server.group_dn("Key Pilots"))}
    by_account = {u.account_name: u for u in read.users}
    assert normalise_dn(live_server.group_dn("Sales EMEA")) in by_account["bob"].groups


def test_each_user_records_the_search_base_it_was_found_under(live_server):
    base = live_server.connection.people_base
    read = LiveSource(live_server.directory()).read()
    assert {u.search_base for u in read.users} == {base}


def test_starttls_on_plain_ldap_reads_the_same(live_server):
    ldaps = LiveSource(live_server.directory()).read()
    starttls = LiveSource(live_server.directory(urls=(live_server.connection.ldap_url,))).read()
    assert [u.anchor for u in starttls.users] == [u.anchor for u in ldaps.users]


def test_a_dead_url_fails_over_to_the_next(live_server):
    from tests.servers import free_port

    dead = f"ldaps://127.0.0.1:{free_port()}"
    read = LiveSource(live_server.directory(urls=(dead, live_server.connection.ldaps_url))).read()
    assert len(read.users) == len(PEOPLE)


def test_a_member_of_group_that_does_not_exist_aborts_rather_than_empty_the_scope(live_server):
    missing = live_server.group_dn(SECURITY_KEY_OWNERS).replace("Security Key Owners", "No Such Group")
    with pytest.raises(DirectoryError, match="member_of names .*No Such Group.* does not exist"):
        LiveSource(live_server.directory(users={"member_of": (missing,)})).read()


def test_a_wrong_ca_fails_with_the_certificate_and_the_reason(live_server):
    from dataclasses import replace

    from reconciler.policy.model import Tls

    directory = replace(live_server.directory(), tls=Tls(ca_file=live_server.connection.other_ca_file))
    with pytest.raises(DirectoryError) as raised:
        LiveSource(directory).read()
    message = str(raised.value)
    assert "subject CN=localhost,O=reconciler tests, issued by CN=reconciler test CA" in message
    # Samba sends only its certificate, slapd the chain with the CA: OpenSSL words the same problem two ways
    assert re.search("unable to get local issuer certificate|self-signed certificate in certificate chain", message)
    assert live_server.connection.other_ca_file in message


def test_verification_can_be_turned_off_explicitly(live_server):
    from dataclasses import replace

    from reconciler.policy.model import Tls

    directory = replace(live_server.directory(), tls=Tls(ca_file=live_server.connection.other_ca_file, verify=False))
    assert len(LiveSource(directory).read().users) == len(PEOPLE)


def test_a_simple_bind_over_plain_ldap_is_refused_unless_allowed(live_server):
    from dataclasses import replace

    from reconciler.policy.model import Tls

    plain = replace(live_server.directory(urls=(live_server.connection.ldap_url,)), tls=Tls(start_tls=False))
    with pytest.raises(DirectoryError, match="refusing a simple bind over plain ldap://.*allow_insecure_bind: true"):
        LiveSource(plain).read()
    allowed = replace(plain, allow_insecure_bind=True)
    assert len(LiveSource(allowed).read().users) == len(PEOPLE)


def test_a_wrong_password_names_the_account_and_never_the_password(live_server, monkeypatch):
    monkeypatch.setenv("WRONG_PASSWORD", "Not-The-Passw0rd!")
    with pytest.raises(DirectoryError) as raised:
        LiveSource(live_server.directory(password_env="WRONG_PASSWORD")).read()
    message = str(raised.value)
    assert live_server.connection.bind_dn in message
    assert "Not-The-Passw0rd!" not in message
    if live_server.kind == "active-directory":
        assert "wrong password for the bind account" in message and "AD code 52e" in message
    else:
        assert "wrong user name or password" in message


def test_a_read_decoded_in_the_helper_process_is_the_read_decoded_here(live_server, monkeypatch):
    """A big read's pages are decoded on the other core (directory/ldap/entry_decoder.py); here every page
    goes to the helper (START_AFTER 0) and the read must equal the one decoded in this process, with the
    helpers started for the users and groups searches stopped by the time the read returns."""
    from reconciler.directory.ldap.entry_decoder import EntryDecoder

    directory = live_server.directory()
    monkeypatch.setattr(EntryDecoder, "START_AFTER", 10**9)
    here = LiveSource(directory).read()
    started = []
    start = EntryDecoder._start

    def recorded(self):
        ok = start(self)
        started.append(self.helper_pid)
        return ok

    monkeypatch.setattr(EntryDecoder, "START_AFTER", 0)
    monkeypatch.setattr(EntryDecoder, "_start", recorded)
    helped = LiveSource(directory).read()
    assert len(started) >= 2 and all(started)  # users and groups
    assert helped == here
    assert accounts(helped) == {p.account for p in PEOPLE}
    for pid in started:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: stopped and waited for, not left running or a zombie
