"""Any policy built from the documented shapes validates and loads, and the
loaded values are the ones written (limits in all spellings, directory order,
templates): the schema and the semantic checks accept what the docs promise."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.policy import load_policy, validate_policy
from reconciler.policy.model import Limit

NAMES = st.sampled_from(["corp", "emea", "lab-1", "us_west"])
ATTRIBUTES = st.sampled_from(["mail", "userPrincipalName", "sAMAccountName", "uid", "givenName", "sn", "department"])
TEMPLATES = st.one_of(
    ATTRIBUTES.map(lambda a: "{%s}" % a),
    ATTRIBUTES.map(lambda a: "{%s}@corp.example.com" % a),
    st.tuples(ATTRIBUTES, ATTRIBUTES).map(lambda p: "{%s} {%s}" % p),
)
DNS = st.sampled_from(["DC=corp,DC=example,DC=com", "OU=People,DC=corp,DC=example,DC=com", "ou=people,dc=example,dc=org"])
FILTERS = st.sampled_from(
    ["(objectClass=user)", "(&(objectClass=user)(mail=*))", "(|(cn=a*)(cn=b*))", "(!(objectClass=computer))"]
)
LIMITS = st.one_of(
    st.none(),
    st.integers(0, 10_000),
    st.integers(0, 100).map(lambda n: f"{n}%"),
    st.fixed_dictionaries({"count": st.integers(0, 500)}, optional={"percent": st.integers(0, 100)}),
)


def expected_limit(value) -> Limit:
    if value is None:
        return Limit()
    if isinstance(value, int):
        return Limit(count=value)
    if isinstance(value, str):
        return Limit(percent=float(value[:-1]))
    return Limit(count=value["count"], percent=float(value["percent"]) if "percent" in value else None)


@st.composite
def directories(draw, name: str) -> dict:
    users = {"search_bases": draw(st.lists(DNS, min_size=1, max_size=2))}
    if draw(st.booleans()):
        users["filter"] = draw(FILTERS)
    directory: dict = {"kind": draw(st.sampled_from(["ldif", "active-directory", "openldap"]))}
    if directory["kind"] == "ldif":
        directory["path"] = "corp.ldif"
        directory["flavour"] = draw(st.sampled_from(["active-directory", "openldap"]))
    else:
        directory["urls"] = draw(st.lists(st.sampled_from(["ldaps://dc1.example.com", "ldap://127.0.0.1:3890"]), min_size=1, max_size=2))
        directory["bind"] = {"user": "CORP\\svc", "password": "${%s_PASSWORD}" % name.upper().replace("-", "_")}
    directory["users"] = users
    directory["groups"] = {"search_bases": draw(st.lists(DNS, max_size=1))}
    if draw(st.booleans()):
        directory["mapping"] = {"email": draw(st.lists(TEMPLATES, min_size=1, max_size=2))}
    return directory


@st.composite
def policies(draw) -> dict:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    policy: dict = {"version": 1, "directories": {name: draw(directories(name)) for name in names}}
    policy["mapping"] = {
        "email": draw(st.lists(TEMPLATES, min_size=1, max_size=3)),
        "display_name": draw(TEMPLATES),
        "attributes": draw(st.dictionaries(st.sampled_from(["department", "title", "office"]), TEMPLATES, max_size=2)),
    }
    mode = draw(st.sampled_from(["manual", "root", "ou-teams", "group-teams", "target-group"]))
    policy["placement"] = {"mode": mode}
    if mode == "manual":
        policy["manual"] = ["alice@corp.example.com"]
    if mode == "target-group":
        policy["placement"]["target_group"] = "Key owners"
    if mode == "group-teams":
        policy["directories"][names[0]]["groups"] = {"search_bases": ["OU=Groups,DC=corp,DC=example,DC=com"]}
    policy["identity"] = {"precedence": draw(st.permutations(names))}
    policy["lifecycle"] = {
        "when_out_of_scope": draw(st.sampled_from(["deactivate", "delete", "keep"])),
        "when_disabled": draw(st.sampled_from(["deactivate", "delete", "keep"])),
    }
    policy["safety"] = draw(
        st.dictionaries(st.sampled_from(["max_creates", "max_updates", "max_deactivations", "max_deletions"]), LIMITS)
    )
    return policy


@settings(max_examples=40, deadline=None)
@given(policies())
def test_generated_policies_validate_and_load_as_written(document):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        (Path(folder) / "corp.ldif").write_text("version: 1\n")
        text = io.StringIO()
        YAML(typ="rt").dump(document, text)  # keeps key order, unlike "safe"
        path.write_text(text.getvalue())
        assert validate_policy(path) == []
        policy = load_policy(path)
    assert [d.name for d in policy.directories] == list(document["directories"])
    assert policy.precedence == tuple(document["identity"]["precedence"])
    for key, value in document["safety"].items():
        assert getattr(policy.safety, key) == expected_limit(value)
    for directory in policy.directories:
        spelled = document["directories"][directory.name]
        email = spelled.get("mapping", {}).get("email", document["mapping"]["email"])
        assert [t.text for t in directory.mapping.email] == email
        if "filter" in spelled["users"]:
            assert directory.users.filter == spelled["users"]["filter"]


KEYS = st.sampled_from(
    ["version", "directories", "corp", "kind", "path", "urls", "bind", "password", "users", "search_bases", "filter",
     "member_of", "groups", "mapping", "email", "placement", "mode", "manual", "identity", "precedence", "safety",
     "max_deletions", "count", "percent", "store", "url", "token", "tls", "ca_file", "start_tls", "x"]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["ldif", "manual", "(a=b", "{mail}", "${X}", "ldap://h", "http://h", "a,,b", "10%", "", "}{"]),
)
ANYTHING = st.recursive(
    SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, ANYTHING, max_size=6))
def test_any_document_gets_problems_not_a_crash(document):
    """Semantic checks run even when the schema failed; on ill-typed input they
    must skip, not raise, and every problem must point into the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        text = io.StringIO()
        YAML(typ="rt").dump(document, text)
        path.write_text(text.getvalue())
        found = validate_policy(path)
    lines = text.getvalue().count("\n") or 1
    assert all(1 <= problem.location.line <= lines for problem in found)
    if document.get("version") != 1:
        assert found
