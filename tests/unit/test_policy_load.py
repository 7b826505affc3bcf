"""A valid policy loads into the typed values every later stage reads: defaults
filled in from the flavour and the schema, overrides applied, relative paths
made absolute, secrets kept as references."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reconciler.errors import Location, PolicyError, ReconcilerError
from reconciler.policy import load_policy, validate_policy
from reconciler.policy.model import DisabledRule, Limit, SecretRef, Template

POLICIES = Path(__file__).parent / "policies"
FULL = POLICIES / "full.yaml"


@pytest.fixture(scope="module")
def full():
    return load_policy(FULL)


def test_full_policy_has_no_problems():
    assert validate_policy(FULL) == []


def test_digest_is_sha256_of_the_file_bytes(full):
    assert full.digest == "sha256:" + hashlib.sha256(FULL.read_bytes()).hexdigest()
    assert full.path == str(FULL)


def test_directories_keep_policy_order_and_location(full):
    assert [d.name for d in full.directories] == ["corp", "emea"]
    assert full.directory("corp").location == Location(str(FULL), 5, 3)


def test_live_directory_values(full):
    corp = full.directory("corp")
    assert corp.kind == corp.flavour == "active-directory"
    assert corp.urls == ("ldaps://dc1.corp.example.com", "ldaps://dc2.corp.example.com")
    assert corp.bind.user == "CORP\\svc-sync"
    assert corp.bind.method == "simple"
    assert corp.bind.password == SecretRef("CORP_BIND_PASSWORD", "directories.corp.bind.password", Location(str(FULL), 8, 45))
    assert corp.tls.ca_file == str(POLICIES / "certs" / "ca.pem")
    assert (corp.tls.verify, corp.tls.start_tls) == (True, True)
    assert (corp.page_size, corp.connect_timeout, corp.operation_timeout) == (500, 5.0, 60.0)
    assert corp.path is None


def test_schema_overrides_merge_over_flavour_defaults(full):
    corp = full.directory("corp").schema
    assert (corp.anchor, corp.account_name, corp.member) == ("objectGUID", "userPrincipalName", ("member",))
    emea = full.directory("emea").schema
    assert (emea.anchor, emea.account_name, emea.member) == ("entryUUID", "uid", ("member", "uniqueMember"))
    assert emea.disabled == DisabledRule(attribute="nsAccountLock", equals="TRUE")


def test_scopes_use_given_filters_or_flavour_defaults(full):
    corp = full.directory("corp")
    assert corp.users.filter == "(&(objectClass=user)(mail=*))"
    assert corp.users.member_of == ("CN=Security Key Owners,OU=Groups,DC=corp,DC=example,DC=com",)
    assert corp.groups.filter == "(objectClass=group)"
    assert corp.groups.scope == "one"
    emea = full.directory("emea")
    assert emea.users.filter == "(objectClass=inetOrgPerson)"
    assert emea.groups.filter == "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    assert emea.groups.search_bases == ()


def test_ldif_directory_path_is_absolute_against_the_policy_folder(full):
    emea = full.directory("emea")
    assert (emea.kind, emea.flavour) == ("ldif", "openldap")
    assert emea.path == str(POLICIES / "corp.ldif")
    assert emea.urls == () and emea.bind is None


def test_directory_mapping_overrides_email_and_merges_attributes(full):
    corp = full.directory("corp").mapping
    assert corp.email == (
        Template("{mail}"),
        Template("{userPrincipalName}"),
        Template("{sAMAccountName}@corp.example.com"),
    )
    assert corp.display_name == Template("{givenName} {sn}")
    assert [name for name, _ in corp.attributes] == ["cost_center", "department"]
    emea = full.directory("emea").mapping
    assert emea.email == (Template("{mail}"),)
    assert dict(emea.attributes) == {
        "cost_center": Template("{extensionAttribute1}"),
        "department": Template("{department}"),
        "office": Template("{roomNumber}"),
    }
    assert [name for name, _ in emea.attributes] == sorted(dict(emea.attributes))


def test_top_level_sections(full):
    assert (full.placement.mode, full.placement.root, full.placement.target_group) == ("group-teams", "Company", None)
    assert (full.identity.merge_by_email, full.identity.adopt_unmanaged) == (True, False)
    assert full.precedence == ("emea", "corp")
    assert (full.lifecycle.when_out_of_scope, full.lifecycle.when_disabled) == ("delete", "keep")
    assert full.manual == ()


def test_safety_limits_in_all_three_spellings(full):
    assert full.safety.max_deactivations == Limit(percent=10.0)
    assert full.safety.max_deletions == Limit(count=20, percent=5.0)
    assert full.safety.max_updates == Limit(count=200)
    assert full.safety.max_creates == Limit()


def test_sqlite_store_path_is_absolute(full):
    assert full.store.kind == "sqlite"
    assert full.store.path == str(POLICIES / "state" / "store.db")


def test_minimal_policy_gets_every_default():
    policy = load_policy(POLICIES / "minimal.yaml")
    corp = policy.directory("corp")
    assert corp.flavour == "active-directory"
    assert corp.users.filter == "(&(objectClass=user)(!(objectClass=computer)))"
    assert corp.users.scope == "subtree" and corp.users.include_disabled is False
    assert corp.schema.disabled == DisabledRule(attribute="userAccountControl", flag=2)
    assert corp.mapping.email == (Template("{mail}"),)
    assert corp.mapping.display_name == Template("{displayName}")
    assert policy.placement.mode == "root" and policy.placement.root == "Organisation"
    assert policy.safety.max_deactivations == Limit(count=50, percent=10.0)
    assert policy.safety.max_deletions == Limit(count=50, percent=10.0)
    assert policy.safety.max_creates == Limit() and policy.safety.max_updates == Limit()
    assert policy.store.path == str(POLICIES / ".reconciler" / "store.db")
    assert policy.lifecycle.when_out_of_scope == "deactivate"


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    return path


LDIF_DIRECTORY = """\
version: 1
directories:
  corp:
    kind: ldif
    path: corp.ldif
    users: {search_bases: ['DC=corp,DC=example,DC=com']}
"""


@pytest.mark.parametrize(
    "store, expected",
    [
        ("{kind: sql, url: '${DATABASE_URL}'}", ("sql", "DATABASE_URL", None)),
        ("{kind: sql, url: 'postgresql://sync@db.internal/users'}", ("sql", "postgresql://sync@db.internal/users", None)),
        ("{kind: scim, url: 'https://scim.example.com/v2', token: '${SCIM_TOKEN}'}", ("scim", "https://scim.example.com/v2", "SCIM_TOKEN")),
        ("{kind: scim, url: 'http://127.0.0.1:8080/v2', token: '${SCIM_TOKEN}'}", ("scim", "http://127.0.0.1:8080/v2", "SCIM_TOKEN")),
    ],
)
def test_sql_and_scim_stores(tmp_path, store, expected):
    policy = load_policy(write(tmp_path, LDIF_DIRECTORY + f"store: {store}\n"))
    url = policy.store.url.variable if isinstance(policy.store.url, SecretRef) else policy.store.url
    token = policy.store.token.variable if policy.store.token else None
    assert (policy.store.kind, url, token) == expected
    # scim keeps its lock and history in a side file next to the policy (docs/store-scim.md); sql has no file
    side_file = str(tmp_path / ".reconciler" / "scim-state.db") if policy.store.kind == "scim" else None
    assert policy.store.path == side_file


def test_limit_as_plain_count_and_null(tmp_path):
    policy = load_policy(write(tmp_path, LDIF_DIRECTORY + "safety: {max_deletions: 0, max_deactivations: null}\n"))
    assert policy.safety.max_deletions == Limit(count=0)
    assert policy.safety.max_deactivations == Limit()


def test_manual_and_target_group_modes(tmp_path):
    manual = load_policy(write(tmp_path, LDIF_DIRECTORY + "placement: {mode: manual}\nmanual: [alice@corp.example.com, bob]\n"))
    assert manual.manual == ("alice@corp.example.com", "bob")
    target = load_policy(write(tmp_path, LDIF_DIRECTORY + "placement: {mode: target-group, target_group: Key owners}\n"))
    assert target.placement.target_group == "Key owners"


def test_load_raises_policy_error_with_every_problem(tmp_path):
    path = write(tmp_path, "version: 2\ndirectories: {}\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:1:10: version must be 1 (the only policy format so far) (version)",
        f"{path}:2:1: must not be empty (directories)",
    ]
    assert str(raised.value) == "\n".join(str(p) for p in raised.value.problems)


def test_missing_file_is_one_line_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ReconcilerError) as raised:
        load_policy(missing)
    assert not isinstance(raised.value, PolicyError)
    assert str(raised.value) == f"{missing}: policy file not found; check the path"
    with pytest.raises(ReconcilerError, match="is a folder"):
        validate_policy(tmp_path)


def test_empty_file(tmp_path):
    path = write(tmp_path, "# nothing yet\n")
    assert [str(p) for p in validate_policy(path)] == [f"{path}:1:1: the policy is empty; start from an example policy"]


def test_policy_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- corp\n- emea\n")
    assert [str(p) for p in validate_policy(path)] == [f"{path}:1:1: expected a mapping (key: value), got a list"]
