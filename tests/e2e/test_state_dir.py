"""store.state_dir: where the store's local state lives when CI's checkout cleans the workspace."""
from __future__ import annotations

from reconciler.policy import load_policy

STATE_DIR = "  path: .reconciler/store.db\n"


def test_the_store_lives_in_the_state_dir_named_by_the_environment(company, tmp_path):
    company.set_policy(STATE_DIR, "  state_dir: '${RECONCILER_STATE_DIR}'\n")
    assert company.run("validate", "policy.yaml").code == 0  # validating needs no environment
    missing = company.run("plan", "policy.yaml")
    assert missing.code == 1 and "environment variable RECONCILER_STATE_DIR is not set; store.state_dir needs it" in missing.err
    state = tmp_path / "runner-state"
    env = {"RECONCILER_STATE_DIR": str(state)}
    assert company.run("apply", "policy.yaml", "--auto-approve", env=env).code == 0
    assert (state / "store.db").exists() and not (company.folder / ".reconciler").exists()
    again = company.run("plan", "policy.yaml", "--detailed-exitcode", env=env)
    assert again.code == 0, again.out + again.err


def test_check_says_whether_the_state_folder_can_be_written(company, tmp_path):
    company.set_policy(STATE_DIR, "  state_dir: '${RECONCILER_STATE_DIR}'\n")
    good = company.run("check", "policy.yaml", env={"RECONCILER_STATE_DIR": str(tmp_path / "new" / "state")})
    assert good.code == 0 and f"OK   store: sqlite: {tmp_path / 'new' / 'state'} is writable" in good.out
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = company.run("check", "policy.yaml", env={"RECONCILER_STATE_DIR": str(blocker / "state")})
    assert bad.code == 1 and f"FAIL store: sqlite: {blocker} is not a folder" in bad.out
    assert "Traceback" not in bad.err


def test_a_relative_state_dir_is_taken_from_the_policy_folder_and_scim_keeps_its_side_file_there(tmp_path):
    (tmp_path / "corp.ldif").write_text("")
    policy = tmp_path / "policy.yaml"
    body = ("version: 1\ndirectories:\n  corp:\n    kind: ldif\n    path: corp.ldif\n    users:\n"
            "      search_bases: ['DC=corp,DC=example,DC=com']\n")
    policy.write_text(body + "store: {kind: sqlite, state_dir: state}\n")
    assert load_policy(str(policy)).store.file() == str(tmp_path / "state" / "store.db")
    policy.write_text(body + "store: {kind: scim, url: 'https://app.example.com/scim/v2', token: '${T}', state_dir: side}\n")
    assert load_policy(str(policy)).store.file() == str(tmp_path / "side" / "scim-state.db")
    policy.write_text(body + "store: {kind: sqlite, state_dir: state, path: x.db}\n")
    from reconciler.errors import PolicyError
    try:
        load_policy(str(policy))
    except PolicyError as error:
        assert "give store.path (the database file) or store.state_dir" in str(error)
    else:
        raise AssertionError("path and state_dir together must be refused")
