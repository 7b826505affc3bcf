"""The GitHub Actions emulator (tests/gha) behaves as GitHub documents: small workflows and
composite actions written here run through it, and the outcomes are checked."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.gha import BOT, Context, EmulatorError, ExpressionError, FakeGitHub, evaluate, evaluate_if, interpolate, run_job
from tests.gha.emulator import parse_key_values
from tests.gha.expressions import CaseSensitiveDict

SHA = "c0ffee" + "0" * 34
HEAD = "feed" + "1" * 36


class Repo:
    """A repository in tmp_path/repo; `run` puts a workflow there and runs one job, with
    actions/checkout copying the repository into the workspace."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "repo"
        self.tmp = tmp_path
        self.github = FakeGitHub()
        self.pull = self.github.open_pull_request(7, "Edit policy", HEAD, "feature")
        self.workspace = tmp_path / "work" / "policies"
        self.checkouts = 0

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))

    def checkout(self, workspace: Path) -> None:
        self.checkouts += 1
        shutil.copytree(self.root, workspace, dirs_exist_ok=True)

    def run(self, workflow: str, job: str = "j", event_name: str = "pull_request", **kwargs):
        self.write(".github/workflows/w.yml", workflow)
        kwargs.setdefault("payload", self.github.pull_request_payload(7) if event_name == "pull_request"
                          else self.github.push_payload(SHA))
        kwargs.setdefault("runner_temp", self.tmp / "work" / "_temp")
        kwargs.setdefault("artifacts", self.tmp / "artifacts")
        return run_job(self.root / ".github/workflows/w.yml", job, event_name=event_name, github=self.github,
                       workspace=self.workspace, checkout=self.checkout, tool_cache=self.tmp / "tool_cache",
                       sha=SHA, ref="refs/pull/7/merge", **kwargs)


@pytest.fixture
def repo(tmp_path):
    return Repo(tmp_path)


def workflow(steps: str, *, permissions: str = "pull-requests: write", env: str = "", job_env: str = "") -> str:
    """A pull_request workflow with job `j` running `steps` (YAML list, unindented)."""
    return (f"name: test\non:\n  pull_request:\npermissions:\n  {permissions}\n"
            + (f"env:\n{textwrap.indent(textwrap.dedent(env), '  ')}" if env else "")
            + "jobs:\n  j:\n    runs-on: ubuntu-latest\n"
            + (f"    env:\n{textwrap.indent(textwrap.dedent(job_env), '      ')}" if job_env else "")
            + "    steps:\n" + textwrap.indent(textwrap.dedent(steps), "      "))


# ── expressions ──

CTX = Context({
    "github": {"event_name": "pull_request", "event": {"pull_request": {"number": 7, "labels": [{"name": "Policy"}]}}},
    "steps": {"plan": {"outputs": {"exit-code": "2"}, "outcome": "success"}},
    "env": CaseSensitiveDict(MODE="apply"),
    "vars": {},
})


@pytest.mark.parametrize("expression, expected", [
    ("github.event.pull_request.number", 7),
    ("github.EVENT_NAME", "pull_request"),  # contexts are case-insensitive ...
    ("env.mode", None),  # ... except env on Linux
    ("env.MODE", "apply"),
    ("github.event.nothing.deeper", None),  # missing properties are null, not errors
    ("vars.UNSET == ''", True),
    ("steps.plan.outputs.exit-code == 2", True),  # loose: '2' coerces to a number
    ("steps.plan.outputs['exit-code'] == '2'", True),
    ("'ABC' == 'abc'", True),
    ("null == 0 && '' == 0 && true == 1", True),
    ("'x' == 0", False),  # NaN equals nothing
    ("1 < 2 && 'a' < 'B'", True),
    ("true || false && false", True),  # && binds tighter than ||
    ("(true || false) && false", False),
    ("!true == false", True),  # ! binds tighter than ==
    ("'' || 'fallback'", "fallback"),  # || returns an operand, like JavaScript
    ("'first' && 0", 0),
    ("format('{0}-{1} {{literal}}', 'a', 7)", "a-7 {literal}"),
    ("contains(github.event.pull_request.labels.*.name, 'policy')", True),
    ("contains('Hello world', 'WORLD')", True),
    ("startsWith('refs/heads/main', 'refs/heads/') && endsWith('plan.JSON', '.json')", True),
    ("fromJSON('{\"a\": [1, {\"b\": true}]}').a[1].b", True),
    ("join(fromJSON('[1, 2, 3]'), '+')", "1+2+3"),
    ("toJSON(fromJSON('[1]'))", "[\n  1\n]"),
    ("'it''s'", "it's"),
    ("0x10 == 16 && 1.5 > 1", True),
])
def test_expressions(expression, expected):
    assert evaluate(expression, CTX) == expected


def test_interpolation_turns_values_into_strings_like_the_runner():
    text = interpolate("n=${{ github.event.pull_request.number }} e=${{ github.event }} f=${{ 1.50 }} "
                       "b=${{ true }} null=[${{ null }}] s=${{ '}}' }}", CTX)
    assert text == "n=7 e=Object f=1.5 b=true null=[] s=}}"


def test_expression_errors():
    with pytest.raises(ExpressionError, match="Unrecognized named-value: 'secrets'"):
        evaluate("secrets.X", CTX)  # not available here
    with pytest.raises(ExpressionError, match="Unrecognized function"):
        evaluate("success()", CTX)  # status functions belong to if:
    with pytest.raises(ExpressionError):
        evaluate("github.event ==", CTX)
    with pytest.raises(ExpressionError):
        interpolate("${{ github.event", CTX)


def test_if_conditions_imply_success_unless_a_status_function_is_called():
    failed = Context(CTX.values, status="failure")
    assert evaluate_if("steps.plan.outputs.exit-code == '2'", CTX)
    assert evaluate_if("${{ steps.plan.outputs.exit-code == '2' }}", CTX)
    assert not evaluate_if("steps.plan.outputs.exit-code == '2'", failed)  # success() && (...)
    assert evaluate_if("failure() && steps.plan.outcome == 'success'", failed)
    assert evaluate_if("always()", failed) and not evaluate_if("success()", failed)
    assert evaluate_if(None, CTX) and not evaluate_if(None, failed)
    # `${{ }}` mixed with text is a non-empty string: true, the trap GitHub documents
    assert evaluate_if("${{ false }} && true", CTX)


# ── run steps, outputs, env ──

def test_outputs_through_github_output_simple_and_heredoc(repo):
    result = repo.run(workflow("""
        - id: produce
          run: |
            echo "simple=one=1" >> "$GITHUB_OUTPUT"
            {
              echo "multi<<EOF_MARKER"
              printf 'line 1\\nline 2\\n'
              echo "EOF_MARKER"
            } >> "$GITHUB_OUTPUT"
        - id: consume
          env:
            MULTI: ${{ steps.produce.outputs.multi }}
          run: |
            echo "simple=${{ steps.produce.outputs.simple }}"
            echo "$MULTI" | wc -l
    """))
    assert result.ok, result.log
    assert result.step("produce").outputs == {"simple": "one=1", "multi": "line 1\nline 2"}
    assert result.step("consume").stdout.split() == ["simple=one=1", "2"]


def test_env_precedence_github_env_and_default_variables(repo, tmp_path):
    result = repo.run(workflow("""
        - run: |
            echo "LEVEL=$LEVEL MACHINE=$MACHINE ONLY_WF=$ONLY_WF"
            echo "FROM_ENV_FILE=set by step one" >> "$GITHUB_ENV"
            echo "LEVEL=from-github-env" >> "$GITHUB_ENV"
            echo "$RUNNER_TEMP/bin" >> "$GITHUB_PATH"
            mkdir -p "$RUNNER_TEMP/bin"; printf '#!/bin/sh\\necho tool ran\\n' > "$RUNNER_TEMP/bin/mytool"
            chmod +x "$RUNNER_TEMP/bin/mytool"
        - env:
            GITHUB_SHA: forged
          run: |
            echo "LEVEL=$LEVEL FROM_ENV_FILE=$FROM_ENV_FILE"
            echo "CTX=${{ env.FROM_ENV_FILE }}"
            mytool
            echo "$GITHUB_SHA $GITHUB_REF $GITHUB_EVENT_NAME $GITHUB_BASE_REF $GITHUB_HEAD_REF $CI $GITHUB_ACTIONS"
            echo "$GITHUB_WORKSPACE|$PWD|$GITHUB_REPOSITORY|$GITHUB_RUN_ID|$GITHUB_ACTOR"
            jq -r .pull_request.number "$GITHUB_EVENT_PATH" 2>/dev/null || python -c "import json,os; print(json.load(open(os.environ['GITHUB_EVENT_PATH']))['pull_request']['number'])"
        - env:
            LEVEL: step
          run: echo "LEVEL=$LEVEL"
    """, env="LEVEL: workflow\nONLY_WF: wf\n", job_env="LEVEL: job\n"),
        env={"LEVEL": "machine", "MACHINE": "yes"}, run_id=4242)
    assert result.ok, result.log
    first, second, third = (s.stdout.splitlines() for s in result.steps)
    assert first == ["LEVEL=job MACHINE=yes ONLY_WF=wf"]  # machine < workflow < job
    assert second[:3] == ["LEVEL=from-github-env FROM_ENV_FILE=set by step one", "CTX=set by step one", "tool ran"]
    assert second[3] == f"{SHA} refs/pull/7/merge pull_request main feature true true"  # GITHUB_* win
    assert second[4] == f"{repo.workspace.resolve()}|{repo.workspace.resolve()}|acme/policies|4242|octocat"
    assert second[5] == "7"
    assert third == ["LEVEL=step"]  # step env beats GITHUB_ENV
    assert result.env["FROM_ENV_FILE"] == "set by step one"


def test_default_shell_is_bash_e_and_shell_bash_adds_pipefail(repo):
    result = repo.run(workflow("""
        - run: false | true; echo "unspecified shell, no pipefail"
        - shell: bash
          run: false | true; echo "never printed"
    """))
    assert result.steps[0].outcome == "success" and "no pipefail" in result.steps[0].stdout
    assert result.steps[1].outcome == "failure" and result.steps[1].exit_code == 1
    assert "never printed" not in result.steps[1].stdout


# ── status ──

def test_if_success_failure_always_and_step_outputs(repo):
    result = repo.run(workflow("""
        - id: count
          run: echo "n=2" >> "$GITHUB_OUTPUT"
        - id: when-two
          if: steps.count.outputs.n == '2'
          run: echo two
        - id: when-three
          if: ${{ steps.count.outputs.n == '3' }}
          run: echo three
        - id: boom
          run: exit 3
        - id: after
          run: echo "not run"
        - id: on-failure
          if: failure()
          run: echo "job status ${{ job.status }}, boom ${{ steps.boom.outcome }}"
        - id: on-success
          if: success()
          run: echo "not run"
        - id: always
          if: always()
          run: echo always
    """))
    assert not result.ok and result.status == "failure"
    outcomes = {s.id: s.outcome for s in result.steps}
    assert outcomes == {"count": "success", "when-two": "success", "when-three": "skipped", "boom": "failure",
                        "after": "skipped", "on-failure": "success", "on-success": "skipped", "always": "success"}
    assert result.step("boom").exit_code == 3
    assert result.step("on-failure").stdout.strip() == "job status failure, boom failure"
    assert result.step("when-three").skipped and result.step("when-three").exit_code is None


def test_continue_on_error(repo):
    result = repo.run(workflow("""
        - id: flaky
          continue-on-error: true
          run: |
            echo "partial=yes" >> "$GITHUB_OUTPUT"
            exit 1
        - id: next
          run: echo "${{ steps.flaky.outcome }}/${{ steps.flaky.conclusion }}/${{ steps.flaky.outputs.partial }}"
        - if: failure()
          run: echo "not run"
    """))
    assert result.ok
    assert (result.step("flaky").outcome, result.step("flaky").conclusion) == ("failure", "success")
    assert result.step("next").stdout.strip() == "failure/success/yes"
    assert result.steps[2].skipped


def test_a_step_timeout_fails_the_step_instead_of_hanging(repo):
    result = repo.run(workflow("""
        - run: sleep 30
        - if: always()
          run: echo after
    """), step_timeout=1)
    assert result.steps[0].outcome == "failure" and "timed out" in result.steps[0].stderr
    assert result.steps[1].stdout.strip() == "after"


def test_an_unterminated_heredoc_output_fails_the_step():
    assert parse_key_values("a=1\nb<<END\nx\nEND\n") == {"a": "1", "b": "x"}
    with pytest.raises(ValueError, match="Matching delimiter not found"):
        parse_key_values("b<<END\nx\n")


# ── composite actions ──

ACTION = """\
name: greet
inputs:
  who:
    required: true
  greeting:
    default: Hello
  shout:
    default: ${{ github.event_name }}
outputs:
  message:
    value: ${{ steps.say.outputs.message }}
  exit-code:
    value: ${{ steps.say.outputs.code }}
runs:
  using: composite
  steps:
    - uses: actions/setup-python@v5
      with:
        python-version: "3.11"
    - id: say
      shell: bash
      env:
        WHO: ${{ inputs.who }}
      run: |
        echo "message=${{ inputs.greeting }}, $WHO ($SECRET_FROM_CALLER) via ${{ inputs.shout }}" >> "$GITHUB_OUTPUT"
        echo "code=0" >> "$GITHUB_OUTPUT"
        test -f "$GITHUB_ACTION_PATH/action.yml" && echo "action path ok"
        test "${{ github.action_path }}" = "$GITHUB_ACTION_PATH"
        [ "$WHO" != "fail" ]
    - if: failure()
      shell: bash
      run: echo "composite failure() sees its own step"
"""


def test_composite_action_inputs_defaults_outputs_and_env(repo):
    repo.write(".github/actions/greet/action.yml", ACTION)
    result = repo.run(workflow("""
        - uses: actions/checkout@v4
        - id: greet
          uses: ./.github/actions/greet
          env:
            SECRET_FROM_CALLER: ${{ secrets.TOKEN }}
          with:
            who: world
        - run: echo "${{ steps.greet.outputs.message }}"
    """), secrets={"TOKEN": "s3cret"})
    assert result.ok, result.log
    greet = result.step("greet")
    assert greet.outputs == {"message": "Hello, world (s3cret) via pull_request", "exit-code": "0"}
    assert [s.outcome for s in greet.steps] == ["success", "success", "skipped"]
    assert "action path ok" in greet.stdout
    assert result.steps[2].stdout.strip() == "Hello, world (s3cret) via pull_request"
    assert "s3cret" not in result.log and "***" in result.log  # secrets are masked in the log


def test_composite_action_failures(repo):
    repo.write(".github/actions/greet/action.yml", ACTION)
    repo.write(".github/actions/noshell/action.yml", """\
        name: noshell
        runs:
          using: composite
          steps:
            - run: echo hi
    """)
    result = repo.run(workflow("""
        - uses: actions/checkout@v4
        - id: failing
          continue-on-error: true
          uses: ./.github/actions/greet
          with:
            who: fail
        - id: missing-input
          continue-on-error: true
          uses: ./.github/actions/greet
        - id: no-shell
          continue-on-error: true
          uses: ./.github/actions/noshell
        - id: unknown
          continue-on-error: true
          uses: someone/else@v1
    """))
    failing = result.step("failing")
    assert failing.outcome == "failure" and failing.outputs["exit-code"] == "0"  # outputs still mapped
    assert [s.outcome for s in failing.steps] == ["success", "failure", "success"]
    assert "composite failure() sees its own step" in failing.stdout
    assert "Input required and not supplied: who" in result.step("missing-input").stderr
    assert "shell" in result.step("no-shell").stderr and result.step("no-shell").outcome == "failure"
    assert "emulator does not know someone/else@v1" in result.step("unknown").stderr
    assert result.ok  # all of them continue-on-error


# ── checkout ──

def test_checkout_cleans_the_workspace_unless_clean_false(repo):
    repo.write("policy.yaml", "kind: policy\n")
    stale = repo.workspace / ".reconciler" / "store.db"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by an earlier run")
    steps = """
        - uses: actions/checkout@v4
          with:
            fetch-depth: 0
        - run: ls -A
    """
    result = repo.run(workflow(steps))
    assert result.ok and not stale.exists()
    assert sorted(result.steps[1].stdout.split()) == [".github", "policy.yaml"]
    stale.parent.mkdir()
    stale.write_text("kept")
    result = repo.run(workflow(steps.replace("fetch-depth: 0", "clean: false")))
    assert result.ok and stale.read_text() == "kept" and repo.checkouts == 2


# ── github-script ──

STICKY = """
    - uses: actions/github-script@v7
      id: sticky
      env:
        BODY: ${{ inputs.body }}
      with:
        script: |
          const marker = '<!-- sticky -->';
          const {owner, repo} = context.repo;
          const issue_number = context.issue.number;
          const comments = await github.paginate(github.rest.issues.listComments, {owner, repo, issue_number});
          const mine = comments.find(c => c.user.type === 'Bot' && c.body.startsWith(marker));
          const body = marker + '\\n' + process.env.BODY;
          if (mine) {
            await github.rest.issues.updateComment({owner, repo, comment_id: mine.id, body});
            return {action: 'updated', seen: comments.length};
          }
          const created = await github.rest.issues.createComment({owner, repo, issue_number, body});
          return {action: 'created', status: created.status, seen: comments.length};
"""


def test_github_script_creates_then_updates_one_comment_through_pagination(repo):
    for i in range(130):  # more than a page of 100, and than four default pages of 30
        repo.github.add_comment(7, f"review {i}", login="bob")
    repo.github.add_comment(7, "<!-- sticky -->\nforged by a human", login="mallory")
    first = repo.run(workflow(STICKY.replace("${{ inputs.body }}", "first plan")))
    assert first.ok, first.log
    assert first.step("sticky").outputs["result"] == '{"action":"created","status":201,"seen":131}'
    for _ in range(25):  # push the sticky comment itself past the first pages
        repo.github.add_comment(7, "more review", login="bob")
    second = repo.run(workflow(STICKY.replace("${{ inputs.body }}", "second plan")))
    assert second.ok, second.log
    assert second.step("sticky").outputs["result"] == '{"action":"updated","seen":157}'
    bots = [c for c in repo.github.comments(7) if c["user"] == BOT]
    assert len(bots) == 1 and bots[0]["body"] == "<!-- sticky -->\nsecond plan"
    assert bots[0]["updated_at"] > bots[0]["created_at"]
    assert repo.github.comments(7)[130]["body"] == "<!-- sticky -->\nforged by a human"  # untouched


def script_step(script: str, **with_) -> str:
    extra = "".join(f"\n    {k.replace('_', '-')}: {v}" for k, v in with_.items())
    return f"- id: gs\n  uses: actions/github-script@v7\n  with:{extra}\n    script: |\n" + textwrap.indent(
        textwrap.dedent(script).strip(), "      ") + "\n"


def test_github_script_set_failed_fails_the_step_but_the_script_goes_on(repo):
    result = repo.run(workflow(script_step("""
        core.setFailed('no plan comment');
        core.setOutput('after', 'still ran');
        return 'done';
    """, result_encoding="string")))
    step = result.step("gs")
    assert not result.ok and step.outcome == "failure"
    assert "::error::no plan comment" in step.stdout and "no plan comment" in step.stderr
    assert step.outputs == {"after": "still ran", "result": "done"}


def test_github_script_result_encoding(repo):
    result = repo.run(workflow(script_step("return 'sha256:' + 'ab'.repeat(2);", result_encoding="string")
                               + script_step("return 'sha256:abab';").replace("id: gs", "id: json")
                               + script_step("const x = 1;").replace("id: gs", "id: nothing")))
    assert result.ok, result.log
    assert result.step("gs").outputs["result"] == "sha256:abab"
    assert result.step("json").outputs["result"] == '"sha256:abab"'
    assert result.step("nothing").outputs["result"] == ""  # JSON.stringify(undefined)


def test_github_script_body_over_65536_characters_is_rejected_with_422(repo):
    result = repo.run(workflow(script_step("""
        const {owner, repo} = context.repo;
        const at_limit = await github.rest.issues.createComment({owner, repo, issue_number: 7, body: 'x'.repeat(65536)});
        try {
          await github.rest.issues.createComment({owner, repo, issue_number: 7, body: 'x'.repeat(65537)});
        } catch (error) {
          core.setOutput('caught', `${error.status} ${error.message}`);
        }
        await github.rest.issues.updateComment({owner, repo, comment_id: at_limit.data.id, body: 'é'.repeat(65537)});
    """)))
    step = result.step("gs")
    assert step.outcome == "failure"
    assert step.outputs["caught"].startswith("422 Validation Failed")
    assert "body is too long (maximum is 65536 characters)" in step.outputs["caught"]
    assert "Unhandled error: HttpError: Validation Failed" in step.stderr
    assert [len(c["body"]) for c in repo.github.comments(7)] == [65536]  # nothing else was written


def test_github_script_uncaught_error_fails_the_step(repo):
    result = repo.run(workflow(script_step("""
        const {owner, repo} = context.repo;
        await github.rest.issues.get({owner, repo, issue_number: 999});
    """) + "- if: failure()\n  run: echo 'cleanup ran'\n"))
    assert result.step("gs").outcome == "failure"
    assert "Unhandled error: HttpError: Not Found" in result.step("gs").stderr
    assert result.steps[1].stdout.strip() == "cleanup ran"
    syntax = repo.run(workflow(script_step("this is not javascript")))
    assert syntax.step("gs").outcome == "failure" and "SyntaxError" in syntax.step("gs").stderr


def test_github_script_context_permissions_and_pull_lookup(repo):
    repo.github.merge(7, SHA)
    script = """
        const {owner, repo} = context.repo;
        const pulls = await github.rest.repos.listPullRequestsAssociatedWithCommit({owner, repo, commit_sha: context.sha});
        core.setOutput('pull', `${pulls.data[0].number} ${pulls.data[0].merged} ${pulls.data[0].head.ref}`);
        core.setOutput('context', [context.eventName, context.issue.number, context.repo.repo, context.runId].join(' '));
        core.setOutput('fs', require('fs').existsSync('marker.txt') ? 'workspace is cwd' : 'wrong cwd');
        await github.rest.issues.createComment({owner, repo, issue_number: 7, body: 'not allowed'});
    """
    repo.write("marker.txt", "x")
    result = repo.run(workflow("- uses: actions/checkout@v4\n" + script_step(script),
                               permissions="pull-requests: read"), run_id=55)
    step = result.step("gs")
    assert step.outputs["pull"] == "7 true feature"
    assert step.outputs["context"] == "pull_request 7 policies 55"
    assert step.outputs["fs"] == "workspace is cwd"
    assert step.outcome == "failure" and "Resource not accessible by integration" in step.stderr
    assert repo.github.comments(7) == []


def test_github_script_issues_labels_and_listing(repo):
    result = repo.run(workflow(script_step("""
        const {owner, repo} = context.repo;
        const created = await github.rest.issues.create({owner, repo, title: 'Drift', body: 'b', labels: ['reconciler']});
        await github.rest.issues.create({owner, repo, title: 'Other'});
        const open = await github.rest.issues.listForRepo({owner, repo, labels: 'reconciler', state: 'open'});
        await github.rest.issues.update({owner, repo, issue_number: created.data.number, state: 'closed'});
        const all = await github.paginate(github.rest.issues.listForRepo, {owner, repo, state: 'all', per_page: 1});
        return {number: created.data.number, open: open.data.map(i => i.title), all: all.length,
                isPull: all.filter(i => i.pull_request).map(i => i.number)};
    """), permissions="issues: write"))
    assert result.ok, result.log
    assert result.step("gs").outputs["result"] == '{"number":8,"open":["Drift"],"all":3,"isPull":[7]}'
    assert [i["title"] for i in repo.github.issues(state="closed", label="reconciler")] == ["Drift"]
    assert repo.github.issues()[0]["user"] == BOT


# ── artifacts ──

def test_upload_and_download_artifact(repo):
    result = repo.run(workflow("""
        - run: |
            echo '{"plan": 1}' > plan.json
            mkdir -p out/sub && echo a > out/a.txt && echo b > out/sub/b.txt
        - uses: actions/upload-artifact@v4
          with:
            name: plan-${{ github.event.pull_request.number }}
            path: plan.json
        - uses: actions/upload-artifact@v4
          with:
            name: out
            path: |
              out/
              !out/sub
        - id: none
          uses: actions/upload-artifact@v4
          with:
            name: none
            path: missing.json
        - run: rm -rf plan.json out
        - uses: actions/download-artifact@v4
          with:
            name: plan-7
        - run: cat plan.json
    """))
    assert result.ok, result.log
    assert sorted(result.artifacts) == ["out", "plan-7"]
    assert (result.artifacts["plan-7"] / "plan.json").read_text() == '{"plan": 1}\n'
    assert sorted(p.name for p in result.artifacts["out"].rglob("*")) == ["a.txt"]
    assert "No files were found" in result.step("none").stdout and result.step("none").outcome == "success"
    assert result.steps[-1].stdout == '{"plan": 1}\n'


def test_workflow_that_does_not_run_on_the_event_is_refused(repo):
    with pytest.raises(EmulatorError, match="does not run on 'push'"):
        repo.run(workflow("- run: true\n"), event_name="push")


def test_defaults_working_directory_summary_and_hash_files(repo):
    repo.write("sub/a.txt", "a\n")
    text = workflow("""
        - uses: actions/checkout@v4
        - run: |
            pwd
            echo "### Plan" >> "$GITHUB_STEP_SUMMARY"
            echo "${{ hashFiles('**/*.txt') }}|${{ hashFiles('**/*.nothing') }}"
        - working-directory: .
          run: pwd
    """).replace("    steps:", "    defaults:\n      run:\n        working-directory: sub\n    steps:")
    result = repo.run(text)
    assert result.ok, result.log
    where, hashes = result.steps[1].stdout.splitlines()
    assert where == str(repo.workspace.resolve() / "sub")
    assert len(hashes.split("|")[0]) == 64 and hashes.split("|")[1] == ""
    assert result.steps[2].stdout.strip() == str(repo.workspace.resolve())
    assert result.summaries == ["### Plan\n"] and result.steps[1].summary == "### Plan\n"


def test_a_job_if_that_is_false_skips_the_job(repo):
    text = workflow("- run: echo ran\n").replace("    runs-on:", "    if: github.event_name == 'push'\n    runs-on:")
    result = repo.run(text)
    assert result.status == "skipped" and result.steps == [] and not result.ok


def test_github_script_pulls_and_comment_deletion(repo):
    repo.github.open_pull_request(9, "Other", "9" * 40, "other", base_ref="release")
    kept = repo.github.add_comment(7, "keep me", login="bob")
    result = repo.run(workflow(script_step("""
        const {owner, repo} = context.repo;
        const created = await github.rest.issues.createComment({owner, repo, issue_number: 7, body: 'temporary'});
        await github.rest.issues.deleteComment({owner, repo, comment_id: created.data.id});
        const pull = await github.rest.pulls.get({owner, repo, pull_number: 7});
        const onMain = await github.rest.pulls.list({owner, repo, state: 'open', base: 'main'});
        let missing;
        try { await github.rest.issues.updateComment({owner, repo, comment_id: 424242, body: 'x'}); }
        catch (e) { missing = e.status; }
        return [pull.data.head.sha.slice(0, 4), onMain.data.map(p => p.number), missing];
    """)))
    assert result.ok, result.log
    assert result.step("gs").outputs["result"] == '["feed",[7],404]'
    assert repo.github.comments(7) == [kept]
