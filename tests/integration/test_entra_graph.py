"""kind entra-id against a loopback fake of the Microsoft identity platform and Microsoft Graph (tests/servers/
fake_graph.py), over HTTPS verified with the test CA. No Entra ID tenant can run here: this is the only server the
tests fake, and each case names the documented behaviour it follows.

- paging: https://learn.microsoft.com/en-us/graph/paging (@odata.nextLink, used as is; no nextLink: the last page)
- users: https://learn.microsoft.com/en-us/graph/api/user-list ($select, $filter, $top up to 999)
- transitive members: https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers (OData cast to users)
- members: https://learn.microsoft.com/en-us/graph/api/group-list-members
- throttling: https://learn.microsoft.com/en-us/graph/throttling (429 and 503 with Retry-After in seconds)
- errors: https://learn.microsoft.com/en-us/graph/errors ({"error": {"code", "message", "innerError"}}; 401, 403)
- advanced queries: https://learn.microsoft.com/en-us/graph/aad-advanced-queries (ConsistencyLevel: eventual, $count)
- tokens: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow (secret,
  certificate assertion, errors as AADSTS codes), .../certificate-credentials, .../workload-identity-federation
"""
from __future__ import annotations

import datetime
import textwrap

import pytest

from reconciler.desired import build_desired_state
from reconciler.directory import check_directory
from reconciler.directory.entra.graph import GraphClient
from reconciler.directory.entra.readers import LiveGraph
from reconciler.directory.entra.source import GraphSource
from reconciler.errors import DirectoryError
from reconciler.policy import load_policy
from tests.servers.fake_graph import App, FakeEntra, Fault, make_tenant
from tests.servers.tls import make_tls

# started by a fixture like the real servers of this folder, though a fake: fast, and needs nothing installed
pytestmark = pytest.mark.integration

APP = "11111111-2222-3333-4444-555555555555"
SECRET = "Qx8~not-a-real-secret.value-123"
PEOPLE = 1200


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("entra-tls"))


@pytest.fixture
def fake(tls):
    server = FakeEntra(tls, make_tenant(PEOPLE)).start()
    server.register(App(APP, secret=SECRET))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("GRAPH_SECRET", SECRET)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)


def directory(tmp_path, fake: FakeEntra, tls, credential: str = "client_secret: '${GRAPH_SECRET}'", users: str = "{}",
              extra: str = "", tail: str = ""):
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          cloud:
            kind: entra-id
            tenant: {fake.tenant}
            client_id: {APP}
            {credential}
            endpoints: {{login: '{fake.url}', graph: '{fake.url}'}}
            tls: {{ca_file: {tls.ca_file}}}
            users: {users}
        """) + extra + tail)
    return load_policy(tmp_path / "policy.yaml").directories[0]


def read(d, sleeps: list | None = None):
    sleeps = [] if sleeps is None else sleeps
    source = GraphSource(d, reader_factory=lambda x: LiveGraph(x, GraphClient(x, sleep=sleeps.append)))
    return source.read()


def failure(d, sleeps: list | None = None) -> str:
    with pytest.raises(DirectoryError) as raised:
        read(d, sleeps)
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ── reads ──────────────────────────────────────────────────────────────────────────


def test_every_page_is_read_following_next_links_with_only_the_properties_used(tmp_path, fake, tls):
    fake.page_size = 100  # Graph may return fewer than $top asks: the client follows nextLink, never counts
    d = directory(tmp_path, fake, tls, extra="mapping: {attributes: {dept: '{department}'}}\n")
    result = read(d)
    assert len(result.users) == PEOPLE and result.entries_read == PEOPLE  # the 3 guests: left out by the filter
    pages = [r for r in fake.graph_requests("/v1.0/users")]
    assert len(pages) == PEOPLE // 100
    first = pages[0].query
    assert first["$top"] == "999" and first["$filter"] == "userType eq 'Member'"
    assert first["$select"].split(",") == ["accountEnabled", "department", "displayName", "id", "mail",
                                           "onPremisesImmutableId", "userPrincipalName"]
    assert all("$skiptoken" in r.query and r.query["$select"] == first["$select"] for r in pages[1:])
    assert sum(e.disabled for e in result.users) == PEOPLE // 50
    assert result.users[0].attributes["department"] == ("Engineering",)


def test_member_of_by_name_reads_transitive_members_and_says_why_the_rest_are_out(tmp_path, fake, tls):
    result = read(directory(tmp_path, fake, tls, users="{member_of: [Key Owners]}"))
    assert len(result.users) == len(range(0, PEOPLE, 7))  # the nested Key Owners - Field included
    assert len(result.out_of_scope) == PEOPLE - len(result.users)
    assert result.out_of_scope[0].reason == "not a member of Key Owners (directly or through nested groups)"
    paths = [r.path for r in fake.graph_requests("/v1.0/groups")]
    assert any(p.endswith("/transitiveMembers/microsoft.graph.user") for p in paths)


def test_a_group_named_twice_or_not_at_all_refuses_the_read(tmp_path, fake, tls):
    assert "no group has this display name" in failure(directory(tmp_path, fake, tls, users="{member_of: [Key Ownerz]}"))
    missing = "{member_of: ['aaaaaaaa-0000-0000-0000-000000000000']}"
    assert "no group has the object ID" in failure(directory(tmp_path, fake, tls, users=missing))


def test_groups_for_group_teams_come_with_their_direct_members(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, tail="    groups: {filter: \"startswith(displayName, 'Team ')\"}\n"
                                            "placement: {mode: group-teams}\n")
    result = read(d)
    assert sorted(g.name for g in result.groups.values()) == [f"Team {x}" for x in
                                                              sorted(["Engineering", "Sales", "Finance", "Operations", "Support"])]
    policy = load_policy(tmp_path / "policy.yaml")
    state = build_desired_state(policy, [result])
    assert sorted(t.name for t in state.teams.values()) == ["Organisation", *sorted(g.name for g in result.groups.values())]


def test_an_advanced_filter_is_sent_as_an_advanced_query(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, users="{filter: \"userType eq 'Member' and department ne 'Sales'\"}")
    result = read(d)
    assert len(result.users) == PEOPLE - PEOPLE // 5
    first = fake.graph_requests("/v1.0/users")[0]
    assert first.headers["consistencylevel"] == "eventual" and first.query["$count"] == "true"


def test_a_filter_graph_refuses_is_named(tmp_path, fake, tls):
    # validate lets through what only Graph can judge; the fake refuses a $count segment as a filter it cannot run
    message = failure(directory(tmp_path, fake, tls, users="{filter: 'memberOf/$count eq 0'}"))
    assert "reading /users" in message and "400 BadRequest" in message and "check users.filter" in message


# ── throttling and failures ─────────────────────────────────────────────────────────


def test_429_waits_as_retry_after_says_and_the_read_completes(tmp_path, fake, tls):
    fake.page_size = 300
    fake.faults.append(Fault("/v1.0/users", status=429, retry_after="3", times=2, skip=1))
    sleeps: list[float] = []
    result = read(directory(tmp_path, fake, tls), sleeps)
    assert sleeps == [3.0, 3.0] and len(result.users) == PEOPLE
    assert [r.status for r in fake.graph_requests("/v1.0/users")][:4] == [200, 429, 429, 200]


def test_503_without_retry_after_backs_off(tmp_path, fake, tls):
    fake.faults.append(Fault("/v1.0/users", status=503, times=3))
    sleeps: list[float] = []
    assert len(read(directory(tmp_path, fake, tls), sleeps).users) == PEOPLE
    assert sleeps == [1.0, 2.0, 4.0]


def test_a_wait_beyond_the_budget_aborts_at_once(tmp_path, fake, tls):
    fake.faults.append(Fault("/v1.0/users", status=429, retry_after="10", times=None))
    sleeps: list[float] = []
    message = failure(directory(tmp_path, fake, tls, extra="    throttle_budget: 25\n"), sleeps)
    assert sleeps == [10.0, 10.0]  # the third wait would pass 25 s
    assert "429 TooManyRequests: Graph asks to wait 10 s, and 5 s are left of directories.cloud.throttle_budget (25 s" \
           in message and "nothing was planned" in message


def test_a_page_that_keeps_failing_mid_chain_aborts_naming_the_page(tmp_path, fake, tls):
    fake.page_size = 400
    fake.faults.append(Fault("/v1.0/users", status=500, times=None, when=lambda r: "$skiptoken" in r.query))
    message = failure(directory(tmp_path, fake, tls), [])
    assert "reading /users with $filter userType eq 'Member', page 2: 500 InternalServerError" in message
    assert "still after 12 attempts; nothing was planned" in message


def test_a_connection_dropped_mid_chain_is_retried(tmp_path, fake, tls):
    fake.page_size = 400
    fake.faults.append(Fault("/v1.0/users", drop=True, times=1, when=lambda r: "$skiptoken" in r.query))
    sleeps: list[float] = []
    assert len(read(directory(tmp_path, fake, tls), sleeps).users) == PEOPLE and sleeps == [1.0]


@pytest.mark.parametrize("mode, words", [
    ("other-host", "@odata.nextLink points to https://localhost:"),
    ("garbage", "@odata.nextLink is not a URL"),
    ("loop", "@odata.nextLink repeats an earlier page's"),
    ("missing-value", "the page has no value list"),
])
def test_a_broken_chain_of_pages_refuses_the_read(tmp_path, fake, tls, mode, words):
    fake.page_size = 300
    fake.next_link = mode
    message = failure(directory(tmp_path, fake, tls))
    assert words in message and "incomplete" in message


def test_a_token_that_expires_mid_read_is_renewed_and_the_read_goes_on(tmp_path, fake, tls):
    fake.page_size = 300
    expired = []

    def expire_once(request) -> bool:  # not a fault: expires every token when the second page is asked for
        if "$skiptoken" in request.query and not expired:
            expired.append(True)
            fake.expire_tokens()
        return False

    fake.faults.append(Fault("/v1.0/users", when=expire_once))
    result = read(directory(tmp_path, fake, tls))
    assert len(result.users) == PEOPLE and fake.tokens_issued == 2
    statuses = [r.status for r in fake.graph_requests("/v1.0/users")]
    assert statuses[:3] == [200, 401, 200]


# ── permissions and sign-in ─────────────────────────────────────────────────────────


def test_403_names_the_missing_application_permission_and_admin_consent(tmp_path, fake, tls):
    fake.apps[APP].roles = ["GroupMember.Read.All"]
    message = failure(directory(tmp_path, fake, tls))
    assert "403 Authorization_RequestDenied: Insufficient privileges to complete the operation" in message
    assert "the app needs the application permission User.Read.All (Microsoft Graph → Application permissions, " \
           "not Delegated) with admin consent; the token carries GroupMember.Read.All" in message
    fake.apps[APP].roles = ["User.Read.All"]
    message = failure(directory(tmp_path, fake, tls, users="{member_of: [Key Owners]}"))
    assert "needs the application permission GroupMember.Read.All" in message


@pytest.mark.parametrize("change, words", [
    (lambda f: setattr(f.apps[APP], "secret", "another"), "AADSTS7000215: the client secret is not valid for this app"),
    (lambda f: f.apps.pop(APP), f"AADSTS700016: the tenant has no application with client_id {APP}"),
    (lambda f: setattr(f, "tenant", "fabrikam.onmicrosoft.com"), "AADSTS90002: tenant contoso.onmicrosoft.com does not exist"),
])
def test_a_refused_sign_in_is_one_line_with_the_fix_and_no_secret(tmp_path, fake, tls, change, words):
    d = directory(tmp_path, fake, tls)
    change(fake)
    message = failure(d)
    assert words in message and SECRET not in message
    assert message.startswith(f"directory cloud: signing in to tenant contoso.onmicrosoft.com as app {APP}")


def test_a_ca_that_did_not_issue_the_certificate_is_named(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls)
    (tmp_path / "policy.yaml").write_text((tmp_path / "policy.yaml").read_text().replace(tls.ca_file, tls.other_ca_file))
    d = load_policy(tmp_path / "policy.yaml").directories[0]
    message = failure(d)
    assert f"the TLS certificate of {fake.url} is not trusted; is tls.ca_file ({tls.other_ca_file})" in message


def _certificate(tmp_path, password: bytes | None):
    """A self-signed certificate and key as an app registration's certificate credential: PEM and PKCS#12."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconciler sync")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption) \
        + cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "sync.pem").write_bytes(pem)
    (tmp_path / "sync.pfx").write_bytes(pkcs12.serialize_key_and_certificates(b"sync", key, cert, None, encryption))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("file", ["sync.pem", "sync.pfx"])
def test_a_certificate_signs_the_assertion_the_token_service_verifies(tmp_path, fake, tls, monkeypatch, file):
    fake.apps[APP].certificate_pem = _certificate(tmp_path, b"cert-pass-Zz9")
    monkeypatch.setenv("CERT_PASSWORD", "cert-pass-Zz9")
    d = directory(tmp_path, fake, tls, credential=f"certificate: {{path: {file}, password: '${{CERT_PASSWORD}}'}}")
    assert len(read(d).users) == PEOPLE
    token_request = next(r for r in fake.log if r.method == "POST")
    assert token_request.form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in token_request.form


def test_a_certificate_not_uploaded_to_the_app_or_a_wrong_password_is_named(tmp_path, fake, tls, monkeypatch):
    (tmp_path / "other").mkdir()
    fake.apps[APP].certificate_pem = _certificate(tmp_path / "other", None)  # the app has another certificate
    _certificate(tmp_path, b"right")
    monkeypatch.setenv("CERT_PASSWORD", "right")
    d = directory(tmp_path, fake, tls, credential="certificate: {path: sync.pem, password: '${CERT_PASSWORD}'}")
    assert "AADSTS700027: the certificate's signature was not accepted" in failure(d)
    monkeypatch.setenv("CERT_PASSWORD", "wrong-password-Yy1")
    message = failure(d)
    assert "certificate" in message and "the password does not open it" in message and "wrong-password-Yy1" not in message


def test_a_federated_token_file_needs_no_secret(tmp_path, fake, tls, monkeypatch):
    fake.apps[APP] = App(APP, federated=("https://oidc.prod-aks.azure.com/tenant/", "system:serviceaccount:sync:reconciler"))
    token = tmp_path / "azure-identity-token"
    token.write_text(fake.federated_token(*fake.apps[APP].federated))
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token))
    d = directory(tmp_path, fake, tls, credential="federated_token: {file: '${AZURE_FEDERATED_TOKEN_FILE}'}")
    assert len(read(d).users) == PEOPLE
    token.write_text(fake.federated_token(*fake.apps[APP].federated, lifetime=-60))
    assert "AADSTS700024: the federated token has expired" in failure(d)
    token.write_text(fake.federated_token("https://oidc.prod-aks.azure.com/tenant/", "system:serviceaccount:other:x"))
    assert "AADSTS70021: no federated credential of the app matches the token" in failure(d)


def test_github_actions_oidc_token_signs_in_without_a_secret(tmp_path, fake, tls, monkeypatch):
    subject = "repo:example/policies:ref:refs/heads/main"
    fake.apps[APP] = App(APP, federated=("https://token.actions.githubusercontent.com", subject))
    url, bearer = fake.github_oidc(subject)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", bearer)
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)  # GitHub's token service is trusted through the system CAs
    d = directory(tmp_path, fake, tls, credential="federated_token: {github_actions: true}")
    assert len(read(d).users) == PEOPLE
    asked = next(r for r in fake.log if r.path == "/_github/token")
    assert asked.query["audience"] == "api://AzureADTokenExchange" and asked.query["api-version"] == "2.0"
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL")
    assert "ACTIONS_ID_TOKEN_REQUEST_URL is not set" in failure(d)


# ── check ───────────────────────────────────────────────────────────────────────────


def test_check_walks_endpoints_token_permissions_and_reads(tmp_path, fake, tls):
    d = directory(tmp_path, fake, tls, users="{member_of: [Key Owners]}", tail="    groups: {}\n")
    steps = check_directory(d)
    names = [s.name.split(" https://")[0] for s in steps]
    assert names == ["dns login", "tcp login", "tls login", "dns graph", "tcp graph", "tls graph", "token",
                     "permission User.Read.All", "permission GroupMember.Read.All", "read users",
                     "read member_of Key Owners", "read groups"], steps
    assert all(s.ok for s in steps), steps
    assert steps[6].detail == f"signed in to tenant contoso.onmicrosoft.com as app {APP} (${{GRAPH_SECRET}})"


def test_check_names_a_missing_permission_before_any_read(tmp_path, fake, tls):
    fake.apps[APP].roles = ["User.Read.All"]
    steps = check_directory(directory(tmp_path, fake, tls, users="{member_of: [Key Owners]}"))
    failed = [s for s in steps if not s.ok]
    assert [s.name for s in failed] == ["permission GroupMember.Read.All"]
    assert "add the application permission GroupMember.Read.All" in failed[0].detail
    assert "grant admin consent; the token carries User.Read.All" in failed[0].detail
    assert steps[-1].name == "permission GroupMember.Read.All"  # no read is tried without it


def test_check_reports_a_refused_token_and_stops(tmp_path, fake, tls):
    fake.apps[APP].secret = "rotated"
    steps = check_directory(directory(tmp_path, fake, tls))
    assert steps[-1].name == "token" and not steps[-1].ok and "AADSTS7000215" in steps[-1].detail
    assert all(SECRET not in s.detail for s in steps)
