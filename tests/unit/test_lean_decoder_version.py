"""The lean decoder overrides ldap3's private response handling, so it runs only on the ldap3
releases it is tested with; on any other, connecting fails with one line naming both."""
from __future__ import annotations

import tomllib
from pathlib import Path

import ldap3
import pytest

from reconciler.directory.ldap.connect import connect
from reconciler.directory.ldap.lean_decoder import TESTED_LDAP3, LeanSyncStrategy, install, require_tested_ldap3
from reconciler.errors import DirectoryError
from tests.factories import directory as make_directory

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_ldap3_is_a_tested_release():
    assert ldap3.__version__ in TESTED_LDAP3
    require_tested_ldap3()  # does not raise


def test_pyproject_pins_ldap3_to_the_tested_release():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in dependencies if d.startswith("ldap3")] == [f"ldap3=={v}" for v in TESTED_LDAP3]


def test_another_release_is_refused_before_the_strategy_is_swapped(monkeypatch):
    monkeypatch.setattr(ldap3, "__version__", "2.10.0")
    connection = ldap3.Connection(ldap3.Server("127.0.0.1", port=1, get_info=ldap3.NONE))
    with pytest.raises(DirectoryError) as raised:
        install(connection)
    assert type(connection.strategy) is not LeanSyncStrategy
    message = str(raised.value)
    assert "ldap3 2.10.0 is installed" in message and "tested with ldap3 2.9.1" in message
    assert "pip install 'ldap3==2.9.1'" in message and "\n" not in message


def test_connecting_with_another_release_fails_with_that_message_before_any_network(monkeypatch):
    monkeypatch.setattr(ldap3, "__version__", "3.0.0")
    directory = make_directory(kind="openldap", urls=("ldap://127.0.0.1:1",))  # nothing listens: never reached
    with pytest.raises(DirectoryError, match=r"^ldap3 3\.0\.0 is installed, but the live directory reader is tested"):
        connect(directory)
