"""Every mistake in a policy is reported, all at once, as one line
`FILE:LINE:COL: message (dotted.path)` that says what is wrong and how to fix it.
The fixtures in policies/bad/ each hold one kind of mistake (several.yaml many)."""
from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import PolicyError
from reconciler.policy import load_policy, validate_policy

BAD = Path(__file__).parent / "policies" / "bad"

CASES = {
    "unknown_key": [
        "6:5: missing required key 'search_bases' (directories.corp.users.search_bases)",
        "7:7: unknown key 'serch_bases'; did you mean 'search_bases'? (directories.corp.users.serch_bases)",
    ],
    "duplicate_key": [
        "7:5: duplicate key 'kind' (first given on line 4); keep one (directories.corp.kind)",
    ],
    "bad_yaml": [
        "7:1: invalid YAML: expected ',' or '}', but got '<scalar>' "
        "(while parsing a flow mapping at line 6, column 12); a '{' is probably not closed",
    ],
    "wrong_type": [
        "6:16: expected a whole number, got a string (directories.corp.page_size)",
    ],
    "bad_enum": [
        "4:11: 'ldap' is not allowed; did you mean 'openldap'? must be one of active-directory, openldap, 389ds, freeipa, ldif, entra-id "
        "(directories.corp.kind)",
    ],
    "missing_required": [
        "3:3: missing required key 'path': a kind ldif directory needs path, the snapshot file (directories.corp.path)",
    ],
    "literal_password": [
        "6:45: a secret must be a ${NAME} reference, not a literal: put the value in an environment variable "
        "(or CI secret) and write '${NAME}' here (directories.corp.bind.password)",
    ],
    "bad_filter": [
        # column 36 is the '(' of '(mail)' inside the quoted filter
        "8:36: invalid LDAP filter: '(mail)' has no comparison; write (attribute=value) (character 21) "
        "(directories.corp.users.filter)",
        "10:15: invalid LDAP filter: '(' is never closed (character 1) (directories.corp.groups.filter)",
    ],
    "bad_dn": [
        "7:22: invalid DN 'OU=People,,DC=corp,DC=example,DC=com': special character , must be escaped; "
        "write it like OU=People,DC=corp,DC=example,DC=com (directories.corp.users.search_bases[0])",
        "9:11: invalid DN 'Security Key Owners': attribute type not present; "
        "write it like OU=People,DC=corp,DC=example,DC=com (directories.corp.users.member_of[0])",
    ],
    "manual_without_entries": [
        "8:9: mode manual imports only the people listed in manual:, and none are listed; "
        "add manual: [alice@corp.example.com] or choose another mode (placement.mode)",
    ],
    "undefined_precedence": [
        "8:22: no directory is named 'crop'; did you mean 'corp'? (identity.precedence[1])",
    ],
    "template_without_attribute": [
        "8:21: template 'admin@corp.example.com' uses no attribute, so every user would get the same value; "
        "name one in braces, like '{mail}' (mapping.email[1])",
        "9:17: unbalanced braces in template '{givenName} {sn': '{' at character 13 is never closed "
        "(mapping.display_name)",
        "10:28: template '{}' has an empty '{}'; name an attribute in it, like '{mail}' (mapping.attributes.department)",
    ],
    "missing_ldif": [
        "5:11: LDIF snapshot 'snapshots/corp.ldif' does not exist (relative paths start at the policy file's folder) "
        "(directories.corp.path)",
    ],
    "plain_ldap": [
        "5:39: a simple bind over ldap:// without StartTLS sends the password in clear; use ldaps://, "
        "set tls.start_tls: true, or (lab only) allow_insecure_bind: true (directories.corp.urls[1])",
    ],
    "several": [
        "1:10: version must be 1 (the only policy format so far) (version)",
        "5:5: path is only for kind ldif; a live directory is read from urls (directories.corp.path)",
        "7:76: expected true or false, got a string (YAML 1.2 reads no as text; write true or false) "
        "(directories.corp.users.include_disabled)",
        "8:19: mode group-teams makes teams from directory groups, but no directory reads groups; "
        "add groups.search_bases to a directory (placement.mode)",
        "9:32: 'remove' is not allowed; must be one of deactivate, delete, keep (lifecycle.when_out_of_scope)",
        "10:25: a limit is a count (50), a percentage ('10%'), {count: 50, percent: 10}, or null for no limit "
        "(safety.max_deletions)",
        "10:61: unknown key 'precent'; did you mean 'percent'? (safety.max_deactivations.precent)",
        "11:26: http:// to scim.example.com would send the store's credentials in clear; "
        "use https:// (http only to a loopback host) (store.url)",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_policy_reports_exact_locations_and_messages(name):
    path = BAD / f"{name}.yaml"
    assert [str(problem) for problem in validate_policy(path)] == [f"{path}:{line}" for line in CASES[name]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_load_refuses_a_bad_policy_with_the_same_problems(name):
    path = BAD / f"{name}.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert raised.value.problems == validate_policy(path)


def test_every_fixture_in_bad_is_covered():
    assert sorted(p.stem for p in BAD.glob("*.yaml")) == sorted(CASES)


def test_literal_password_never_appears_in_messages():
    with pytest.raises(PolicyError) as raised:
        load_policy(BAD / "literal_password.yaml")
    assert "Winter2026!" not in str(raised.value)
    assert all("Winter2026!" not in repr(p) for p in raised.value.problems)


# ───────── smaller cases, written inline: one mistake each ─────────

HEAD = """\
version: 1
directories:
  corp:
"""
LDIF = """\
    kind: ldif
    path: corp.ldif
    users: {search_bases: ['DC=corp,DC=example,DC=com']}
"""
LIVE = """\
    kind: active-directory
    urls: [ldaps://dc1.corp.example.com]
    users: {search_bases: ['DC=corp,DC=example,DC=com']}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "corp.ldif").write_text("version: 1\n")
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    prefix = f"{path}:"
    found = [str(p) for p in validate_policy(path)]
    assert all(line.startswith(prefix) for line in found)
    return [line[len(prefix) :] for line in found]


@pytest.mark.parametrize(
    "tail, expected",
    [
        (
            "manual: [alice@corp.example.com]\n",
            "7:1: manual: lists people but placement.mode is root, which ignores it; "
            "set placement.mode: manual or remove manual: (manual)",
        ),
        (
            "placement: {mode: target-group}\n",
            "7:1: missing required key 'target_group': mode target-group needs target_group, "
            "the team every imported user goes into (placement.target_group)",
        ),
        (
            "placement: {mode: ou-teams, target_group: Keys}\n",
            "7:29: target_group is only used with mode target-group, not ou-teams; remove it or change the mode "
            "(placement.target_group)",
        ),
        ("identity: {precedence: [corp, corp]}\n", "7:31: 'corp' is listed more than once (identity.precedence[1])"),
        ("store: {kind: scim, url: 'https://scim.example.com'}\n",
         "7:1: missing required key 'token': store kind scim needs url and token (token as a ${NAME} reference) "
         "(store.token)"),
        ("store: {kind: scim, url: 'https://scim.example.com', token: abc123}\n",
         "7:61: a secret must be a ${NAME} reference, not a literal: put the value in an environment variable "
         "(or CI secret) and write '${NAME}' here (store.token)"),
        ("store: {kind: sqlite, url: 'https://x.example.com'}\n",
         "7:23: url is only for store kinds sql and scim; kind sqlite uses path (store.url)"),
        ("store: {kind: sql, url: 'postgresql://sync:hunter2@db.internal/users'}\n",
         "7:25: store url holds a password; put the whole URL in an environment variable and write "
         "'${DATABASE_URL}' (any ${NAME}) here (store.url)"),
        # meant as a reference: say what is wrong with the name, not "a literal" (issue 12)
        ("store: {kind: scim, url: 'https://scim.example.com', token: '${1ABC}'}\n",
         "7:61: '${1ABC}' is not a valid variable name: a ${NAME} reference names an environment variable of "
         "letters, digits and _ that does not start with a digit (store.token)"),
        ("store: {kind: sql, url: '${DATABASE-URL}'}\n",
         "7:25: '${DATABASE-URL}' is not a valid variable name: a ${NAME} reference names an environment variable "
         "of letters, digits and _ that does not start with a digit (store.url)"),
        # the hint names a variable for what the URL is
        ("store: {kind: scim, url: 'https://sync:hunter2@scim.example.com', token: '${T}'}\n",
         "7:26: store url holds a password; put the whole URL in an environment variable and write "
         "'${SCIM_URL}' (any ${NAME}) here (store.url)"),
        ("safety: {max_deletions: 150%}\n",
         "7:25: a limit is a count (50), a percentage ('10%'), {count: 50, percent: 10}, or null for no limit "
         "(safety.max_deletions)"),
        ("safety: {max_deletions: {}}\n", "7:10: must not be empty (safety.max_deletions)"),
        ("mapping: {email: []}\n", "7:11: must not be empty (mapping.email)"),
        ("mapping: {email: '{mail}'}\n", "7:18: expected a list, got a string (mapping.email)"),
        ("mapping: {email: ['{given name}']}\n",
         "7:19: template '{given name}': 'given name' is not an attribute name (mapping.email[0])"),
        ("mapping: {display_name: '{givenName}} {sn}'}\n",
         "7:25: unbalanced braces in template '{givenName}} {sn}': '}' without '{' at character 12 "
         "(mapping.display_name)"),
        ("colour: blue\n", "7:1: unknown key 'colour'; allowed here: directories, identity, lifecycle, manual, "
                           "mapping, placement, safety, store, version (colour)"),
    ],
)
def test_top_level_mistakes(tmp_path, tail, expected):
    assert problems(tmp_path, HEAD + LDIF + tail) == [expected]


MANUAL = "placement: {mode: manual}\nmanual:\n"  # lines 7 and 8; the entries start on line 9


@pytest.mark.parametrize(
    "entries, expected",
    [
        # a team path: team names below placement.root, separated by '/'
        ("  - {who: bob, team: /Sales}\n",
         ["9:22: team '/Sales' starts with '/'; a team path is team names below placement.root separated by '/', "
          "like Sales/EMEA (manual[0].team)"]),
        ("  - {who: bob, team: Sales/}\n",
         ["9:22: team 'Sales/' ends with '/'; a team path is team names below placement.root separated by '/', "
          "like Sales/EMEA (manual[0].team)"]),
        ("  - {who: bob, team: 'Sales//EMEA'}\n",
         ["9:22: team 'Sales//EMEA' has an empty name between two '/'; a team path is team names below "
          "placement.root separated by '/', like Sales/EMEA (manual[0].team)"]),
        ("  - {who: bob, team: 'Sales / EMEA'}\n",
         ["9:22: team 'Sales / EMEA': 'Sales ' ends with a space; write Sales/EMEA (manual[0].team)"]),
        ("  - {who: bob, team: Organisation/Sales}\n",
         ["9:22: team 'Organisation/Sales' starts with the root team Organisation, but team paths start below "
          "placement.root; write Sales (manual[0].team)"]),
        ("  - {who: bob, team: organisation}\n",
         ["9:22: team 'organisation' is the root team (placement.root); leave team out to place them there "
          "(manual[0].team)"]),
        ("  - {who: bob, team: ''}\n", ["9:22: must not be empty (manual[0].team)"]),
        ("  - {who: bob, team: 5}\n", ["9:22: expected a string, got a number (manual[0].team)"]),
        # the form of an entry
        ("  - {who: bob, tem: Sales}\n", ["9:16: unknown key 'tem'; did you mean 'team'? (manual[0].tem)"]),
        ("  - {team: Sales}\n",
         ["9:5: missing required key 'who': an entry written as a mapping names the person in who, like "
          "{who: alice@corp.example.com, team: Sales/EMEA} (manual[0].who)"]),
        ("  - 5\n", ["9:5: expected a string or a mapping (key: value), got a number (manual[0])"]),
        ("  - [bob, Sales]\n", ["9:5: expected a string or a mapping (key: value), got a list (manual[0])"]),
        ("  - ''\n", ["9:5: must not be empty (manual[0])"]),
        ("  - {who: ''}\n", ["9:11: must not be empty (manual[0].who)"]),
        ("  - {who: '  ', team: Sales}\n", ["9:11: blank; write an email, account name or DN (manual[0].who)"]),
        # each person once: as written, spelled otherwise, and (worst) into two teams
        ("  - bob\n  - bob\n",
         ["10:5: 'bob' is listed more than once (first on line 9); list each person once (manual[1])"]),
        ("  - {who: alice@corp.example.com, team: Sales}\n  - {who: Alice@Corp.example.com, team: Sales}\n",
         ["10:11: 'Alice@Corp.example.com' is listed more than once (first on line 9); list each person once "
          "(manual[1].who)"]),
        ("  - {who: bob, team: Sales/EMEA}\n  - {who: bob, team: Support}\n",
         ["10:11: 'bob' is listed more than once, into different teams (team Sales/EMEA on line 9, team Support "
          "here); a person goes into one team: keep one (manual[1].who)"]),
        ("  - {who: bob, team: Sales}\n  - bob\n",
         ["10:5: 'bob' is listed more than once, into different teams (team Sales on line 9, the root team here); "
          "a person goes into one team: keep one (manual[1])"]),
        ("  - 'CN=Bob Stone,OU=People,DC=corp,DC=example,DC=com'\n"
         "  - {who: 'cn=bob stone, ou=People, dc=corp, dc=example, dc=com', team: Sales}\n",
         ["10:11: 'cn=bob stone, ou=People, dc=corp, dc=example, dc=com' is listed more than once, into different "
          "teams (the root team on line 9, team Sales here); a person goes into one team: keep one (manual[1].who)"]),
    ],
)
def test_manual_entry_mistakes(tmp_path, entries, expected):
    assert problems(tmp_path, HEAD + LDIF + MANUAL + entries) == expected


@pytest.mark.parametrize("placement, mode", [("", "root"), ("placement: {mode: ou-teams}\n", "ou-teams")])
def test_a_manual_team_outside_mode_manual(tmp_path, placement, mode):
    """Like manual: itself under another mode, and said at the team, where the edit is."""
    line = 8 if placement else 7
    assert problems(tmp_path, HEAD + LDIF + placement + "manual:\n  - {who: bob, team: Sales}\n") == [
        f"{line}:1: manual: lists people but placement.mode is {mode}, which ignores it; "
        "set placement.mode: manual or remove manual: (manual)",
        f"{line + 1}:16: team is only used with placement.mode manual, not {mode}; remove it or change the mode "
        "(manual[0].team)",
    ]


def test_a_root_of_another_name_is_what_a_team_path_must_not_start_with(tmp_path):
    text = HEAD + LDIF + "placement: {mode: manual, root: Example Corp}\nmanual:\n"
    assert problems(tmp_path, text + "  - {who: bob, team: Organisation/Sales}\n") == []
    assert problems(tmp_path, text + "  - {who: bob, team: Example Corp/Sales}\n") == [
        "9:22: team 'Example Corp/Sales' starts with the root team Example Corp, but team paths start below "
        "placement.root; write Sales (manual[0].team)"]


def test_load_refuses_a_manual_mistake_with_the_same_problems(tmp_path):
    problems(tmp_path, HEAD + LDIF + MANUAL + "  - {who: bob, team: /Sales}\n  - bob\n")
    path = tmp_path / "policy.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert raised.value.problems == validate_policy(path)
    assert len(raised.value.problems) == 2


def test_url_password_is_not_echoed(tmp_path):
    found = problems(tmp_path, HEAD + LDIF + "store: {kind: sql, url: 'postgresql://sync:hunter2@db/users'}\n")
    assert found and not any("hunter2" in line for line in found)


@pytest.mark.parametrize(
    "directory, expected",
    [
        (LIVE.replace("    urls: [ldaps://dc1.corp.example.com]\n", ""),
         ["3:3: missing required key 'urls': a live directory needs urls, the servers to read (directories.corp.urls)"]),
        (LDIF + "    urls: [ldaps://dc1.corp.example.com]\n",
         ["7:5: urls is only for live directories; a kind ldif directory is read from path (directories.corp.urls)"]),
        (LIVE + "    flavour: openldap\n",
         ["7:5: flavour is only for kind ldif; a live directory's kind is its flavour (directories.corp.flavour)"]),
        (LIVE.replace("ldaps://dc1.corp.example.com", "dc1.corp.example.com"),
         ["5:12: a directory URL looks like ldaps://dc1.example.com or ldap://host:389 (directories.corp.urls[0])"]),
        (LIVE + "    tls: {ca_file: certs/missing.pem}\n",
         ["7:20: CA file 'certs/missing.pem' does not exist (relative paths start at the policy file's folder) "
          "(directories.corp.tls.ca_file)"]),
        (LIVE + "    bind: {user: svc-sync, password: '${P}', method: ntlm}\n",
         ["7:18: an ntlm bind needs the user as DOMAIN\\user, like 'CORP\\svc-sync' (directories.corp.bind.user)"]),
        (LIVE + "    bind: {user: svc-sync}\n",
         ["7:5: missing required key 'password' (directories.corp.bind.password)"]),
        (LIVE + "    schema: {disabled: {attribute: nsAccountLock, flag: 2, equals: 'TRUE'}}\n",
         ["7:14: give either flag or equals, not both (directories.corp.schema.disabled)"]),
        (LIVE + "    timeouts: {connect: 0}\n", ["7:25: must be more than 0 (directories.corp.timeouts.connect)"]),
        (LIVE.replace("DC=corp,DC=example,DC=com", "OU=People,DC=corp,DC=example,DC=com")
         + "    groups: {search_bases: ['DC=corp'], filter: 'objectClass=group'}\n",
         ["7:50: invalid LDAP filter: a filter starts with '(', like (objectClass=user) (character 1) "
          "(directories.corp.groups.filter)"]),
    ],
)
def test_directory_mistakes(tmp_path, directory, expected):
    assert problems(tmp_path, HEAD + directory) == expected


def test_an_unquoted_dn_in_a_flow_list_is_caught_not_read_as_three_bases(tmp_path):
    # YAML reads [OU=People,DC=corp,DC=com] as three items; each alone is a valid DN,
    # and the snapshot would then report the base missing, or a server read the wrong subtree
    directory = LIVE.replace("{search_bases: ['DC=corp,DC=example,DC=com']}", "{search_bases: [OU=People,DC=corp,DC=com]}")
    [problem] = problems(tmp_path, HEAD + directory)
    assert problem.startswith("6:13: YAML split a DN at its commas")
    assert problem.endswith("(directories.corp.users.search_bases)")



def test_plain_ldap_is_fine_with_start_tls_or_explicit_permission_or_anonymous(tmp_path):
    base = HEAD + LIVE.replace("ldaps://", "ldap://")
    bind = "    bind: {user: 'cn=sync', password: '${P}'}\n"
    assert problems(tmp_path, base + bind) == []  # StartTLS is on by default
    assert problems(tmp_path, base + bind + "    tls: {start_tls: false}\n    allow_insecure_bind: true\n") == []
    assert problems(tmp_path, base + "    tls: {start_tls: false}\n") == []  # anonymous: no password to leak


def test_directory_name_must_be_a_short_name(tmp_path):
    text = HEAD.replace("  corp:", "  Corp EU:") + LDIF
    assert problems(tmp_path, text) == [
        "3:3: 'Corp EU' is not a valid name: a directory name starts with a lower-case letter and has only "
        "lower-case letters, digits, '_' and '-' (directories.Corp EU)"
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("version: 1\ndirectories:\n\tcorp: {}\n",
         "3:1: invalid YAML: found character '\\t' that cannot start any token; indent with spaces, not tabs"),
        ("version: 1\nstore: {kind: sql, url: 'postgresql://db}\n",
         "3:1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar at line 2, column 25); "
         "a quote is probably not closed"),
        ("version: 1\nplacement:\n  root: Sales: EMEA\n",
         "3:14: invalid YAML: mapping values are not allowed here; quote a value that contains ': '"),
    ],
)
def test_yaml_syntax_errors_say_how_to_fix_them(tmp_path, text, expected):
    assert problems(tmp_path, text) == [expected]


def test_missing_top_level_keys(tmp_path):
    assert problems(tmp_path, "version: 1\n") == ["1:1: missing required key 'directories' (directories)"]
