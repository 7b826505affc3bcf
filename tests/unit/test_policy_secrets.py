"""Secrets live in environment variables, never in the policy: the policy holds
`${NAME}`, the loader keeps a reference, and the value is read only when a stage
needs it. The value never reaches a message, repr or the Policy object."""
from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import Location, SecretError
from reconciler.policy import load_policy

POLICY = """\
version: 1
directories:
  corp:
    kind: active-directory
    urls: [ldaps://dc1.corp.example.com]
    bind: {user: 'CORP\\svc-sync', password: '${CORP_BIND_PASSWORD}'}
    users: {search_bases: ['DC=corp,DC=example,DC=com']}
store: {kind: scim, url: 'https://scim.example.com/v2', token: "${SCIM_TOKEN}"}
"""


@pytest.fixture()
def policy(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(path), path


def test_references_resolve_from_the_environment(policy, monkeypatch):
    loaded, _ = policy
    monkeypatch.setenv("CORP_BIND_PASSWORD", "s3cret-bind")
    monkeypatch.setenv("SCIM_TOKEN", "s3cret-token")
    assert loaded.directory("corp").bind.password.resolve() == "s3cret-bind"
    assert loaded.store.token.resolve() == "s3cret-token"
    # resolving stores nothing: the values appear nowhere in the policy's repr
    assert "s3cret" not in repr(loaded)


def test_loading_does_not_need_the_variables(policy, monkeypatch):
    loaded, path = policy
    password = loaded.directory("corp").bind.password
    assert (password.variable, password.path, password.location) == (
        "CORP_BIND_PASSWORD",
        "directories.corp.bind.password",
        Location(str(path), 6, 45),
    )
    assert (loaded.store.token.variable, loaded.store.token.location) == ("SCIM_TOKEN", Location(str(path), 8, 64))


def test_unset_variable_names_the_variable_the_key_and_the_place(policy, monkeypatch):
    loaded, path = policy
    monkeypatch.delenv("CORP_BIND_PASSWORD", raising=False)
    with pytest.raises(SecretError) as raised:
        loaded.directory("corp").bind.password.resolve()
    assert str(raised.value) == (
        f"{path}:6:45: environment variable CORP_BIND_PASSWORD is not set; directories.corp.bind.password needs it "
        "(export CORP_BIND_PASSWORD=... or set it as a CI secret)"
    )
