"""Refactoring changes no plan and no store: the quickstart's and the seeds' JSON plans and the
store contents after their applies are byte-identical to the ones recorded (tests/golden)."""
from __future__ import annotations

import difflib

import pytest

from tests.golden.scenarios import RECORDED, scenarios


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    return scenarios(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", sorted(p.name for p in RECORDED.iterdir()))
def test_the_same_inputs_give_the_recorded_plan_and_store(replayed, name):
    recorded = (RECORDED / name).read_text()
    now = replayed[name]
    if now != recorded:
        diff = "".join(list(difflib.unified_diff(recorded.splitlines(True), now.splitlines(True), "recorded", "now"))[:80])
        pytest.fail(f"{name} differs from the recording (re-record with `python -m tests.golden.scenarios --write` "
                    f"only for a change meant to change plans):\n{diff}")


def test_every_scenario_is_recorded(replayed):
    assert sorted(replayed) == sorted(p.name for p in RECORDED.iterdir())
