"""Delta plans are full-read plans: random change sequences against slapd (syncprov, with and without a
session log) and the Samba AD DC, planned both ways after every round.

The property a delta read must keep: whatever happened in the directory since the last apply (attributes
edited, hires, deletions, moves within and out of the search base and back, accounts disabled and enabled,
a filter clause starting or stopping to match, memberships of the nested `member_of` group gained and
lost), the plan made from the kept records plus the server's changes is the plan a full read makes
(every change, the counts per directory, every ignored entry). Each round applies the delta plan (so the
next round starts from the state that apply kept), or now and then only plans (the changes accumulate
over several rounds before an apply). The seeds are fixed: a failure names its seed and round, and the
same seed replays the same sequence.

The servers are real: slapd with the syncprov overlay (tests/servers/slapd.py), and the session's Samba
AD DC read as its Administrator, who may list the tombstones in CN=Deleted Objects that a delta needs
for deletions (an ordinary account makes `usn.UsnChanges` refuse and read in full:
tests/integration/test_ad_delta.py)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.apply import apply_plan
from reconciler.pipeline import plan_policy
from reconciler.plan.document import to_document
from reconciler.policy import load_policy
from reconciler.store import open_store
from tests.integration.live_cli_support import LiveCompany, Sandbox
from tests.servers.population import Group, Person
from tests.servers.slapd import Slapd

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")]  # inside ldap3

ADMIN_ENV = "RECONCILER_TEST_DELTA_ADMIN_PASSWORD"
ROUNDS = 10


@pytest.fixture(scope="module", params=["sessionlog", "present"])
def syncprov_slapd(request, tmp_path_factory, test_tls):
    """slapd with syncprov: with a session log deletions arrive as a list; without, as the present set."""
    server = Slapd(tmp_path_factory.mktemp(f"delta-{request.param}"), test_tls, syncprov=True,
                   sessionlog=200 if request.param == "sessionlog" else 0)
    try:
        server.start(people=(), groups=())
        yield server
    finally:
        server.stop()


@dataclass
class World:
    """What the test did to the directory, to pick the next change from."""

    server: object
    sandbox: Sandbox
    staff: str  # the member_of group (Eng is nested in it)
    eng: str
    outside: tuple[str, ...]  # an OU path outside the search base
    inside: list[str] = field(default_factory=list)  # accounts under the base
    out: list[str] = field(default_factory=list)  # accounts moved out
    disabled: set[str] = field(default_factory=set)
    contractors: set[str] = field(default_factory=set)
    members: dict[str, set[str]] = field(default_factory=dict)  # group cn -> accounts
    hired: int = 0


def build(server, name: str) -> World:
    sandbox = Sandbox(server, name)
    world = World(server, sandbox, staff=f"{name} Staff", eng=f"{name} Eng", outside=(f"{name}-Out",))
    for n in range(8):
        account = f"{name.lower()}p{n}"
        sandbox.hire(account, "Eng" if n % 2 else "Ops")
        world.inside.append(account)
    world.members = {world.eng: set(world.inside[1::2][:3]), world.staff: set(world.inside[0::2][:3])}
    sandbox.group(world.eng, members=tuple(sorted(world.members[world.eng])))
    sandbox.group(world.staff, members=tuple(sorted(world.members[world.staff])), groups=(world.eng,))
    server.ensure_ou(world.outside)
    return world


def mutate(world: World, rng: random.Random) -> str:
    """One random change a directory sees in an hour; returns what it did (for the failure message)."""
    server, everyone = world.server, world.inside + world.out
    choice = rng.choice(["title", "title", "hire", "delete", "move", "move_out", "move_in", "disable", "contractor",
                         "join", "leave"])
    if choice == "title" and everyone:
        who = rng.choice(everyone)
        server.set_attribute(who, "title", rng.choice(["Engineer", "Manager", "Director", None]))
        return f"title of {who}"
    if choice == "hire":
        world.hired += 1
        who = f"{world.sandbox.name.lower()}h{world.hired}"
        groups = (rng.choice([world.eng, world.staff]),) if rng.random() < 0.7 else ()
        world.sandbox.hire(who, rng.choice(["Eng", "Ops"]), groups=groups)
        world.inside.append(who)
        for group in groups:
            world.members[group].add(who)
        return f"hired {who} into {groups}"
    if choice == "delete" and everyone:
        who = rng.choice(everyone)
        server.delete_user(who)
        for members in world.members.values():
            members.discard(who)
        (world.inside if who in world.inside else world.out).remove(who)
        world.sandbox.accounts.remove(who)
        return f"deleted {who}"
    if choice == "move" and world.inside:
        who = rng.choice(world.inside)
        server.move_user(who, (world.sandbox.name, rng.choice(["Eng", "Ops"])))
        return f"moved {who} within the base"
    if choice == "move_out" and world.inside:
        who = rng.choice(world.inside)
        server.move_user(who, world.outside)
        world.inside.remove(who)
        world.out.append(who)
        return f"moved {who} out of the base"
    if choice == "move_in" and world.out:
        who = rng.choice(world.out)
        server.move_user(who, (world.sandbox.name, "Ops"))
        world.out.remove(who)
        world.inside.append(who)
        return f"moved {who} back in"
    if choice == "disable" and everyone:
        who = rng.choice(everyone)
        disabled = who not in world.disabled
        server.set_disabled(who, disabled)
        (world.disabled.add if disabled else world.disabled.discard)(who)
        return f"{'disabled' if disabled else 'enabled'} {who}"
    if choice == "contractor" and everyone:
        who = rng.choice(everyone)
        contractor = who not in world.contractors
        server.set_attribute(who, "employeeType", "contractor" if contractor else None)
        (world.contractors.add if contractor else world.contractors.discard)(who)
        return f"{'contractor' if contractor else 'employee'} {who}"
    if choice == "join" and everyone:
        group = rng.choice([world.eng, world.staff])
        candidates = [a for a in everyone if a not in world.members[group]]
        if candidates:
            who = rng.choice(candidates)
            server.add_to_group(who, group)
            world.members[group].add(who)
            return f"{who} joined {group}"
    if choice == "leave":
        group = rng.choice([world.eng, world.staff])
        if world.members[group]:
            who = rng.choice(sorted(world.members[group]))
            server.remove_from_group(who, group)
            world.members[group].discard(who)
            return f"{who} left {group}"
    return "nothing"


def write_policies(folder: Path, server, world: World, bind: dict) -> tuple[Path, Path]:
    """The same policy twice, one reading deltas, both on one store."""
    ad = server.kind == "active-directory"
    people = "(&(objectClass=user)(!(objectClass=computer)))" if ad else "(objectClass=inetOrgPerson)"
    directory = server.policy_directory(
        users={"search_bases": [world.sandbox.base], "filter": f"(&{people}(!(employeeType=contractor)))",
               "member_of": [server.group_dn(world.staff)]},
        **bind)
    document = {
        "version": 1,
        "directories": {"corp": directory},
        "mapping": {"email": ["{mail}"], "display_name": "{displayName}", "attributes": {"title": "{title}"}},
        "placement": {"mode": "ou-teams", "root": "Org"},
        "store": {"kind": "sqlite", "path": "store.db"},
    }
    yaml = YAML(typ="safe", pure=True)
    full, delta = folder / "full.yaml", folder / "delta.yaml"
    yaml.dump(document, full)
    document["directories"]["corp"] = {**directory, "delta": {"full_read_every": "1d"}}
    yaml.dump(document, delta)
    return full, delta


def comparable(plan) -> dict:
    """The plan without what names the policy file or the time: every change, count and ignored entry."""
    document = to_document(plan)
    return {key: value for key, value in document.items() if key not in ("policy", "generated_at", "digest", "reads")}


def run_rounds(server, folder: Path, name: str, seed: int, bind: dict) -> list[str]:
    rng = random.Random(seed)
    world = build(server, name)
    kinds = []
    try:
        full, delta = write_policies(folder, server, world, bind)
        applied = False
        for round_ in range(ROUNDS):
            did = [mutate(world, rng) for _ in range(rng.randint(1, 6))] if round_ else ["the first read"]
            by_full = plan_policy(load_policy(str(full))).plan
            by_delta = plan_policy(load_policy(str(delta))).plan
            where = f"seed {seed}, round {round_} after {did}"
            assert comparable(by_delta) == comparable(by_full), where
            note = by_delta.reads[0]
            kinds.append(note.kind)
            if applied:  # a state was kept: every read after it must be a delta, or this tests nothing
                assert note.kind == "delta", f"{where}: {note.reason}"
            else:
                assert note.kind == "full" and note.reason == "no delta state is kept yet", where
            if round_ == 0 or rng.random() < 0.75:
                store = open_store(load_policy(str(delta)).store)
                try:
                    apply_plan(by_delta, load_policy(str(delta)), store, force_reason="property test: limits not tested here")
                finally:
                    store.close()
                applied = True
                after = plan_policy(load_policy(str(delta))).plan
                assert after.empty and after.reads[0].kind == "delta", f"{where}: a plan right after the apply"
    finally:
        world.sandbox.remove()
        _remove_ou(server, world.outside)
    return kinds


def _remove_ou(server, path: tuple[str, ...]) -> None:
    from ldap3 import SUBTREE

    conn = server.admin()
    base = server.ou_dn(path)
    conn.search(base, "(objectClass=*)", search_scope=SUBTREE, attributes=["1.1"])
    for dn in sorted((e.entry_dn for e in conn.entries), key=lambda dn: -dn.count(",")):
        conn.delete(dn)


@pytest.mark.parametrize("seed", [11, 29])
def test_slapd_delta_plans_equal_full_read_plans(syncprov_slapd, bind_password, tmp_path, seed):
    bind_password(syncprov_slapd)
    kinds = run_rounds(syncprov_slapd, tmp_path, f"Sync{seed}", seed, {})
    assert kinds[0] == "full" and kinds.count("delta") >= ROUNDS - 2


@pytest.mark.parametrize("seed", [5, 17])
def test_samba_delta_plans_equal_full_read_plans(samba_dc, monkeypatch, tmp_path, seed):
    from tests.servers.samba import ADMIN_PASSWORD, BASE_DN

    monkeypatch.setenv(ADMIN_ENV, ADMIN_PASSWORD)
    bind = {"bind": {"user": f"CN=Administrator,CN=Users,{BASE_DN}", "password": "${" + ADMIN_ENV + "}"}}
    kinds = run_rounds(samba_dc, tmp_path, f"Usn{seed}", seed, bind)
    assert kinds[0] == "full" and kinds.count("delta") >= ROUNDS - 2


def test_a_refused_token_reads_in_full_and_says_so(syncprov_slapd, bind_password, tmp_path):
    """A kept cookie the server no longer takes (here: a state whose token was damaged) is not a failed plan:
    the read is full, the plan is the full plan, and the note says why."""
    import sqlite3

    from reconciler.directory.delta import decode, encode

    bind_password(syncprov_slapd)
    world = build(syncprov_slapd, "Refused")
    try:
        full, delta = write_policies(tmp_path, syncprov_slapd, world, {})
        planned = plan_policy(load_policy(str(delta))).plan
        store = open_store(load_policy(str(delta)).store)
        try:
            apply_plan(planned, load_policy(str(delta)), store)
        finally:
            store.close()
        with sqlite3.connect(tmp_path / "store.db") as db:
            (blob,) = db.execute("SELECT state FROM directory_sync WHERE directory = 'corp'").fetchone()
            state, _ = decode(blob)
            for search in state.searches.values():
                search.token = "rid=000,csn=29991231000000.000000Z#000000#000#000000"  # a cookie from the future
            db.execute("UPDATE directory_sync SET state = ? WHERE directory = 'corp'", (encode(state),))
        world.server.set_attribute(world.inside[0], "title", "Refused")
        by_delta = plan_policy(load_policy(str(delta))).plan
        assert comparable(by_delta) == comparable(plan_policy(load_policy(str(full))).plan)
        note = by_delta.reads[0]
        assert note.kind == "full" and "refused" in note.reason, note
    finally:
        world.sandbox.remove()
        _remove_ou(syncprov_slapd, world.outside)


def test_a_plan_only_shown_or_saved_encodes_no_state_and_the_apply_keeps_its_own(
        syncprov_slapd, bind_password, tmp_path, monkeypatch):
    """`reconciler plan` never keeps the new delta states (the apply plans again and keeps what its own reads
    found), so it does not encode them: encoding every record again was 1.3 s of a 100,000-user delta plan.
    The plan is the same with or without them, and a plan made to be applied still carries them."""
    from reconciler import directory

    bind_password(syncprov_slapd)
    world = build(syncprov_slapd, "Unkept")
    try:
        _full, delta = write_policies(tmp_path, syncprov_slapd, world, {})
        policy = load_policy(str(delta))
        first = plan_policy(policy).plan
        store = open_store(policy.store)
        try:
            apply_plan(first, policy, store)
        finally:
            store.close()
        world.server.set_attribute(world.inside[0], "title", "Unkept")
        to_apply = plan_policy(load_policy(str(delta))).plan
        assert set(to_apply.sync_states) == {"corp"} and to_apply.sync_states["corp"].startswith(b"reconciler-delta-state")

        def refuse(state):
            raise AssertionError("a plan that is only shown encoded a delta state")

        monkeypatch.setattr(directory, "encode", refuse)
        shown = plan_policy(load_policy(str(delta)), plan_only=True, keep_states=False).plan
        assert shown.sync_states == {} and shown.reads[0].kind == "delta"
        assert comparable(shown) == comparable(to_apply)
    finally:
        world.sandbox.remove()
        _remove_ou(syncprov_slapd, world.outside)


def test_the_console_script_says_how_it_read_and_a_saved_delta_plan_applies(syncprov_slapd, bind_password, tmp_path):
    """As a team runs it: the first plan reads in full and says why; after the apply, a change in the
    directory is read as a delta (the text, the Markdown and the JSON say so); a plan saved from a delta
    read is applied with `apply --plan` (the fresh plan, a delta too, is the saved one), and the store
    then holds the change."""
    bind_password(syncprov_slapd)
    world = build(syncprov_slapd, "Cli")
    try:
        company = LiveCompany(tmp_path, {"corp": syncprov_slapd})
        company.store = tmp_path / "store.db"  # where write_policies puts it
        _full, delta = write_policies(tmp_path, syncprov_slapd, world, {})
        delta.rename(company.policy)
        first = company.run("plan", "policy.yaml")
        assert first.code == 0, first.output
        assert "corp: full read (no delta state is kept yet)" in first.out
        assert company.run("apply", "policy.yaml", "--auto-approve", "--no-pager").code == 0
        syncprov_slapd.set_attribute(world.inside[0], "title", "Chief Delta Officer")
        text = company.run("plan", "policy.yaml")
        assert "corp: delta read (1 record changed; changes since the last apply; last full read " in text.out, text.out
        assert "title: → Chief Delta Officer" in text.out or "Chief Delta Officer" in text.out
        markdown = company.run("plan", "policy.yaml", "--format", "markdown")
        assert "corp: delta read \\(1 record changed; changes since the last apply" in markdown.out  # escaped Markdown
        document = company.plan_json()
        assert [(r["directory"], r["kind"], r["changed"]) for r in document["reads"]] == [("corp", "delta", 1)]
        saved = company.run("plan", "policy.yaml", "--out", "plan.json")
        assert saved.code == 0, saved.output
        applied = company.run("apply", "--plan", "plan.json", "--no-pager")
        assert applied.code == 0 and "Applied: 1 user to update." in applied.out, applied.output
        assert company.sql("SELECT attributes FROM users WHERE lower(email) = lower(?)",
                           f"{world.inside[0]}@{syncprov_slapd.mail_domain}")[0][0].count("Chief Delta Officer") == 1
        again = company.run("plan", "policy.yaml")
        assert "No changes." in again.out and "corp: delta read (0 records changed;" in again.out, again.out
    finally:
        world.sandbox.remove()
        _remove_ou(syncprov_slapd, world.outside)


def test_a_plan_with_nothing_changed_is_the_one_the_last_apply_kept_until_anything_changes(
        syncprov_slapd, bind_password, tmp_path):
    """The hourly job on a store in sync (plan.steady): after an apply that changed nothing, the next plan is
    the kept one, made without building a read or reading the store, and equal to the full-read plan; an
    edit in the application's store, a change in the directory and a policy edit each end that, and the
    plan made then says what changed."""
    import sqlite3

    bind_password(syncprov_slapd)
    world = build(syncprov_slapd, "Steady")
    try:
        full, delta = write_policies(tmp_path, syncprov_slapd, world, {})

        def plan():
            return plan_policy(load_policy(str(delta)), plan_only=True)

        def apply(planned) -> None:
            store = open_store(load_policy(str(delta)).store)
            try:
                apply_plan(planned.plan, load_policy(str(delta)), store)
            finally:
                store.close()

        def settle():
            """Apply until a plan with nothing to do has been applied (the kept plan then stands)."""
            planned = plan()
            while not planned.plan.empty:
                apply(planned)
                planned = plan()
            apply(planned)

        apply(plan())
        second = plan()
        assert second.plan.empty and second.desired is not None  # no kept plan yet: made as always
        apply(second)  # changes nothing; keeps this plan
        third = plan()
        assert third.desired is None and third.store_state is None  # the kept plan, nothing built or read
        assert comparable(third.plan) == comparable(plan_policy(load_policy(str(full))).plan)
        assert "nothing changed in the directories or the store since the last apply" in third.plan.reads[0].reason
        assert third.plan.reads[0].kind == "delta" and third.plan.reads[0].changed == 0

        someone = f"{world.inside[2]}@{syncprov_slapd.mail_domain}"
        with sqlite3.connect(tmp_path / "store.db") as db:  # the application edits a user behind reconciler's back
            db.execute("UPDATE users SET display_name = 'Edited By Hand' WHERE lower(email) = lower(?)", (someone,))
        edited = plan()
        assert edited.desired is not None
        assert [c.subject for c in edited.plan.changes] == [someone]
        assert "edited in the application since the last apply" in edited.plan.changes[0].reason
        settle()
        assert plan().desired is None  # kept again

        syncprov_slapd.set_attribute(world.inside[3], "title", "Steady State Engineer")
        from unittest import mock

        from reconciler.directory.ldap.syncrepl import SyncRepl

        with mock.patch.object(SyncRepl, "changes", autospec=True, side_effect=SyncRepl.changes) as asked:
            moved = plan()
        assert asked.call_count == 1  # the read the check for changes built is the read planned from, not made twice
        assert moved.desired is not None and len(moved.plan.changes) == 1
        assert moved.plan.changes[0].reason == "changed in corp: title"
        settle()
        assert plan().desired is None

        yaml = YAML(typ="safe", pure=True)
        document = yaml.load(delta)
        document["lifecycle"] = {"when_disabled": "deactivate"}  # the default, written out: another digest
        yaml.dump(document, delta)
        assert plan().desired is not None  # another policy: the kept plan was made for the one before
    finally:
        world.sandbox.remove()
        _remove_ou(syncprov_slapd, world.outside)


def test_a_full_read_runs_every_full_read_every_and_when_the_server_is_another(syncprov_slapd, bind_password, tmp_path):
    """The kept state's age and origin decide: older than full_read_every, a full read (and the next state
    starts from it); a state from another server (here: its identity edited, as a rebuilt database or
    another provider would have), a full read; each says why in the plan."""
    import sqlite3

    from reconciler.directory.delta import decode, encode

    bind_password(syncprov_slapd)
    world = build(syncprov_slapd, "Every")
    try:
        _full, delta = write_policies(tmp_path, syncprov_slapd, world, {})
        policy = load_policy(str(delta))

        def apply_fresh():
            planned = plan_policy(load_policy(str(delta)))
            store = open_store(policy.store)
            try:
                apply_plan(planned.plan, policy, store)
            finally:
                store.close()
            return planned.plan

        def edit_state(**changes):
            with sqlite3.connect(tmp_path / "store.db") as db:
                (blob,) = db.execute("SELECT state FROM directory_sync WHERE directory = 'corp'").fetchone()
                state, _ = decode(blob)
                for name, value in changes.items():
                    setattr(state, name, value)
                db.execute("UPDATE directory_sync SET state = ? WHERE directory = 'corp'", (encode(state),))

        apply_fresh()
        assert apply_fresh().reads[0].kind == "delta"
        edit_state(full_read_at="2020-01-01T00:00:00Z")
        aged = plan_policy(load_policy(str(delta))).plan.reads[0]
        assert aged.kind == "full" and aged.reason.startswith("the last full read was ") \
            and aged.reason.endswith("ago (full_read_every: 1d)"), aged
        apply_fresh()  # keeps the state of that full read: delta again from here
        assert plan_policy(load_policy(str(delta))).plan.reads[0].kind == "delta"
        edit_state(server="00000000-0000-0000-0000-000000000000@dc=example,dc=org:sid=000")
        other = plan_policy(load_policy(str(delta))).plan.reads[0]
        assert other.kind == "full" and "the server is not the one the kept state is from" in other.reason, other
    finally:
        world.sandbox.remove()
        _remove_ou(syncprov_slapd, world.outside)
