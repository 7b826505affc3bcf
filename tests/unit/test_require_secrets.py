"""Every secret a run needs is checked before the first directory is read: a missing Graph credential is
named up front, not after an AD directory has been read (or half a tenant)."""
from __future__ import annotations

import pytest

from reconciler.errors import ReconcilerError
from reconciler.pipeline import require_secrets
from reconciler.policy import load_policy

POLICY = """\
version: 1
directories:
  corp:
    kind: ldif
    path: corp.ldif
    users: {search_bases: ['OU=People,DC=corp,DC=example,DC=com']}
  cloud:
    kind: entra-id
    tenant: contoso.onmicrosoft.com
    client_id: 11111111-2222-3333-4444-555555555555
    CREDENTIAL
    users: {}
store: {kind: sqlite, path: s.db}
"""


@pytest.mark.parametrize("credential, variable", [
    ("client_secret: '${GRAPH_SECRET_T1}'", "GRAPH_SECRET_T1"),
    ("certificate: {path: app.pem, password: '${GRAPH_CERT_T2}'}", "GRAPH_CERT_T2"),
])
def test_a_missing_graph_secret_is_named_before_anything_is_read(tmp_path, monkeypatch, credential, variable):
    monkeypatch.delenv(variable, raising=False)
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    (tmp_path / "app.pem").write_text("not read before the secret is there\n")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("CREDENTIAL", credential))
    policy = load_policy(str(path))
    with pytest.raises(ReconcilerError, match=f"environment variable {variable} is not set"):
        require_secrets(policy)
    monkeypatch.setenv(variable, "s3cret")
    require_secrets(policy)  # set: nothing more to say


def test_a_snapshot_needs_no_credential(tmp_path):
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    (tmp_path / "cloud.json").write_text("{}")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("tenant: contoso.onmicrosoft.com\n    client_id: 11111111-2222-3333-4444-555555555555\n"
                                   "    CREDENTIAL\n", "snapshot: cloud.json\n"))
    require_secrets(load_policy(str(path)))
