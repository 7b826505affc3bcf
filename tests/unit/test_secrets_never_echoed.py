"""Secrets in the store's URL and token are never echoed: not a password with an unencoded `@` or `/`
that libpq would read as part of the host, not a SCIM token no Authorization header can carry, not a
literal `password=` keyword in the policy. Each case is checked where it is decided (unit) and through
the installed console script for every command that opens the store (plan, apply, check, history,
explain), asserting that the secret's characters appear nowhere in stdout or stderr."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from reconciler.errors import StoreError
from reconciler.policy import validate_policy
from reconciler.policy.model import SecretRef, StoreConfig
from reconciler.store.scim.client import ScimClient, ScimTokenError, check_token
from reconciler.store.scim.store import ScimStore
from reconciler.store.sql.postgres import PostgresStore, describe, parse_conninfo
from tests.e2e.conftest import reconciler_executable

MARKER = "Zq9SECRETmarker"
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
SQLITE_STORE = "store:\n  kind: sqlite\n  path: .reconciler/store.db\n"
COMMANDS = [
    ("plan", "policy.yaml"),
    ("apply", "policy.yaml", "--auto-approve"),
    ("check", "policy.yaml"),
    ("history", "policy.yaml"),
    ("explain", "policy.yaml", "dana.whitfield@example.com"),
]


# ───────────────────────────── PostgreSQL: the URL's description ─────────────────────────────

AMBIGUOUS_URLS = [
    pytest.param(f"postgresql://reconciler:{MARKER}@x@127.0.0.1:5432/app", id="at-in-password"),
    pytest.param(f"postgresql://reconciler:{MARKER}/x@127.0.0.1:5432/app", id="slash-in-password"),
    pytest.param(f"postgresql://reconciler:{MARKER}/x@127.0.0.1/app", id="slash-in-password-no-port"),
    pytest.param(f"postgresql://reconciler:a@{MARKER}@127.0.0.1/app", id="at-then-secret"),
    pytest.param(f"postgresql://reconciler:a@b:{MARKER}@127.0.0.1/app", id="at-colon-in-password"),
    pytest.param(f"postgresql://reconciler:a@b,{MARKER}@127.0.0.1/app", id="at-comma-in-password"),
    pytest.param(f"postgresql://reconciler:{MARKER}@x@h1:5432,h2:5433/app", id="at-in-password-multi-host"),
]


@pytest.mark.parametrize("url", AMBIGUOUS_URLS)
def test_a_url_with_unencoded_password_characters_is_refused_naming_only_the_variable(url):
    with pytest.raises(StoreError) as raised:
        parse_conninfo(url, "${DATABASE_URL}")
    message = str(raised.value)
    assert MARKER not in message and "@127" not in message and "\n" not in message
    assert message.startswith("${DATABASE_URL} does not parse unambiguously as a PostgreSQL URL")
    assert "must percent-encode special characters in the password" in message


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u@h1:5432,h2:5433/db", "postgresql://u@h1:5432, h2:5433/db"),
    ("postgresql://u@h1,h2/db", "postgresql://u@h1:5432, h2:5432/db"),
    ("postgresql://u@h1,h2:6000/db", "postgresql://u@h1:5432, h2:6000/db"),
    ("postgresql://u@h1:5432/db", "postgresql://u@h1:5432/db"),
    (f"postgresql://u:{MARKER}%40x%2Fy@db.internal:6432/app", "postgresql://u@db.internal:6432/app"),
    (f"postgresql://u:{MARKER}?x@db.internal/app", "postgresql://u@db.internal:5432/app"),
    ("postgresql://u@[::1]:5432/db", "postgresql://u@[::1]:5432/db"),
    (f"postgresql://u@db.internal/app?password={MARKER}", "postgresql://u@db.internal:5432/app"),
])
def test_the_store_is_described_by_user_hosts_ports_and_database_only(url, expected):
    assert describe(parse_conninfo(url, "${DATABASE_URL}")) == expected


def test_an_encoded_at_in_the_user_name_is_not_ambiguous():
    assert describe(parse_conninfo("postgresql://alice%40corp:pw@db.internal/app", "x")) == (
        "postgresql://alice@corp@db.internal:5432/app"
    )


def test_opening_the_store_with_an_ambiguous_url_names_the_variable_and_connects_nowhere(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://reconciler:{MARKER}@x@127.0.0.1:1/app")
    store = PostgresStore(StoreConfig(kind="sql", url=SecretRef("DATABASE_URL", "store.url")))
    with pytest.raises(StoreError) as raised:
        store.read()
    assert MARKER not in str(raised.value) and str(raised.value).startswith("${DATABASE_URL} does not parse")
    assert store._connection is None


# ───────────────────────────── SCIM: the bearer token ─────────────────────────────

SOURCE = "store.token: the environment variable SCIM_TOKEN"
BAD_TOKENS = [
    pytest.param("", "holds an empty token", id="empty"),
    pytest.param("  \n", "holds an empty token", id="only-whitespace"),
    pytest.param(f"{MARKER}\nInjected: header", "whitespace (a line break or space) inside", id="newline"),
    pytest.param(f"{MARKER} x", "whitespace (a line break or space) inside", id="space"),
    pytest.param(f"{MARKER}\r\nX: y", "whitespace (a line break or space) inside", id="crlf"),
    pytest.param(f"{MARKER}é", "non-ASCII characters", id="non-ascii"),
    pytest.param(f"{MARKER}\x00", "control characters", id="nul"),
    pytest.param(f"{MARKER},x", "characters a bearer token cannot have", id="comma"),
    pytest.param(f"{MARKER}=x", "characters a bearer token cannot have", id="equals-inside"),
]


@pytest.mark.parametrize("token, problem", BAD_TOKENS)
def test_a_token_no_bearer_header_can_carry_is_named_by_its_variable_not_its_value(token, problem):
    with pytest.raises(ScimTokenError) as raised:
        check_token(token, SOURCE)
    message = str(raised.value)
    assert message.startswith(f"{SOURCE} ") and problem in message
    assert MARKER not in message and "\n" not in message and "Injected" not in message


@pytest.mark.parametrize("token", ["abc", "a-b.c_d~e+f/g", "YWJj==", "eyJhbGciOi.eyJzdWIi.sig-_"])
def test_a_b64token_passes(token):
    assert check_token(token, SOURCE) == token


def test_a_trailing_newline_from_a_file_is_dropped():
    assert check_token("abc123\n", SOURCE) == "abc123"


def test_a_bad_token_is_refused_before_any_request_and_without_retries(tmp_path, monkeypatch):
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    with pytest.raises(ScimTokenError):
        ScimClient("https://scim.example.com/v2", f"{MARKER}\nInjected: header",
                   transport=httpx.MockTransport(handler), sleep=lambda _: pytest.fail("retried"))
    assert requests == []

    monkeypatch.setenv("SCIM_TOKEN", f"{MARKER}\nInjected: header")
    store = ScimStore(StoreConfig(kind="scim", url="https://scim.example.com/v2",
                                  token=SecretRef("SCIM_TOKEN", "store.token"),
                                  path=str(tmp_path / "scim-state.db")))
    with pytest.raises(StoreError) as raised:
        store.read()
    message = str(raised.value)
    assert message.startswith(f"{SOURCE} holds a token with whitespace") and MARKER not in message
    assert store._client is None


# ───────────────────────────── validate: a literal password= keyword ─────────────────────────────

HEAD = "version: 1\ndirectories:\n  corp:\n    kind: ldif\n    path: corp.ldif\n" \
       "    users: {search_bases: ['DC=corp,DC=example,DC=com']}\n"
LITERAL = ("store url holds a password; put the whole URL in an environment variable and write "
           "'${DATABASE_URL}' (any ${NAME}) here (store.url)")


@pytest.mark.parametrize("url", [
    f"postgresql://u@h/db?password={MARKER}",
    f"postgresql://u@h/db?sslmode=require&password={MARKER}",
    f"postgresql://u@h/db?PASSWORD={MARKER}",
    f"host=h dbname=db password={MARKER}",
    f"password={MARKER} host=h",
    f"host=h password = {MARKER}",
    f"postgresql://u:{MARKER}@h/db",
])
def test_a_literal_password_keyword_is_rejected_like_user_colon_password(tmp_path, url):
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(HEAD + f"store: {{kind: sql, url: '{url}'}}\n")
    found = [str(problem) for problem in validate_policy(policy)]
    assert len(found) == 1 and found[0].endswith(LITERAL), found
    assert MARKER not in found[0]


@pytest.mark.parametrize("url", [
    "postgresql://u@h/db?sslmode=require",
    "postgresql://u@h/db?passfile=/etc/pgpass",
    "host=h dbname=db passfile=/etc/pgpass",
    "${DATABASE_URL}",
])
def test_no_password_keyword_passes(tmp_path, url):
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(HEAD + f"store: {{kind: sql, url: '{url}'}}\n")
    assert [str(problem) for problem in validate_policy(policy)] == []


# ───────────────────────────── through the console script ─────────────────────────────


def quickstart(folder: Path, store: str) -> Path:
    shutil.copytree(QUICKSTART, folder, ignore=shutil.ignore_patterns(".reconciler", "*.py", "__pycache__"))
    policy = folder / "policy.yaml"
    text = policy.read_text()
    assert SQLITE_STORE in text
    policy.write_text(text.replace(SQLITE_STORE, store))
    return folder


def run(folder: Path, args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PG"))}
    environment.update(env)
    return subprocess.run([reconciler_executable(), *args], cwd=folder, capture_output=True, text=True,
                          env=environment, timeout=120)


def assert_nothing_leaked(done: subprocess.CompletedProcess, *secrets: str) -> str:
    output = done.stdout + done.stderr
    for secret in secrets:
        assert secret not in output, output
    assert "Traceback" not in output, output
    return output


@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("url", AMBIGUOUS_URLS[:2])
def test_commands_never_print_a_password_libpq_would_misread(tmp_path, args, url):
    folder = quickstart(tmp_path / "company", "store: {kind: sql, url: '${DATABASE_URL}'}\n")
    done = run(folder, args, {"DATABASE_URL": url})
    output = assert_nothing_leaked(done, MARKER, "@x@", "x@127")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() + done.stdout.splitlines() if "DATABASE_URL" in line]
    assert len(lines) == 1, output
    assert "must percent-encode special characters in the password" in lines[0]


@pytest.fixture
def idle_port():
    """A loopback port that listens but is never accepted from: any connection attempt shows as pending."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield listener
    listener.close()


def no_connection_attempted(listener: socket.socket) -> bool:
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


@pytest.mark.parametrize("args", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("token, problem", [
    pytest.param(f"{MARKER}\nInjected: header", "whitespace (a line break or space) inside", id="newline"),
    pytest.param("", "holds an empty token", id="empty"),
    pytest.param(f"{MARKER}ünï", "non-ASCII characters", id="non-ascii"),
])
def test_commands_never_print_a_bad_scim_token_nor_send_it(tmp_path, idle_port, args, token, problem):
    port = idle_port.getsockname()[1]
    folder = quickstart(tmp_path / "company", f"store: {{kind: scim, url: 'http://127.0.0.1:{port}/scim/v2', "
                                               "token: '${SCIM_TOKEN}', state_dir: .reconciler}\n")
    done = run(folder, args, {"SCIM_TOKEN": token})
    output = assert_nothing_leaked(done, MARKER, "Injected", "Illegal header")
    assert no_connection_attempted(idle_port), output
    if args[0] == "history":  # reads the side file only: the token is not needed, so not looked at
        assert done.returncode == 0, output
        return
    assert done.returncode != 0, output
    lines = [line for line in output.splitlines() if "SCIM_TOKEN" in line]
    assert len(lines) == 1, output
    assert f"store.token: the environment variable SCIM_TOKEN {problem}" in lines[0] or problem in lines[0]
    assert "attempts" not in output  # not retried
