"""kind entra-id through the `reconciler` console script, against the loopback fake of the token endpoint and
Microsoft Graph (tests/servers/fake_graph.py: the only server the tests fake; it answers in the documented shapes,
https://learn.microsoft.com/en-us/graph/api/user-list and .../paging, .../errors, .../throttling). plan, apply,
check, preview and explain work as for LDAP; errors are one line; no secret or token is ever printed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import QUICKSTART, reconciler_executable
from tests.servers.fake_graph import App, FakeEntra, Fault, make_tenant
from tests.servers.tls import make_tls

APP = "11111111-2222-3333-4444-555555555555"
SECRET = "Zq3~cli-secret.value-never-shown"
PEOPLE = 300


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("entra-cli-tls"))


@pytest.fixture
def fake(tls):
    server = FakeEntra(tls, make_tenant(PEOPLE)).start()
    server.register(App(APP, secret=SECRET))
    yield server
    server.stop()


@pytest.fixture
def folder(tmp_path, fake, tls) -> Path:
    shutil.copy(QUICKSTART / "corp.ldif", tmp_path / "corp.ldif")
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          cloud:
            kind: entra-id
            tenant: {fake.tenant}
            client_id: {APP}
            client_secret: '${{GRAPH_SECRET}}'
            endpoints: {{login: '{fake.url}', graph: '{fake.url}'}}
            tls: {{ca_file: {tls.ca_file}}}
            users: {{member_of: [Key Owners]}}
        mapping: {{email: ['{{mail}}', '{{userPrincipalName}}'], attributes: {{department: '{{department}}'}}}}
        placement: {{mode: root, root: Key Owners}}
        safety: {{max_deactivations: 50%}}
        """))
    return tmp_path


def run(folder: Path, *args: str, secret: str = SECRET, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("GITHUB_") and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
    environment.update({"GRAPH_SECRET": secret, **(env or {})})
    return subprocess.run([reconciler_executable(), *args], cwd=folder, capture_output=True, text=True, env=environment,
                          timeout=120)


def shows_no_secret(done: subprocess.CompletedProcess, fake: FakeEntra, *secrets: str) -> None:
    printed = done.stdout + done.stderr
    for value in (SECRET, *secrets, *fake.tokens):
        assert value not in printed
    assert "Traceback" not in printed


def test_plan_apply_and_the_next_plan_is_empty(folder, fake):
    planned = run(folder, "plan", "policy.yaml", "--format", "json", "--detailed-exitcode")
    assert planned.returncode == 2, planned.stderr
    plan = json.loads(planned.stdout)
    created = [c for c in plan["changes"] if c["kind"] == "user" and c["action"] == "create"]
    owners = len(range(0, PEOPLE, 7))
    assert len(created) == owners - sum(1 for n in range(0, PEOPLE, 7) if n % 50 == 49)
    assert plan["directories"]["cloud"]["read"] == PEOPLE
    assert created[0]["key"].startswith("cloud:") and created[0]["subject"].endswith("@contoso.com")
    shows_no_secret(planned, fake)
    assert run(folder, "apply", "policy.yaml", "--auto-approve").returncode == 0
    again = run(folder, "plan", "policy.yaml", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    # a leaver: removed from the group in the tenant, deactivated on the next plan
    first = fake.members[next(g["id"] for g in fake.groups if g["displayName"] == "Key Owners").lower()].pop(0)
    fake.load({"users": fake.users, "groups": [{**g, "members": fake.members[g["id"].lower()]} for g in fake.groups]})
    leaver = run(folder, "plan", "policy.yaml", "--format", "json")
    changes = json.loads(leaver.stdout)["changes"]
    assert [c["action"] for c in changes] == ["deactivate"] and changes[0]["key"] == f"cloud:{first['id']}"


def test_check_prints_each_step(folder, fake):
    done = run(folder, "check", "policy.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("OK   cloud: token: signed in to tenant contoso.onmicrosoft.com") for line in lines)
    assert any(line.startswith("OK   cloud: permission User.Read.All: granted") for line in lines)
    assert any(line.startswith("OK   cloud: read member_of Key Owners: the group Key Owners") for line in lines)
    shows_no_secret(done, fake)


def test_preview_names_cloud_users_by_their_user_principal_name(folder, fake):
    done = run(folder, "preview", "policy.yaml", "--limit", "3")
    assert done.returncode == 0, done.stderr
    assert f"cloud: {PEOPLE} entries read" in done.stdout and "@contoso.com" in done.stdout


def test_explain_finds_people_in_graph_and_says_what_is_ldap_specific(folder, fake):
    done = run(folder, "explain", "policy.yaml", "person.000007@contoso.com")
    assert done.returncode == 0, done.stderr
    assert "cloud p000007@contoso.com  (found by mail in https://127.0.0.1:" in done.stdout
    assert "the clause-by-clause evaluation explain gives LDAP filters is LDAP-specific" in done.stdout
    assert "✓ member_of: member of Key Owners through nested groups: Key Owners - Field → Key Owners" in done.stdout
    assert "imported: in scope of cloud" in done.stdout
    guest = run(folder, "explain", "policy.yaml", "guest0@partner.example", "--format", "json")
    facts = json.loads(guest.stdout)["entries"][0]
    assert facts["verdict"] == "out of scope" and facts["checks"]["filter"]["ok"] is False
    assert facts["reason"] == "not read by the plan: the filter userType eq 'Member'; not a member of Key Owners"
    nobody = run(folder, "explain", "policy.yaml", "nobody@contoso.com")
    assert nobody.returncode == 1 and nobody.stderr.count("\n") == 1 and "not found" in nobody.stderr


@pytest.mark.parametrize("command", [("plan", "policy.yaml"), ("preview", "policy.yaml"),
                                     ("explain", "policy.yaml", "person.000007@contoso.com")])
def test_a_wrong_secret_is_one_line_that_never_shows_it(folder, fake, command):
    wrong = "Wr0ng~secret.value-not-to-print"
    done = run(folder, *command, secret=wrong)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "AADSTS7000215: the client secret is not valid for this app" in done.stderr and "${GRAPH_SECRET}" in done.stderr
    shows_no_secret(done, fake, wrong)


def test_check_with_a_wrong_secret_fails_the_token_step_without_showing_it(folder, fake):
    wrong = "An0ther~wrong.secret-value"
    done = run(folder, "check", "policy.yaml", secret=wrong)
    assert done.returncode == 1
    assert any(line.startswith("FAIL cloud: token:") and "AADSTS7000215" in line for line in done.stdout.splitlines())
    shows_no_secret(done, fake, wrong)


def test_a_missing_secret_variable_is_named(folder, fake):
    environment = {k: v for k, v in os.environ.items() if k != "GRAPH_SECRET"}
    done = subprocess.run([reconciler_executable(), "plan", "policy.yaml"], cwd=folder, capture_output=True, text=True,
                          env=environment, timeout=60)
    assert done.returncode == 1 and "environment variable GRAPH_SECRET is not set" in done.stderr


def test_throttling_past_the_budget_aborts_the_plan_in_one_line(folder, fake):
    text = (folder / "policy.yaml").read_text().replace("    users:", "    throttle_budget: 1\n    users:")
    (folder / "policy.yaml").write_text(text)
    fake.faults.append(Fault("/v1.0/users", status=429, retry_after="30", times=None))
    done = run(folder, "plan", "policy.yaml")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0
    assert "Graph asks to wait 30 s, and 1 s are left of directories.cloud.throttle_budget" in done.stderr
    shows_no_secret(done, fake)


def test_a_certificate_password_is_never_printed(folder, fake, tls, tmp_path):
    from tests.integration.test_entra_graph import _certificate

    fake.apps[APP].certificate_pem = _certificate(folder, b"right-Pass-1")
    text = (folder / "policy.yaml").read_text().replace(
        "client_secret: '${GRAPH_SECRET}'", "certificate: {path: sync.pfx, password: '${CERT_PASSWORD}'}")
    (folder / "policy.yaml").write_text(text)
    good = run(folder, "plan", "policy.yaml", env={"CERT_PASSWORD": "right-Pass-1"})
    assert good.returncode == 0, good.stderr
    shows_no_secret(good, fake, "right-Pass-1")
    bad = run(folder, "plan", "policy.yaml", env={"CERT_PASSWORD": "wrong-Pass-2"})
    assert bad.returncode == 1 and "the password does not open it" in bad.stderr
    shows_no_secret(bad, fake, "wrong-Pass-2", "right-Pass-1")
