"""validate, schema, plan, apply, history, check."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .. import progress
from ..errors import ExitCode, ReconcilerError
from ..render import summary_words
from . import app
from .console import clear_progress, console, start_progress, stdout_is_terminal as _stdout_is_terminal
from .options import NoPagerOption, PolicyArg, QuietOption, load
from .pager import page


class Format(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"




@app.command()
def schema() -> None:
    """Print the policy JSON Schema."""
    from ..policy import policy_schema

    typer.echo(json.dumps(policy_schema(), indent=2, ensure_ascii=False))


@app.command()
def plan(
    policy: Path = PolicyArg,
    out: Optional[Path] = typer.Option(None, "--out", help="Save the plan as JSON for a later `apply --plan` (signed when RECONCILER_PLAN_KEY is set)."),
    format: Format = typer.Option(Format.text, "--format", help="Output format."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 2 when there are changes, 0 when none, 3 when apply would refuse the plan."),
    base_policy: Optional[Path] = typer.Option(None, "--base-policy", help="The policy as on the target branch (an empty file: none yet): mark which changes this edit causes, and record what a reviewer approves."),
    full: bool = typer.Option(False, "--full", help="List every change even in a large plan (above 1,000 changes text and Markdown summarise; JSON always lists all)."),
    quiet: bool = QuietOption,
    no_pager: bool = NoPagerOption,
) -> None:
    """Compute and show the plan: who is created, updated, moved, deactivated, deleted, and why."""
    from ..apply import plan_key
    from ..pipeline import plan_policy, with_review
    from ..render import renderer

    start_progress(quiet)
    loaded = load(policy)
    result = plan_policy(loaded, plan_only=True, keep_states=False).plan  # saved or shown, never applied as it is
    if base_policy is not None:
        result = with_review(result, str(base_policy))
    from ..timings import stage

    with stage("render", "rendering the plan"):
        if out is not None:  # first: writing it computes the digest the other outputs show
            _save(result, out, Path(loaded.path), plan_key())
        text = renderer(format.value, color=_stdout_is_terminal(), artifact_hint=_artifact_hint(), full=full).render(result)
        clear_progress()
        if not (format == Format.text and page(text, no_pager=no_pager)):
            typer.echo(text, nl=False)
    if out is not None:
        typer.echo(f"Saved the plan to {out}; apply it with: reconciler apply --plan {out}", err=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        # A CI summary that cannot be written must not fail the plan: a warning, and the plan's own exit code.
        try:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(renderer("markdown").render(result))
        except OSError as error:
            typer.echo(f"warning: cannot write the step summary to {summary} (GITHUB_STEP_SUMMARY): "
                       f"{error.strerror or error}; the plan is not affected", err=True)
    if detailed_exitcode and result.refused:
        raise typer.Exit(ExitCode.REFUSED)
    if detailed_exitcode and not result.empty:
        raise typer.Exit(ExitCode.CHANGES_PENDING)


def _save(result, out: Path, policy: Path, key: bytes | None) -> None:
    """The plan as JSON at `out`, streamed (a large plan is never one string), naming the policy as seen
    from the plan's folder so that `apply --plan FILE` finds it from anywhere."""
    from ..plan.document import write

    saved = replace(result, policy_path=os.path.relpath(policy.resolve(), out.parent.resolve()))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            write(saved, handle, key=key)
    except OSError as error:  # a folder, a full disk, no permission: one line, exit 1
        raise ReconcilerError(f"cannot write the plan to {out}: {error.strerror or error}") from None
    result.digest_cache = saved.digest_cache  # the path is not digested: one digest for both


def _artifact_hint() -> str | None:
    """Where a shortened comment sends the reviewer for the full plan: the CI artifact named by
    RECONCILER_PLAN_ARTIFACT (the kit sets it), in backticks; odd characters make it unnamed."""
    import re

    name = os.environ.get("RECONCILER_PLAN_ARTIFACT", "")
    return f"the `{name}` artifact of this run" if re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name) else None


@app.command()
def apply(
    policy: Optional[Path] = typer.Argument(None, help="The sync policy; plans afresh and applies.", show_default=False),
    plan_file: Optional[Path] = typer.Option(None, "--plan", help="Apply a saved plan (from `plan --out`), only if planning afresh gives exactly that plan."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Do not ask for confirmation."),
    force: bool = typer.Option(False, "--force", help="Apply over a safety limit (needs --reason)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why the safety limit is overridden; recorded in the history."),
    reviewed: Optional[Path] = typer.Option(None, "--reviewed", help="The review from the pull request's plan comment (the comment, or its reconciler-review line): apply only the reviewed policy and, within safety.review_margin, the reviewed effect. Needs --base-policy."),
    base_policy: Optional[Path] = typer.Option(None, "--base-policy", help="With --reviewed: the policy before the merge (an empty file: none), to tell the edit's effect from drift."),
    expect_digest: Optional[str] = typer.Option(None, "--expect-digest", help="Strict: refuse unless the fresh plan has exactly this digest (any drift since refuses)."),
    quiet: bool = QuietOption,
    no_pager: bool = NoPagerOption,
) -> None:
    """Apply a fresh plan (asks on a terminal unless --auto-approve) or a saved one."""
    from ..apply import apply_plan, confirm_or_refuse, held_to_review, plan_key, verified_saved_plan
    from ..plan.document import plan_digest
    from ..pipeline import plan_policy
    from ..render import renderer
    from ..store import open_store

    if force and not (reason and reason.strip()):
        raise typer.BadParameter("--force needs --reason \"why\"; the reason is recorded in the history", param_hint="--force")
    if reason and not force:
        raise typer.BadParameter("--reason only goes with --force", param_hint="--reason")
    if plan_file is None and policy is None:
        raise typer.BadParameter("give a POLICY to plan and apply, or --plan PLAN.json", param_hint="POLICY")
    if plan_file is not None and (expect_digest is not None or reviewed is not None):
        raise typer.BadParameter("--expect-digest and --reviewed go with POLICY; a saved plan is checked against a fresh one",
                                 param_hint="--plan")
    if (reviewed is None) != (base_policy is None):
        raise typer.BadParameter("--reviewed and --base-policy go together: the review is held against the edit's effect, "
                                 "which needs the policy before the merge", param_hint="--reviewed")
    start_progress(quiet)
    if plan_file is not None:
        loaded, the_plan = verified_saved_plan(plan_file, policy, load, key=plan_key())
        clear_progress()
        # the plan was shown and reviewed when it was saved: one line now, not every change again
        summary = summary_words(the_plan.summary) or "no changes"
        typer.echo(f"{plan_file} is what the policy, the directories and the store produce now "
                   f"(plan digest {plan_digest(the_plan)}): {summary}.")
    else:
        loaded = load(policy)  # type: ignore[arg-type]
        the_plan = plan_policy(loaded, plan_only=True).plan
        if reviewed is not None:
            from ..pipeline import with_review

            the_plan = with_review(the_plan, str(base_policy))
        progress.current().stage("rendering the plan")
        text = renderer("text", color=_stdout_is_terminal()).render(the_plan)
        clear_progress()
        # through the pager, which has ended when page returns: the confirmation below is never paged
        if not page(text, no_pager=no_pager):
            typer.echo(text, nl=False)
        if reviewed is not None:
            for line in held_to_review(the_plan, reviewed, loaded):
                typer.echo(line)
        confirm_or_refuse(the_plan, expect_digest=expect_digest, auto_approve=auto_approve)
    store = open_store(loaded.store)
    try:
        def said_lock(lock) -> None:
            if lock.expired_takeover:
                clear_progress()
                typer.echo(f"note: {lock.expired_takeover}", err=True)

        progress.current().stage("applying")
        record = apply_plan(the_plan, loaded, store, force_reason=reason if force else None, on_lock=said_lock)
    finally:
        store.close()
        clear_progress()
    typer.echo(f"Applied: {summary_words(record.counts) or 'no changes'}.")


@app.command()
def history(
    policy: Path = PolicyArg,
    format: Format = typer.Option(Format.text, "--format", help="text (a table), markdown (a GFM table for a pull request or step summary) or json (every field)."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many applies, newest first."),
) -> None:
    """The applies recorded in the store: id, when, who, commit and run, plan digest, applied / refused / failed and why, what changed or was planned."""
    from ..render.history import render_history
    from ..store import open_store

    loaded = load(policy)
    store = open_store(loaded.store)
    try:
        records = store.history()
    finally:
        store.close()
    # the applies with no changes since the newest line (a store's History; None from one that keeps no count)
    unchanged = getattr(records, "unchanged", None)
    typer.echo(render_history(records[:limit], unchanged, format.value, color=_stdout_is_terminal()), nl=False)


@app.command()
def check(policy: Path = PolicyArg) -> None:
    """Connect and bind to every directory and open the store; say exactly what fails."""
    from .check import run_checks

    loaded = load(policy)
    if not run_checks(loaded):
        raise typer.Exit(ExitCode.ERROR)
