"""Secrets never echoed, against real servers: a PostgreSQL role whose password has `@` and `/` in it (written
unencoded: refused naming only ${DATABASE_URL}; percent-encoded: works, and a wrong one fails without
echoing it), a multi-host URL described as `h1:port, h2:port`, and a SCIM token no header can carry,
refused before anything reaches the scim2-server. Every command runs as the installed console script."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.conftest import reconciler_executable
from tests.servers.postgres import DATABASE
from tests.servers.scim import ScimCompany, scim_server  # noqa: F401  (a fixture)
from tests.unit.test_secrets_never_echoed import COMMANDS, MARKER, assert_nothing_leaked, quickstart

pytestmark = pytest.mark.integration
PASSWORD = f"{MARKER}@a/b"


@pytest.fixture
def secret_role(postgres):  # noqa: F811
    """A role of its own whose password holds `@` and `/`, owning a fresh schema."""
    role = "leak_" + uuid.uuid4().hex[:8]
    postgres.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'",
                 # the server is shared: another module's test may have revoked PUBLIC's CONNECT
                 f"GRANT CONNECT ON DATABASE {DATABASE} TO {role}")
    schema = postgres.new_schema(owner=role)
    yield role, schema
    postgres.sql(f"DROP SCHEMA {schema} CASCADE", database=DATABASE)
    postgres.sql(f"DROP OWNED BY {role}", f"DROP ROLE {role}", database=DATABASE)


def run(folder: Path, args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PG"))}
    environment.update(env)
    return subprocess.run([reconciler_executable(), *args], cwd=folder, capture_output=True, text=True,
                          env=environment, timeout=300)


def company(tmp_path: Path) -> Path:
    return quickstart(tmp_path / "company", "store: {kind: sql, url: '${DATABASE_URL}'}\n")


def url(postgres, role: str, schema: str, password: str, hosts: str | None = None) -> str:  # noqa: F811
    where = hosts or f"127.0.0.1:{postgres.port}"
    return f"postgresql://{role}:{password}@{where}/{DATABASE}?options={quote(f'-csearch_path={schema}')}"


@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_an_unencoded_password_is_refused_by_every_command_naming_the_variable(postgres, secret_role, tmp_path,
                                                                             args):  # noqa: F811
    role, schema = secret_role
    folder = company(tmp_path)
    done = run(folder, args, {"DATABASE_URL": url(postgres, role, schema, PASSWORD)})
    output = assert_nothing_leaked(done, MARKER, "a/b", "b@127")
    assert done.returncode != 0, output
    lines = [line for line in output.splitlines() if "DATABASE_URL" in line]
    assert len(lines) == 1 and "must percent-encode special characters in the password" in lines[0], output


def test_the_same_password_percent_encoded_works_and_is_never_printed(postgres, secret_role, tmp_path):  # noqa: F811
    role, schema = secret_role
    folder = company(tmp_path)
    env = {"DATABASE_URL": url(postgres, role, schema, quote(PASSWORD, safe=""))}
    for args in COMMANDS:
        done = run(folder, args, env)
        output = assert_nothing_leaked(done, MARKER, quote(PASSWORD, safe=""))
        if args[0] in ("apply", "check", "history"):
            assert done.returncode == 0, output


def test_a_wrong_password_fails_naming_the_server_not_the_password(postgres, secret_role, tmp_path):  # noqa: F811
    role, schema = secret_role
    folder = company(tmp_path)
    wrong = quote(f"{MARKER}@wrong/", safe="")
    done = run(folder, ("plan", "policy.yaml"), {"DATABASE_URL": url(postgres, role, schema, wrong)})
    output = assert_nothing_leaked(done, MARKER, wrong)
    assert done.returncode != 0
    assert (f"postgresql://{role}@127.0.0.1:{postgres.port}/{DATABASE}: cannot connect: authentication failed "
            f"for user {role}: wrong password; fix it in the URL in ${{DATABASE_URL}}") in output, output


def test_a_multi_host_url_is_described_host_by_host(postgres, secret_role, tmp_path):  # noqa: F811
    role, schema = secret_role
    folder = company(tmp_path)
    hosts = f"127.0.0.1:{postgres.port},localhost:{postgres.port}"
    wrong = quote(f"{MARKER}-wrong", safe="")
    done = run(folder, ("plan", "policy.yaml"), {"DATABASE_URL": url(postgres, role, schema, wrong, hosts)})
    output = assert_nothing_leaked(done, MARKER)
    assert f"postgresql://{role}@127.0.0.1:{postgres.port}, localhost:{postgres.port}/{DATABASE}: cannot connect" \
        in output, output
    good = run(folder, ("apply", "policy.yaml", "--auto-approve"),
               {"DATABASE_URL": url(postgres, role, schema, quote(PASSWORD, safe=""), hosts)})
    assert_nothing_leaked(good, MARKER)
    assert good.returncode == 0, good.stdout + good.stderr


@pytest.mark.parametrize("token", [f"{MARKER}\nInjected: header", "", f"{MARKER}ünï"],
                         ids=["newline", "empty", "non-ascii"])
def test_a_bad_scim_token_reaches_no_server_and_is_never_printed(tmp_path, scim_server, token):  # noqa: F811
    scim = ScimCompany(tmp_path / "company", scim_server.url, scim_server.token)
    for args in COMMANDS:
        done = scim.run(*args, env={"SCIM_TOKEN": token})
        output = assert_nothing_leaked(subprocess.CompletedProcess(args, done.code, done.out, done.err),
                                       MARKER, "Injected", "Illegal header")
        if args[0] == "history":
            continue  # the side file only; no token needed
        assert done.code != 0, output
        lines = [line for line in output.splitlines() if "SCIM_TOKEN" in line]
        assert len(lines) == 1 and lines[0].count("store.token: the environment variable SCIM_TOKEN") == 1, output
        assert "attempts" not in output
