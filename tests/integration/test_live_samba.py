"""Active Directory specifics, against a real Samba AD DC: the three bind-name forms,
server-side nesting with the in-chain rule, AD's references to its system
partitions, ranged-attribute-free reads, and NTLM's clear failure against Samba."""
from __future__ import annotations

import pytest

from reconciler.directory.ldap.source import LiveSource
from reconciler.errors import DirectoryError
from tests.servers.population import PEOPLE, SECURITY_KEY_OWNERS, SECURITY_KEY_OWNERS_MEMBERS

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3


@pytest.fixture(autouse=True)
def _password(samba_dc, bind_password):
    bind_password(samba_dc)


@pytest.mark.parametrize("form", ["dn", "upn", "down_level"])
def test_every_bind_name_form_reads_the_directory(samba_dc, form):
    user = samba_dc.connection.bind_dn if form == "dn" else samba_dc.connection.extra[form]
    read = LiveSource(samba_dc.directory(bind_user=user)).read()
    assert len(read.users) == len(PEOPLE)


def test_nesting_is_resolved_by_the_server_in_one_search(samba_dc):
    """AD flavour sends the in-chain rule: only the members come back (entries_read counts them only)."""
    directory = samba_dc.directory(users={"member_of": (samba_dc.group_dn(SECURITY_KEY_OWNERS),)})
    read = LiveSource(directory).read()
    assert {u.account_name for u in read.users} == SECURITY_KEY_OWNERS_MEMBERS
    assert read.entries_read == len(SECURITY_KEY_OWNERS_MEMBERS)
    assert read.out_of_scope == []


def test_a_search_from_the_domain_root_skips_only_the_reference_to_the_configuration_partition(samba_dc):
    # Samba, like AD, answers a subtree search at the domain root with a reference to
    # CN=Configuration,...; that partition holds no users, so it is skipped, not followed or fatal.
    directory = samba_dc.directory(users={"search_bases": (samba_dc.connection.base_dn,)})
    read = LiveSource(directory).read()
    assert {p.account for p in PEOPLE} <= {u.account_name for u in read.users}
    assert "svc-sync" in {u.account_name for u in read.users}


def test_the_in_chain_filter_combines_with_the_policy_filter(samba_dc):
    directory = samba_dc.directory(users={"member_of": (samba_dc.group_dn(SECURITY_KEY_OWNERS),),
                                          "filter": "(&(objectClass=user)(department=Sales))"})
    assert {u.account_name for u in LiveSource(directory).read().users} == {"bob", "frank", "heidi"}


def test_an_ntlm_bind_samba_does_not_offer_fails_with_a_clear_message(samba_dc):
    directory = samba_dc.directory(bind_user=samba_dc.connection.extra["down_level"], method="ntlm")
    with pytest.raises(DirectoryError, match="does not offer NTLM through the Sicily bind"):
        LiveSource(directory).read()


def test_ad_edits_from_the_fixture_are_seen_by_the_next_read(samba_dc):
    """Disable, move and group edits on the shared DC, undone afterwards."""
    samba_dc.set_disabled("ivan")
    samba_dc.move_user("judy", ("Research",))
    samba_dc.add_to_group("judy", SECURITY_KEY_OWNERS)
    try:
        directory = samba_dc.directory(users={"member_of": (samba_dc.group_dn(SECURITY_KEY_OWNERS),)})
        owners = {u.account_name: u for u in LiveSource(directory).read().users}
        assert "judy" in owners and owners["judy"].dn.startswith("CN=Judy Jones,OU=Research,")
        everyone = {u.account_name: u for u in LiveSource(samba_dc.directory()).read().users}
        assert everyone["ivan"].disabled
    finally:
        samba_dc.remove_from_group("judy", SECURITY_KEY_OWNERS)
        samba_dc.move_user("judy", ())
        samba_dc.set_disabled("ivan", False)
    assert not {u.account_name: u for u in LiveSource(samba_dc.directory()).read().users}["ivan"].disabled
