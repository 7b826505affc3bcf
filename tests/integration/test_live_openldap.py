"""OpenLDAP-specific reading: truncated reads abort, client-side nesting is cycle-safe,
uniqueMember groups count, referrals and hidden bases are not read as "empty"."""
from __future__ import annotations

import signal

import pytest

from reconciler.directory.ldap.connect import connect
from reconciler.directory.ldap.source import LiveSource
from reconciler.errors import DirectoryError
from reconciler.model import normalise_dn
from tests.servers.population import PEOPLE, Group
from tests.servers.slapd import Slapd

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3


@pytest.fixture(autouse=True)
def _password(slapd_server, bind_password):
    bind_password(slapd_server)


@pytest.fixture
def own_slapd(tmp_path, test_tls, bind_password):
    """A slapd of this test's own, for tests that change the population or kill the server."""
    server = Slapd(tmp_path, test_tls, suffix="dc=own,dc=example")
    try:
        server.start()
        bind_password(server)
        yield server
    finally:
        server.stop()


def test_a_bind_account_over_its_size_limit_aborts_the_read(slapd_server):
    limited = slapd_server.directory(bind_user=slapd_server.connection.extra["limited_dn"])
    with pytest.raises(DirectoryError) as raised:
        LiveSource(limited).read()
    message = str(raised.value)
    assert message.startswith("directory corp: incomplete read of base 'ou=People,dc=example,dc=org'")
    assert "(objectClass=inetOrgPerson)" in message
    assert "sizeLimitExceeded" in message or "adminLimitExceeded" in message
    assert "nothing was planned or applied" in message


def test_ldap3s_own_paged_search_would_have_returned_a_short_read_quietly(slapd_server):
    """Why paged.py has its own loop: the same search through ldap3's generator raises nothing."""
    limited = slapd_server.directory(bind_user=slapd_server.connection.extra["limited_dn"])
    connection, _ = connect(limited)
    try:
        entries = list(connection.extend.standard.paged_search(
            slapd_server.connection.people_base, "(objectClass=inetOrgPerson)", attributes=["uid"], paged_size=3,
            generator=True))
    finally:
        connection.unbind()
    assert len(entries) < len(PEOPLE)


def test_a_server_killed_in_the_middle_of_a_paged_read_aborts_it(own_slapd):
    directory = own_slapd.directory(page_size=7)
    pages = []

    def connect_then_kill_after_first_page(d):
        connection, endpoint = connect(d)
        search = connection.search

        def search_and_kill(*args, **kwargs):
            if pages:  # the second page is asked of a server that is gone
                own_slapd.process.send_signal(signal.SIGKILL)
                own_slapd.process.wait(10)
            pages.append(kwargs.get("paged_cookie"))
            return search(*args, **kwargs)

        connection.search = search_and_kill
        return connection, endpoint

    with pytest.raises(DirectoryError, match="connection was lost after 1 page"):
        LiveSource(directory, connection_factory=connect_then_kill_after_first_page).read()
    assert len(pages) == 2 and pages[1]  # it died asking for page two, with the cookie of page one


def test_nested_groups_in_a_cycle_end_the_walk(own_slapd):
    # Cycle A contains Cycle B contains Cycle A; members on both sides must be found, and the walk must end.
    own_slapd.add_group(Group("Cycle A", members=("alice",)))
    own_slapd.add_group(Group("Cycle B", members=("bob",), groups=("Cycle A",)))
    own_slapd.add_to_group("group:Cycle B", "Cycle A")
    directory = own_slapd.directory(users={"member_of": (own_slapd.group_dn("Cycle A"),)})
    read = LiveSource(directory).read()
    assert {u.account_name for u in read.users} == {"alice", "bob"}
    assert len(read.out_of_scope) == len(PEOPLE) - 2
    assert all("Cycle A" in o.reason for o in read.out_of_scope)


def test_a_group_of_unique_names_counts_for_member_of(slapd_server):
    directory = slapd_server.directory(users={"member_of": (slapd_server.group_dn("Auditors"),)})
    assert {u.account_name for u in LiveSource(directory).read().users} == {"judy", "dave"}


def test_a_referral_in_the_tree_aborts_instead_of_skipping_that_part(slapd_server):
    directory = slapd_server.directory(users={"search_bases": (slapd_server.connection.extra["referral_base"],)})
    with pytest.raises(DirectoryError, match="referred part of the tree elsewhere .*partners.example.net"):
        LiveSource(directory).read()


def test_a_base_hidden_from_the_bind_account_aborts_instead_of_reading_empty(slapd_server):
    directory = slapd_server.directory(users={"search_bases": (slapd_server.connection.extra["restricted_base"],)})
    with pytest.raises(DirectoryError, match="ou=Restricted,dc=example,dc=org.*noSuchObject"):
        LiveSource(directory).read()


def test_a_directory_with_no_matching_users_reads_as_empty_for_the_plan_stage_to_judge(slapd_server):
    # Zero users is not an error here: whether it is alarming depends on what the store holds from this
    # directory (plan.make.guard_empty_reads), which this stage cannot know.
    directory = slapd_server.directory(users={"filter": "(uid=nobody-has-this-uid)"})
    read = LiveSource(directory).read()
    assert read.users == [] and read.entries_read == 0


def test_scenario_edits_are_seen_by_the_next_read(own_slapd):
    """The fixture's edit functions (used by end-to-end scenarios) change what a read returns."""
    from tests.servers.population import Person

    own_slapd.add_user(Person("newhire", "New", "Hire", ("Sales",)), groups=("Sales EMEA",))
    own_slapd.set_disabled("alice")
    own_slapd.move_user("bob", ("Engineering",))
    own_slapd.remove_from_group("frank", "Sales EMEA")
    own_slapd.delete_user("ivan")
    read = LiveSource(own_slapd.directory()).read()
    users = {u.account_name: u for u in read.users}
    assert "newhire" in users and "ivan" not in users
    assert users["alice"].disabled
    assert users["bob"].dn.startswith("uid=bob,ou=Engineering,")
    sales = read.groups[normalise_dn(own_slapd.group_dn("Sales EMEA"))]
    assert normalise_dn(users["newhire"].dn) in sales.members
    assert normalise_dn(users["frank"].dn) not in sales.members
    own_slapd.set_disabled("alice", False)
    assert not {u.account_name: u for u in LiveSource(own_slapd.directory()).read().users}["alice"].disabled


def test_a_second_directory_holds_the_same_people_by_email(samba_dc, slapd_emea, bind_password):
    """The fixture pair for merge-by-email scenarios: same emails, different anchors and DNs."""
    bind_password(samba_dc)
    bind_password(slapd_emea)
    ad = {u.first("mail"): u for u in LiveSource(samba_dc.directory("corp")).read().users if u.first("mail")}
    emea = {u.first("mail"): u for u in LiveSource(slapd_emea.directory("emea")).read().users if u.first("mail")}
    assert set(ad) == set(emea) and "alice@corp.example.com" in ad
    assert not {u.anchor for u in ad.values()} & {u.anchor for u in emea.values()}
