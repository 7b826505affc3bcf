"""kind entra-id in the policy: what loads, the defaults, and what validate refuses (one line each, at
FILE:LINE:COL), never echoing a secret."""
from __future__ import annotations

import textwrap

import pytest

from reconciler.errors import PolicyError
from reconciler.policy import load_policy, policy_schema, validate_policy
from reconciler.policy.model import FederatedToken, Graph, SecretRef

APP = "11111111-2222-3333-4444-555555555555"


def write(tmp_path, body: str, name: str = "policy.yaml") -> str:
    (tmp_path / "cert.pem").write_text("not read by validate")
    (tmp_path / "cloud.json").write_text('{"users": []}')
    path = tmp_path / name
    path.write_text("version: 1\n" + textwrap.dedent(body))
    return str(path)


LIVE = f"""\
directories:
  cloud:
    kind: entra-id
    tenant: contoso.onmicrosoft.com
    client_id: {APP}
    client_secret: '${{GRAPH_SECRET}}'
    users:
      member_of: [Security Key Owners]
"""


def problems(tmp_path, body: str) -> list[str]:
    return [str(p) for p in validate_policy(write(tmp_path, body))]


def test_a_live_directory_loads_with_the_global_cloud_and_secrets_as_references(tmp_path):
    directory = load_policy(write(tmp_path, LIVE)).directories[0]
    graph = directory.graph
    assert (directory.kind, directory.flavour, directory.schema.anchor) == ("entra-id", "entra-id", "id")
    assert (graph.tenant, graph.client_id) == ("contoso.onmicrosoft.com", APP)
    assert isinstance(graph.client_secret, SecretRef) and graph.client_secret.variable == "GRAPH_SECRET"
    assert (graph.login, graph.graph) == ("https://login.microsoftonline.com", "https://graph.microsoft.com")
    assert directory.users.filter == "userType eq 'Member'" and directory.users.member_of == ("Security Key Owners",)
    assert directory.users.search_bases == ("/users",) and directory.groups.search_bases == ()
    assert not graph.read_groups


@pytest.mark.parametrize("cloud, login, graph", [
    ("us-government", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
])
def test_the_cloud_chooses_the_endpoints(tmp_path, cloud, login, graph):
    directory = load_policy(write(tmp_path, LIVE + f"    cloud: {cloud}\n")).directories[0]
    assert (directory.graph.login, directory.graph.graph) == (login, graph)


def test_endpoints_override_the_cloud_and_tls_takes_a_ca_file(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    body = LIVE + "    endpoints: {login: 'https://127.0.0.1:8443/', graph: 'https://127.0.0.1:8443'}\n    tls: {ca_file: ca.pem}\n"
    directory = load_policy(write(tmp_path, body)).directories[0]
    assert (directory.graph.login, directory.graph.graph) == ("https://127.0.0.1:8443", "https://127.0.0.1:8443")
    assert directory.tls.ca_file == str(tmp_path / "ca.pem")


def test_certificate_and_federated_credentials_load(tmp_path):
    body = LIVE.replace("    client_secret: '${GRAPH_SECRET}'\n",
                        "    certificate: {path: cert.pem, password: '${CERT_PASSWORD}'}\n")
    graph = load_policy(write(tmp_path, body)).directories[0].graph
    assert graph.certificate.path == str(tmp_path / "cert.pem") and graph.certificate.password.variable == "CERT_PASSWORD"
    body = LIVE.replace("    client_secret: '${GRAPH_SECRET}'\n",
                        "    federated_token: {file: '${AZURE_FEDERATED_TOKEN_FILE}'}\n")
    federated = load_policy(write(tmp_path, body)).directories[0].graph.federated_token
    assert isinstance(federated.file, SecretRef) and federated.file.variable == "AZURE_FEDERATED_TOKEN_FILE"
    body = LIVE.replace("    client_secret: '${GRAPH_SECRET}'\n", "    federated_token: {github_actions: true}\n")
    assert load_policy(write(tmp_path, body)).directories[0].graph.federated_token == FederatedToken(github_actions=True)


def test_groups_given_are_read_for_group_teams(tmp_path):
    body = LIVE + "    groups: {filter: \"startswith(displayName, 'Team ')\"}\nplacement: {mode: group-teams}\n"
    directory = load_policy(write(tmp_path, body)).directories[0]
    assert directory.graph.read_groups and directory.groups.filter == "startswith(displayName, 'Team ')"
    body = LIVE + "    groups: {}\nplacement: {mode: group-teams}\n"
    assert load_policy(write(tmp_path, body)).directories[0].groups.filter == "securityEnabled eq true"


def test_the_schema_defaults_are_the_models():
    properties = policy_schema()["$defs"]["directory"]["properties"]
    assert properties["throttle_budget"]["default"] == Graph().throttle_budget
    assert properties["cloud"]["default"] == Graph().cloud
    assert properties["federated_token"]["properties"]["audience"]["default"] == FederatedToken().audience


def test_a_snapshot_needs_no_tenant(tmp_path):
    body = "directories:\n  cloud:\n    kind: entra-id\n    snapshot: cloud.json\n    users: {}\n"
    assert problems(tmp_path, body) == []
    assert load_policy(write(tmp_path, body)).directories[0].graph.snapshot == str(tmp_path / "cloud.json")


@pytest.mark.parametrize("edit, expected", [
    (("tenant: contoso.onmicrosoft.com", "tenant: common"),
     "5:13: 'common' names no tenant; an application reads one tenant"),
    (("tenant: contoso.onmicrosoft.com", "tenant: not a tenant"),
     "5:13: give the tenant ID (a GUID"),
    ((f"client_id: {APP}", "client_id: my-app"), "6:16: client_id is the application (client) ID"),
    (("    client_secret: '${GRAPH_SECRET}'\n", ""), "3:3: kind entra-id needs one credential"),
    (("    client_secret: '${GRAPH_SECRET}'\n", "    client_secret: '${GRAPH_SECRET}'\n    certificate: {path: cert.pem}\n"),
     "8:5: give one credential: client_secret is already given"),
    (("    client_secret: '${GRAPH_SECRET}'\n", "    federated_token: {}\n"), "7:5: federated_token needs file"),
    (("    client_secret: '${GRAPH_SECRET}'\n", "    federated_token: {file: token, github_actions: true}\n"),
     "7:5: give file or github_actions: true, not both"),
    (("    client_secret: '${GRAPH_SECRET}'\n", "    certificate: {path: missing.pem}\n"),
     "7:25: certificate 'missing.pem' does not exist"),
    (("    tenant: contoso.onmicrosoft.com\n", ""), "3:3: kind entra-id needs tenant"),
    (("      member_of:", "      filter: '(mail=*)'\n      member_of:"),
     "9:16: invalid OData filter: this is an LDAP filter"),
    (("      member_of:", "      filter: \"department eq 'Sales\"\n      member_of:"),
     "quote is never closed"),
    (("      member_of:", "      search_bases: ['DC=corp']\n      member_of:"),
     "9:7: search_bases is only for LDAP directories"),
    (("    users:", "    urls: [ldaps://dc1]\n    users:"), "8:5: urls is only for LDAP directories"),
    (("    users:", "    endpoints: {graph: 'http://graph.example.com'}\n    users:"),
     "8:24: http:// to graph.example.com would send tokens in clear"),
    (("    users:", "    snapshot: cloud.json\n    users:"), "is for reading a tenant; a directory with snapshot"),
])
def test_what_validate_refuses(tmp_path, edit, expected):
    found = problems(tmp_path, LIVE.replace(*edit))
    assert any(expected in p for p in found), found


def test_an_ldap_directory_takes_no_graph_keys(tmp_path):
    body = """\
    directories:
      corp:
        kind: ldif
        path: cloud.json
        tenant: contoso.onmicrosoft.com
        users: {}
    """
    found = problems(tmp_path, body)
    assert any("6:5: tenant is only for kind entra-id" in p for p in found), found
    assert any("missing required key 'search_bases'" in p for p in found), found


def test_templates_name_graph_properties_and_the_fix_is_named(tmp_path):
    body = LIVE + """\
mapping:
  email: ['{mail}', '{sAMAccountName}@corp.example.com']
  attributes: {title: '{title}', dept: '{department}', ext: '{extensionAttribute3}'}
"""
    found = problems(tmp_path, body)
    assert len(found) == 2, found
    assert "11:21: '{sAMAccountName}': directory cloud is kind entra-id, and Microsoft Graph's users have no property " \
           "'sAMAccountName'; Graph calls it onPremisesSamAccountName" in found[0]
    assert "12:23: '{title}'" in found[1] and "Graph calls it jobTitle" in found[1]
    # the directory's own templates replace the policy's, so the policy's may be LDAP's
    own = body.replace("    users:\n", "    mapping: {email: ['{mail}'], attributes: {title: '{jobTitle}'}}\n    users:\n")
    assert problems(tmp_path, own) == []


def test_ou_teams_cannot_place_entra_users(tmp_path):
    found = problems(tmp_path, LIVE + "placement: {mode: ou-teams}\n")
    assert any("mode ou-teams makes teams from the OU path of each DN, and cloud (kind entra-id) has no OUs" in p
               for p in found), found


def test_a_literal_secret_is_refused_without_being_echoed(tmp_path):
    body = LIVE.replace("'${GRAPH_SECRET}'", "'Xy7~super.secret-value'")
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path, body))
    assert "Xy7~super.secret-value" not in str(raised.value)
    assert "a secret must be a ${NAME} reference" in str(raised.value)
