"""Secrets are read from the environment by reference and never printed, whatever fails."""
from __future__ import annotations

import socket

SECRET = "S3cr3t-Hunter2-do-not-print"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_policy(company, url: str) -> None:
    company.policy.write_text(f"""\
version: 1
directories:
  corp:
    kind: active-directory
    urls: ['{url}']
    bind: {{user: 'CORP\\svc-sync', password: '${{CORP_BIND_PASSWORD}}'}}
    timeouts: {{connect: 2, operation: 5}}
    users:
      search_bases: ['OU=People,DC=corp,DC=example,DC=com']
store: {{kind: sqlite}}
""")


def test_a_missing_variable_names_the_variable_and_the_key(company):
    live_policy(company, f"ldaps://127.0.0.1:{closed_port()}")
    result = company.run("plan", "policy.yaml")  # CORP_BIND_PASSWORD not in the environment
    assert result.code == 1
    assert "CORP_BIND_PASSWORD is not set" in result.err and "directories.corp.bind.password" in result.err
    assert "Traceback" not in result.err


def test_the_password_never_reaches_output_when_the_server_is_unreachable(company):
    live_policy(company, f"ldaps://127.0.0.1:{closed_port()}")
    for command in (["plan", "policy.yaml"], ["check", "policy.yaml"], ["apply", "policy.yaml", "--auto-approve"]):
        result = company.run(*command, env={"CORP_BIND_PASSWORD": SECRET})
        assert result.code == 1, (command, result.err)
        assert SECRET not in result.out + result.err
        assert "Traceback" not in result.err


def test_the_schema_command_prints_the_policy_schema(company):
    import json

    result = company.run("schema")
    assert result.code == 0 and json.loads(result.out)["title"]
