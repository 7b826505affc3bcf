"""The integration suite's server helpers: a missing server binary skips the
test on a laptop but fails it in CI, where RECONCILER_REQUIRE_SERVERS=1."""
from __future__ import annotations

import pytest

import tests.servers as servers


def test_a_missing_binary_skips_locally(monkeypatch):
    monkeypatch.setattr(servers, "REQUIRE_SERVERS", False)
    with pytest.raises(pytest.skip.Exception, match="no-such-server-binary is not installed"):
        servers.require_binary("no-such-server-binary")


def test_a_missing_binary_fails_where_servers_are_required(monkeypatch):
    monkeypatch.setattr(servers, "REQUIRE_SERVERS", True)
    with pytest.raises(pytest.fail.Exception, match="no-such-server-binary is not installed .*RECONCILER_REQUIRE_SERVERS=1"):
        servers.require_binary("no-such-server-binary")


def test_an_installed_binary_is_found_by_path():
    assert servers.require_binary("sh").endswith("/sh")


def test_free_port_is_not_listening():
    assert not servers.port_in_use(servers.free_port())
