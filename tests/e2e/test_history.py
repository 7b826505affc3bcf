"""`reconciler history` through the installed command on Example Corp: an apply, the hourly job with nothing
to do, a refusal at a safety limit, a forced apply with its reason. Each row is matched to its plan by the
digest `plan --format json` gave; refused and applied are kept apart; the applies with no changes are a
count, not rows."""
from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import remove_people

cmarkgfm = pytest.importorskip("cmarkgfm", reason="cmarkgfm is in the test extra (pip install -e '.[test]')")

CI = {"GITHUB_ACTOR": "octocat", "GITHUB_SHA": "abc123def4567890abc123def4567890abc12345", "GITHUB_RUN_ID": "4242"}
REASON = "contractor programme ended (CHG-42)"


def short(digest: str) -> str:
    return "sha256:" + digest.removeprefix("sha256:")[:12]


def twenty_nine_leavers(company) -> None:
    """One over 10% of 288: the contractors in the store and six more (tests/e2e/test_gitops.py)."""
    corp = company.snapshot()
    contractors = sorted(a["samaccountname"][0] for dn, a in corp.entries.items()
                         if dn.endswith("OU=Contractors,DC=corp,DC=example,DC=com") and "samaccountname" in a)
    gone = [c for c in contractors if c not in {"lromero", "mgarcia"}] + ["sosei", "mchen", "rpatel", "praman",
                                                                         "zadams", "jweiss"]
    assert len(gone) == 29
    remove_people(company, gone)


@pytest.fixture
def a_history(company):
    """The applies, and the digest of each plan."""
    first = company.plan_json()["digest"]
    company.apply()
    for _ in range(3):  # the hourly job, with nothing to do
        assert "Applied: no changes." in company.apply().out
    twenty_nine_leavers(company)
    over = company.plan_json()["digest"]
    refused = company.run("apply", "policy.yaml", "--auto-approve")
    assert refused.code == 3 and "over the limit" in refused.err
    forced = company.run("apply", "policy.yaml", "--auto-approve", "--force", "--reason", REASON, env=CI)
    assert forced.code == 0, forced.err
    company.apply()  # nothing to do again: said first, not a row
    return company, first, over


def test_json_has_ids_digests_the_outcome_split_and_the_applies_with_no_changes(a_history):
    company, first, over = a_history
    result = company.run("history", "policy.yaml", "--format", "json")
    assert result.code == 0 and result.err == ""
    forced, refused, applied = json.loads(result.out)  # newest first; no rows for the four applies with no changes
    assert [r["id"] for r in (forced, refused, applied)] == [3, 2, 1]
    assert (applied["plan_digest"], refused["plan_digest"], forced["plan_digest"]) == (first, over, over)
    assert (applied["result"], applied["applied"], applied["planned_not_applied"]) == (
        "applied", {"team.create": 15, "user.create": 288}, {})
    assert (refused["result"], refused["applied"], refused["planned_not_applied"]) == (
        "refused", {}, {"user.deactivate": 29})
    assert refused["reason"].startswith("29 deactivations is over the limit of 10% (28 of 288 active users)")
    assert refused["unchanged_runs"] == 3  # the hourly job's three runs, counted in the next row
    assert (forced["result"], forced["applied"], forced["force_reason"], forced["unchanged_runs"]) == (
        "applied", {"user.deactivate": 29}, REASON, 0)
    assert (forced["actor"], forced["commit"], forced["run_id"]) == ("octocat", CI["GITHUB_SHA"], "4242")
    assert forced["unchanged_since"]["runs"] == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                                   forced["unchanged_since"]["latest_at"])
    assert refused["unchanged_since"] is None
    assert [r["id"] for r in json.loads(company.run("history", "policy.yaml", "--format", "json", "--limit", "1").out)] == [3]
    # the store: three rows, the pending count in meta
    assert company.sql("SELECT id, unchanged_runs FROM apply_history ORDER BY id") == [(1, 0), (2, 3), (3, 0)]
    assert dict(company.sql("SELECT key, value FROM meta WHERE key = 'noop_applies'")) == {"noop_applies": "1"}


def test_text_is_a_table_with_refused_apart_from_applied(a_history):
    company, first, over = a_history
    result = company.run("history", "policy.yaml")
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    assert re.fullmatch(r"1 apply with no changes since the last row \(latest at \S+Z\)\.", lines[0])
    header = next(line for line in lines if line.split()[:2] == ["id", "finished"])
    assert header.split("  ")[0].strip() == "id" and "planned, not applied" in header
    changes_at, planned_at, plan_at = (header.index(" changes ") + 1, header.index("planned, not applied"),
                                       header.index(" plan ") + 1)
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1:] if line[:3].strip().isdigit()}
    assert sorted(rows) == ["1", "2", "3"]
    forced, refused, applied = rows["3"], rows["2"], rows["1"]
    assert "applied (forced)" in forced and "octocat" in forced and "abc123def456" in forced and "4242" in forced
    assert forced[changes_at:planned_at].strip() == "29 users to deactivate" and forced[planned_at:plan_at].strip() == ""
    assert " refused " in refused
    assert refused[changes_at:planned_at].strip() == "" and refused[planned_at:plan_at].strip() == "29 users to deactivate"
    assert applied[changes_at:planned_at].strip() == "288 users to create, 15 teams to create"
    assert short(first) in applied and short(over) in refused and short(over) in forced
    why, before = (l.strip() for l in lines[lines.index(refused) + 1:lines.index(applied)])  # the lines under it
    assert why.startswith("refused: 29 deactivations is over the limit of 10% (28 of 288 active users)")
    assert before == "+ 3 applies with no changes since the previous row"
    assert f"forced because: {REASON}" in lines[lines.index(forced) + 1]


def test_markdown_is_a_gfm_table_for_a_pull_request(a_history):
    from cmarkgfm.cmark import Options

    company, first, over = a_history
    result = company.run("history", "policy.yaml", "--format", "markdown")
    assert result.code == 0 and result.err == ""
    html = cmarkgfm.github_flavored_markdown_to_html(result.out, options=Options.CMARK_OPT_UNSAFE)
    assert "1 apply with no changes since the last row" in html and "mailto:" not in html
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]
    assert [c[0] for c in cells] == ["3", "2", "1"]
    forced, refused, applied = cells
    assert forced[3] == f"applied (forced: {REASON})" and forced[4] == "29 users to deactivate" and forced[5] == ""
    assert refused[3].startswith("refused: 29 deactivations is over the limit") and refused[4] == ""
    assert refused[5] == "29 users to deactivate" and refused[9] == "+ 3 applies with no changes since the previous row"
    assert (applied[6], refused[6], forced[6]) == (short(first), short(over), short(over))
    assert (forced[2], forced[7], forced[8]) == ("octocat", "abc123def456", "4242")
