"""Safety limits at, under and over the boundary, as counts and as percentages."""
import pytest

from reconciler.errors import TooMuchChange
from reconciler.model import Change, Plan
from reconciler.plan.safety import enforce, violations
from reconciler.policy.model import Limit, Safety


def plan_with(n, action="deactivate", managed=270):
    changes = [Change(action, "user", f"corp:{i}", "left scope") for i in range(n)]
    return Plan("p.yaml", "d", "sqlite", "f", {}, changes, [], managed)


@pytest.mark.parametrize("n, refused", [(26, False), (27, False), (28, True)])
def test_percentage_boundary(n, refused):
    safety = Safety(max_deactivations=Limit(percent=10))
    assert bool(violations(plan_with(n), safety)) is refused


@pytest.mark.parametrize("n, refused", [(4, False), (5, False), (6, True)])
def test_count_boundary(n, refused):
    assert bool(violations(plan_with(n), Safety(max_deactivations=Limit(count=5)))) is refused


def test_the_message_names_the_limit_and_the_numbers():
    with pytest.raises(TooMuchChange) as refused:
        enforce(plan_with(42), Safety())
    assert "42 deactivations is over the limit of 10% (27 of 270 active users) (safety.max_deactivations)" in str(refused.value)
    assert "--force --reason" in str(refused.value)


def test_the_smaller_of_count_and_percent_applies():
    safety = Safety(max_deletions=Limit(count=50, percent=10))
    assert violations(plan_with(51, "delete", managed=10_000), safety)[0].message.startswith("51 deletions is over the limit of 50")


def test_small_stores_get_no_exemption():
    assert violations(plan_with(9, managed=9), Safety())  # a 9-user store must not be wiped either


def test_force_with_a_reason_passes():
    enforce(plan_with(42), Safety(), force_reason="re-org approved in CHG-1234")


def test_an_initial_import_is_not_limited_by_a_creates_percentage():
    plan = plan_with(300, "create", managed=0)
    assert violations(plan, Safety(max_creates=Limit(percent=10))) == []
    assert violations(plan, Safety(max_creates=Limit(count=100)))


# ── small stores and a series of small plans ──

def test_one_leaver_in_a_small_store_goes_through_but_mass_change_does_not():
    safety = Safety()  # 10%, at least min_limit 2
    assert not violations(plan_with(1, managed=4), safety)
    assert not violations(plan_with(2, managed=9), safety)
    [over] = violations(plan_with(3, managed=4), safety)
    assert over.message == ("3 deactivations is over the limit of 10% (0 of 4 active users; at least 2, safety.min_limit) "
                            "(safety.max_deactivations)")


def test_min_limit_never_raises_an_explicit_count():
    assert violations(plan_with(1, managed=4), Safety(max_deactivations=Limit(count=0)))
    assert violations(plan_with(1, managed=4), Safety(min_limit=0))


def test_percentages_are_taken_of_active_users_so_small_plans_cannot_add_up():
    """100 users, 10 leave per run: the tenth run would have been allowed when deactivated users still
    counted; now each run's base is what is still active, and the limit shrinks with it."""
    from reconciler.plan.safety import allowed
    active, runs = 100, 0
    while True:
        most, _ = allowed(Safety().max_deactivations, active, at_least=Safety().min_limit)
        if most < 10:
            break
        active, runs = active - 10, runs + 1
    assert runs == 1 and active == 90  # the second batch of 10 (of 90 active: 9 allowed) is refused


# ── the window: a series of plans under the limit cannot add up to mass change ──

def test_what_was_applied_in_the_window_counts_with_the_plan():
    from datetime import datetime, timezone

    from reconciler.plan.safety import checks, recent_counts
    from reconciler.store import ApplyRecord

    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)

    def applied(at: str, n: int, outcome: str = "applied", force: str | None = None) -> ApplyRecord:
        return ApplyRecord(at, at, "ci", None, None, "p", "d", {"user.deactivate": n}, outcome, force)

    history = [applied("2026-11-30T11:00:00Z", 9), applied("2026-11-30T03:00:00Z", 9),
               applied("2026-11-29T11:59:59Z", 50),  # outside 24 h
               applied("2026-11-30T10:00:00Z", 40, "refused: over"),  # not applied
               applied("2026-11-30T09:00:00Z", 200, force="reorg CHG-7")]  # forced: a person said why
    recent = recent_counts(history, 24, now)
    assert recent == {"user.deactivate": 18}
    # 82 active now, 18 taken away in the window: 100 then, 10% = 10; 18 applied + 5 planned
    per_plan, window = [c for c in checks({"user.deactivate": 5}, 82, Safety(), recent) if c.limit == "max_deactivations"]
    assert per_plan.ok and (per_plan.planned, per_plan.allowed) == (5, 8)
    assert not window.ok and (window.noun, window.planned, window.allowed, window.window_hours) == ("deactivations in 24 h", 23, 10, 24)
    assert window.rule == "10% (10 of 100 active users 24 h ago); 18 applied since, 5 planned"
    assert [c.limit for c in checks({"user.deactivate": 5}, 82, Safety(window_hours=0), recent)] == ["max_deactivations", "max_deletions"]
