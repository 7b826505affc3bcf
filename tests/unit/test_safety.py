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
