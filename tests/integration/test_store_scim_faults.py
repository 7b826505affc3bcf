"""The SCIM store when the network or the server misbehaves, and on servers that support less.

A fault-injecting proxy (tests/servers/fault_proxy.py) sits between the
installed `reconciler` command and a real scim2-server: 429 with Retry-After
and 500s are retried until they succeed; a connection that drops for good
mid-apply stops the apply with a report of what was and was not done, and the
next run converges without a duplicate user or group (counted on the server).
A server whose ServiceProviderConfig denies PATCH, filtering or Bulk is driven
with PUT, client-side lookups and one request per operation.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.servers.fault_proxy import FaultProxy
from tests.servers.scim import (
    ScimCompany,
    changes,
    service_provider_config,
    start_scim_server,
)

ONE_BY_ONE = service_provider_config(bulk={"supported": False, "maxOperations": 0, "maxPayloadSize": 0})
BARE = service_provider_config(  # no PATCH, no filter, no Bulk, and pages of at most 50
    patch={"supported": False},
    filter={"supported": False, "maxResults": 50},
    bulk={"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
)


@pytest.fixture
def setup(request, tmp_path):
    """(company, server, proxy): the company's store.url points at the proxy in front of the server."""
    config = getattr(request, "param", ONE_BY_ONE)
    server = start_scim_server(tmp_path / "scim2-server", config)
    proxy = FaultProxy(server.url)
    company = ScimCompany(tmp_path / "company", proxy.url, server.token)
    yield company, server, proxy
    proxy.stop()
    server.stop()


def assert_no_duplicates(server, users: int = 288, groups: int = 15) -> None:
    listed_users, listed_groups = server.users(), server.groups()
    duplicated = [k for k, n in Counter(u.get("externalId") for u in listed_users).items() if n > 1]
    assert not duplicated, f"users created twice: {duplicated}"
    assert len(listed_users) == users
    assert sorted(Counter(g["externalId"] for g in listed_groups).values()) == [1] * groups
    assert len({u["userName"].lower() for u in listed_users}) == users


def test_429_with_retry_after_is_retried_and_the_apply_succeeds(setup):
    company, server, proxy = setup
    proxy.inject("status", status=429, retry_after="1", method="POST", path_prefix="/Users", skip=5, times=2)
    company.apply()
    posts = [s.outcome for s in proxy.log if s.method == "POST" and s.path == "/Users"]
    assert posts[5:8] == ["429", "429", "201"] and posts.count("429") == 2
    assert_no_duplicates(server)
    assert company.plan_is_empty()


def test_500s_are_retried_on_reads_and_writes(setup):
    company, server, proxy = setup
    proxy.inject("status", status=503, method="GET", path_prefix="/Users", times=1)
    proxy.inject("status", status=500, method="PATCH", path_prefix="/Groups", skip=10, times=3)
    company.apply()
    outcomes = Counter((s.method, s.outcome) for s in proxy.log)
    assert outcomes[("PATCH", "500")] == 3 and outcomes[("GET", "503")] == 1
    assert_no_duplicates(server)
    assert company.plan_is_empty()


def test_a_lost_answer_to_a_create_does_not_duplicate_the_user(setup):
    """The server creates the user, the answer never arrives: the retry finds it by externalId."""
    company, server, proxy = setup
    proxy.inject("drop", method="POST", path_prefix="/Users", skip=20, times=1, after_forwarding=True)
    company.apply()
    log = proxy.log
    dropped = next(i for i, s in enumerate(log) if s.outcome == "dropped")
    assert log[dropped + 1].method == "GET" and "externalId" in log[dropped + 1].path  # looked up, not re-posted
    assert_no_duplicates(server)
    assert company.plan_is_empty()


def test_a_connection_dropped_mid_apply_stops_with_a_report_and_the_next_run_converges(setup):
    company, server, proxy = setup
    # from the 120th request on the server still acts, but no answer comes back: the network is gone
    proxy.inject("drop", skip=120, times=None, after_forwarding=True)
    failed = company.run("apply", "policy.yaml", "--auto-approve")
    assert failed.code == 1, failed.out + failed.err
    [message] = failed.err.strip().splitlines()
    assert "apply stopped at change" in message and "were applied" in message and "were not" in message
    assert "broke" in message and "plan again and apply to finish" in message
    assert "Traceback" not in failed.err and server.token not in failed.err
    history = json.loads(company.run("history", "policy.yaml", "--format", "json").out)
    assert history[0]["outcome"].startswith("failed: apply stopped at change")
    done_before = len(server.users())
    assert 0 < done_before < 288

    proxy.heal()
    rest = company.plan_json()
    assert rest["summary"].get("user.create", 0) <= 288 - done_before + 1  # what is there is not planned again
    company.apply()
    assert_no_duplicates(server)
    assert company.plan_is_empty()


@pytest.mark.parametrize("setup", [service_provider_config()], indirect=True)
def test_a_bulk_request_whose_answer_is_lost_stops_and_the_next_run_converges(setup):
    company, server, proxy = setup
    proxy.inject("drop", method="POST", path_prefix="/Bulk", times=None, after_forwarding=True)
    failed = company.run("apply", "policy.yaml", "--auto-approve")
    assert failed.code == 1
    assert "POST /Bulk" in failed.err and "Traceback" not in failed.err
    # the answer was lost, not the work: nobody can say what was applied, and the message does not pretend
    assert "0 change(s) were applied, 107 may or may not have been (the request was sent and no answer says " \
        "what the server did), 196 were not" in failed.err  # the first Bulk request held changes 1 to 107
    assert "a re-run converges" in failed.err
    assert len(server.users()) > 0  # the server did the work; only the answer was lost
    proxy.heal()
    company.apply()
    assert_no_duplicates(server)
    assert company.plan_is_empty()
    assert [s.method for s in proxy.log].count("POST") <= 3  # Bulk: a handful of requests, not 600


@pytest.mark.parametrize("setup", [BARE], indirect=True)
def test_a_server_without_patch_filter_or_bulk_is_driven_with_put_and_pages(setup):
    company, server, proxy = setup
    proxy.inject("drop", method="POST", path_prefix="/Users", skip=30, times=1, after_forwarding=True)
    company.apply()
    log = proxy.log
    methods = Counter(s.method for s in log)
    assert methods["PATCH"] == 0 and methods["PUT"] >= 288  # group memberships by PUT of the group
    assert not any("filter=" in s.path for s in log)  # the lost create was found by listing
    assert_no_duplicates(server)
    assert company.plan_is_empty()
    user_pages = [s.path for s in proxy.log[len(log):] if s.method == "GET" and s.path.startswith("/Users?")]
    assert [p.split("startIndex=")[1].split("&")[0] for p in user_pages] == ["1", "51", "101", "151", "201", "251"]

    # an edit and a leaver on this server too
    margaret = server.user("margaret.chen@corp.example.com")
    server.http.put(f"Users/{margaret['id']}", json={**{k: v for k, v in margaret.items() if k != "meta"},
                                                     "displayName": "Edited"}).raise_for_status()
    [update] = changes(company.plan_json(), "update")
    assert update["after"] == {"display_name": "Margaret Chen"}
    company.apply()
    assert server.user("margaret.chen@corp.example.com")["displayName"] == "Margaret Chen"


def test_the_standard_proxy_variables_are_honoured(tmp_path):
    """store.url names the server itself; HTTP_PROXY sends the requests through the proxy anyway."""
    server = start_scim_server(tmp_path / "scim2-server", ONE_BY_ONE)
    proxy = FaultProxy(server.url)
    try:
        company = ScimCompany(tmp_path / "company", server.url, server.token)
        company.apply(env={"HTTP_PROXY": proxy.address, "NO_PROXY": ""})
        assert proxy.log and all(s.forward_proxy for s in proxy.log)
        assert len(server.users()) == 288
        seen = len(proxy.log)
        assert company.run("plan", "policy.yaml", env={"HTTP_PROXY": proxy.address, "NO_PROXY": "127.0.0.1"}).code == 0
        assert len(proxy.log) == seen  # NO_PROXY bypasses it
    finally:
        proxy.stop()
        server.stop()


def test_tls_is_verified_and_a_private_ca_is_trusted_through_ssl_cert_file(tmp_path):
    from tests.servers.tls import make_tls

    tls = make_tls(tmp_path / "tls")
    server = start_scim_server(tmp_path / "scim2-server", ONE_BY_ONE)
    proxy = FaultProxy(server.url, tls=(tls.cert_file, tls.key_file))
    try:
        company = ScimCompany(tmp_path / "company", proxy.url, server.token)
        assert proxy.url.startswith("https://")
        untrusted = company.run("plan", "policy.yaml", env={"SSL_CERT_FILE": tls.other_ca_file})
        assert untrusted.code == 1 and "is not trusted" in untrusted.err and "SSL_CERT_FILE" in untrusted.err
        assert proxy.log == []  # nothing was sent over the unverified connection
        company.apply(env={"SSL_CERT_FILE": tls.ca_file})
        assert len(server.users()) == 288
    finally:
        proxy.stop()
        server.stop()
