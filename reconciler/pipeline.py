"""The stages in order, for the commands that need them all."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .desired import build_desired_state
from .directory import read_with_states
from .directory.delta import now_text, reconciler_version
from .plan import steady
from .model import DesiredState, Plan, StoreState
from .plan.make import make_plan
from .plan.safety import recent_counts
from .policy.model import Policy, SecretRef
from .store import Store, open_store, read_later
from .timings import stage


@dataclass
class Planned:
    policy: Policy
    desired: DesiredState | None  # None only for plan_only, when the kept plan was the plan
    store_state: StoreState | None
    plan: Plan


def require_secrets(policy: Policy) -> None:
    """Every ${NAME} the run will need, checked before any connection: a missing
    variable is named with the key that needs it, not found halfway through."""
    for directory in policy.directories:
        if directory.bind is not None and isinstance(directory.bind.password, SecretRef):
            directory.bind.password.resolve()
        graph = getattr(directory, "graph", None)  # kind entra-id, read from a tenant (not a snapshot)
        if graph is not None and graph.snapshot is None:
            certificate_password = graph.certificate.password if graph.certificate is not None else None
            for value in (graph.tenant, graph.client_id, graph.client_secret, certificate_password):
                if isinstance(value, SecretRef):
                    value.resolve()
    for value in (policy.store.url, policy.store.token, policy.store.state_dir):
        if isinstance(value, SecretRef):
            value.resolve()


def plan_policy(policy: Policy, store: Store | None = None, *, plan_only: bool = False,
                keep_states: bool = True) -> Planned:
    """Reads every directory (aborting on any incomplete read), then the store, then diffs.

    Directories with `delta:` start from the states the store keeps (read first, on their own); the plan
    carries the new states to its apply (`Plan.sync_states`) and says how each was read (`Plan.reads`).
    `plan_only` (plan and apply, which need nothing but the plan): when every directory reads deltas, the
    last apply kept the plan it made (one with no changes) and nothing changed since, in the directories or
    the store, that plan is the plan (`plan.steady`), and `desired` and `store_state` are None.
    `keep_states`: the plan goes to an apply, which keeps the new delta states; a plan that is only shown or
    saved carries none (`read_with_states`)."""
    require_secrets(policy)
    own = store is None
    store = store or open_store(policy.store)  # opening connects to nothing yet
    reading = None
    try:
        kept, generation = _kept_states(policy, store)
        steady_plan = steady.reuse(kept.pop(steady.KEY, None), policy_digest=policy.digest,
                                   version=reconciler_version(), generation=generation) if plan_only else None
        # The store is read while the desired state is built, where it can be (read_later), but an apply's,
        # which is locked and read after. When the kept plan turns out to be the plan, it is never begun.
        reading = read_later(store) if own else None
        with stage("read"):
            read = read_with_states(policy.directories, kept, stop_if_unchanged=steady_plan is not None,
                                    keep_states=keep_states)
        del kept
        if read.unchanged and steady_plan is not None:
            return Planned(policy, None, None, _renewed(policy, steady_plan, read, store))
        if reading is not None:
            reading.begin()
        with stage("desired", "building the desired state"):
            desired = build_desired_state(policy, read.reads, release_entries=True, all_verdicts=not plan_only)
        notes, states = read.notes, read.states
        del read  # the entries as read are not needed past the desired state: free them before the store is read
        with stage("store_read", "reading the store"):
            # what the two agree on is kept once (model.KnownUser)
            state = reading.state(desired.users) if reading is not None else store.read(known=desired.users)
            recent = recent_counts(store.history(), policy.safety.window_hours, datetime.now(timezone.utc))
    finally:
        if reading is not None:
            reading.close()
        if own:
            store.close()
    with stage("diff", "comparing"):
        plan = make_plan(policy, desired, state, recent)
    plan.reads, plan.sync_states = notes, states
    return Planned(policy, desired, state, plan)


def _renewed(policy: Policy, kept: Plan, read, store: Store) -> Plan:
    """The kept plan as this run's (plan.steady.renewed): the safety window is taken from the history now."""
    from .plan.safety import checks

    recent = recent_counts(store.history(), policy.safety.window_hours, datetime.now(timezone.utc))
    return steady.renewed(kept, generated_at=now_text(),
                          notes=read.notes, states=read.states,
                          safety=checks(kept.summary, kept.managed_users, policy.safety, recent))


def _kept_states(policy: Policy, store: Store) -> tuple[dict[str, bytes], str | None]:
    """The delta-read states the store keeps and its generation, when a directory reads deltas (else the
    store is not asked)."""
    if not any(d.delta is not None for d in policy.directories):
        return {}, None
    return store.read_sync(), store.generation()


def with_review(plan: Plan, base_path: str) -> Plan:
    """`plan` with each change's cause and the review a pull request approves, against the policy at
    `base_path` (the target branch's). An empty base file means there is no policy there yet: the edit
    causes every change."""
    from dataclasses import replace

    from .plan.attribution import attribute
    from .plan.review import review_of
    from .policy import load_policy

    try:
        with open(base_path, "rb") as handle:
            nothing_there = not handle.read().strip()
    except OSError as error:
        from .errors import ReconcilerError

        raise ReconcilerError(f"{base_path}: cannot read the base policy: {error.strerror}") from None
    if nothing_there:
        marked = replace(plan, changes=[replace(c, cause="policy") for c in plan.changes])
        return replace(marked, review=review_of(marked, None))
    base = load_policy(base_path)
    marked = attribute(plan, plan_policy(base, keep_states=False).plan)
    return replace(marked, review=review_of(marked, base.digest))
