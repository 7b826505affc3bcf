"""Session-wide real directory servers: a Samba AD DC and an OpenLDAP slapd.

Each is started once per test session, seeded with `tests.servers.population`,
and stopped by its own pid at the end. The start time is printed in the
terminal summary. Tests that change entries must undo their change (or use
names no other test reads): the servers are shared.
"""
from __future__ import annotations


import pytest

from tests.servers.samba import SambaDC
from tests.servers.slapd import Slapd
from tests.servers.tls import make_tls

_started: dict[str, tuple[float, dict[str, float]]] = {}


@pytest.fixture(scope="session")
def test_tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


def _start(server, name: str):
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    _started[name] = (server.started_in, server.timings)
    return server


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory, test_tls):
    server = SambaDC(tmp_path_factory.mktemp("samba"), test_tls)
    yield _start(server, "Samba AD DC")
    server.stop()


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory, test_tls):
    server = Slapd(tmp_path_factory.mktemp("slapd"), test_tls)
    yield _start(server, "slapd")
    server.stop()


@pytest.fixture(scope="session")
def slapd_emea(tmp_path_factory, test_tls):
    """A second OpenLDAP directory whose people have the same emails as the Samba DC's
    (alice@corp.example.com, ...): two directories that merge by email."""
    server = Slapd(tmp_path_factory.mktemp("slapd-emea"), test_tls, suffix="dc=emea,dc=example",
                   mail_domain="corp.example.com")
    yield _start(server, "slapd (emea)")
    server.stop()


@pytest.fixture(params=["samba", "slapd"])
def live_server(request):
    """Each test using it runs against both servers."""
    return request.getfixturevalue("samba_dc" if request.param == "samba" else "slapd_server")


@pytest.fixture
def bind_password(monkeypatch):
    """Sets the bind password variable the policies reference; yields a function for other servers' envs."""
    def set_for(server):
        for key, value in server.bind_env().items():
            monkeypatch.setenv(key, value)
    return set_for


def pytest_terminal_summary(terminalreporter):
    for name, (seconds, phases) in _started.items():
        detail = ", ".join(f"{phase} {value:.1f}s" for phase, value in phases.items())
        terminalreporter.write_line(f"{name} started and seeded in {seconds:.1f}s" + (f" ({detail})" if detail else ""))


class _PostgresStartTime:
    """Prints the PostgreSQL server's start time in pytest's summary, next to the directory servers'."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"PostgreSQL initdb + start in {self.seconds:.1f}s")


@pytest.fixture(scope="session")
def postgres(request):
    """One PostgreSQL server for the session (tests/servers/postgres.py), shared by every test module
    that needs it: here, not in a test module, so importing it cannot start a second one."""
    from tests.servers.postgres import PostgresServer

    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    request.config.pluginmanager.register(_PostgresStartTime(server.started_in), "postgres-start-time")
    yield server
    server.stop()
