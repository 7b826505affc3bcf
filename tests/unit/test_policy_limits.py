"""The policy loader's limits (reconciler/policy/load.py): a file over MAX_BYTES, a document whose aliases
expand past MAX_NODES, a recursive alias and nesting past MAX_DEPTH are each refused quickly, as one
problem at their position, while ordinary anchors and aliases still load."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.errors import PolicyError, ReconcilerError
from reconciler.policy import load_policy, validate_policy
from reconciler.policy.load import MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_document

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "policy.yaml"


def alias_bomb(depth: int) -> str:
    """Nested lists of aliases: each level names the one below nine times (9**depth values)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def one_problem(path: Path) -> str:
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert len(raised.value.problems) == 1, raised.value.problems
    return str(raised.value)


def test_an_alias_bomb_at_depth_10_is_refused_in_well_under_a_second(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(10))
    assert len(bomb.read_bytes()) < 500
    started = time.perf_counter()
    message = one_problem(bomb)
    assert time.perf_counter() - started < 0.5
    # refused where the level that passes the limit starts (9**6 > 100,000)
    assert message.startswith(f"{bomb}:6:")
    assert f"more than {MAX_NODES:,} values when its aliases are expanded" in message
    assert "\n" not in message


def test_validate_reports_the_bomb_as_its_only_problem(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(10))
    problems = validate_policy(bomb)
    assert [p.location.line for p in problems] == [6]


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(QUICKSTART.read_bytes() + b"#" * (MAX_BYTES + 1) + b"\n: : [unparsable")
    started = time.perf_counter()
    with pytest.raises(ReconcilerError) as raised:
        load_policy(big)
    assert time.perf_counter() - started < 0.5
    assert not isinstance(raised.value, PolicyError)
    assert str(raised.value).startswith(f"{big}: the policy file is larger than 1 MiB")
    assert "\n" not in str(raised.value)


def test_parse_document_keeps_the_size_limit_too():
    document = parse_document("big.yaml", b"a: 1\n" * (MAX_BYTES // 5 + 1))
    assert document.data is None
    assert [str(p) for p in document.problems][0].startswith("big.yaml: the policy file is larger than 1 MiB")


def test_a_recursive_alias_is_refused(tmp_path):
    policy = tmp_path / "recursive.yaml"
    policy.write_text("version: 1\nloop: &x [1, *x]\n")
    message = one_problem(policy)
    assert message.startswith(f"{policy}:2:14: an alias is used inside the node it names")


def test_nesting_past_the_depth_limit_is_refused(tmp_path):
    policy = tmp_path / "deep.yaml"
    policy.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    message = one_problem(policy)
    assert message == f"{policy}:1:{4 + MAX_DEPTH - 1}: nested more than {MAX_DEPTH} levels deep; a policy nests a few levels"


def test_ordinary_anchors_and_aliases_still_load(tmp_path):
    text = QUICKSTART.read_text()
    text = text.replace("      search_bases: ['OU=Groups,DC=corp,DC=example,DC=com']",
                        "      search_bases: &groups ['OU=Groups,DC=corp,DC=example,DC=com']")
    text = text.replace("  max_deactivations: 10%", "  max_deactivations: &ten 10%")
    text = text.replace("  max_deletions: 10%", "  max_deletions: *ten")
    assert "&groups" in text and "*ten" in text
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    (tmp_path / "corp.ldif").write_text("")
    (tmp_path / "emea.ldif").write_text("")
    assert validate_policy(policy) == []
    loaded = load_policy(policy)
    assert loaded.safety == load_policy(QUICKSTART).safety


def test_an_expansion_just_under_the_limit_loads(tmp_path):
    # 9**5 = 59,049 values: a lot of aliasing, still under MAX_NODES, so only the schema complains
    policy = tmp_path / "many.yaml"
    policy.write_text(alias_bomb(5))
    problems = validate_policy(policy)
    assert problems and all("unknown key" in p.message or "missing required key" in p.message for p in problems)
