"""The delta round against a real Samba AD domain controller (issue 14).

`bench/harness.py` measures delta reads against slapd (RFC 4533, syncprov). This is the same round
against Active Directory's method (`reconciler/directory/ldap/usn.py`: uSNChanged watermarks and
tombstones), on a private Samba AD DC started by the test fixture (`tests/servers/samba.py`):

1. provision and start the DC (the fixture's: LDAP only, its small test population seeded; here with
   `ldb:nosync`, see `BenchSambaDC`), then load N users over LDAP under OU=Bench (people spread over
   six OUs below OU=People,OU=Bench, with mail, displayName, title, department; 1% disabled, 2%
   without mail) and G = N/20 groups (five direct memberships per user, the first group the big one,
   every tenth group nesting the next three). Samba takes users only over LDAP (there is no slapadd),
   and an add gets slower as the database grows, which is what limits N: the load time, the rate per
   1,000 users and the time of each 1,000 are in the JSON;
2. two policies on one SQLite store, one with `delta: {full_read_every: 1d}`, both binding as the
   domain Administrator (only administrators may list CN=Deleted Objects; for any other account
   `UsnChanges` refuses deltas and every read is full);
3. the import (full plan, `apply --plan`), then `apply` of the delta policy (changes nothing: keeps the
   delta state and the plan); rounds x the delta plan with nothing changed (the kept plan);
4. 1% churn over LDAP (attribute edits, disables via userAccountControl, deletions, hires with group
   joins, OU moves, group membership changes); rounds x the full plan, rounds x the delta plan (each
   from the same copy of the kept store); rounds x the delta plan from that copy without its kept
   plan (`plan_delta_churn_no_kept_plan`: with one, `plan` asks for the changes, finds some, and then
   makes the whole delta read a second time); the plans' changes compared; `apply --plan` of the
   delta plan; one delta plan (made from the kept records: nothing changed, but the apply changed the
   store, so no plan was kept); `apply` (keeps the plan); rounds x the delta plan again.

Every step is `python -m reconciler ...` in its own process under GNU time (CPU time, peak RSS of
what it forks), with RECONCILER_TIMINGS for the plan's stages; medians over the rounds. Against Samba
a full read waits mostly on the server, so the DC's own CPU time during each step (its process
group's, from /proc) is recorded too (`server_cpu_s`): the client's CPU alone would hide what a delta
saves.

    python -m bench.samba_delta --users 20000 --json bench/results/samba-delta.json

Needs root (Samba runs only as root), `samba`/`samba-tool` (Debian `samba`), /usr/bin/time, and
ports 389/636/3268/3269 on 127.0.0.1 free (AD clients assume the standard ports).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, SIMPLE, Connection, Server  # noqa: E402

from tests.servers.samba import (  # noqa: E402
    ADMIN_PASSWORD, BASE_DN, HOST, UF_ACCOUNTDISABLE, UF_NORMAL_ACCOUNT, UF_PASSWD_NOTREQD, SambaDC,
)
from tests.servers.tls import make_tls  # noqa: E402
from bench.harness import Sample, copy_store, measure, median_of  # noqa: E402  (the same measuring as the slapd round)
from bench.generate import (  # noqa: E402  (the same people as the slapd bench's, named the AD way below)
    BIG_GROUP_MEMBERS, GIVEN, MEMBERSHIPS_PER_USER, SURNAMES, TITLES,
)

PASSWORD_ENV = "BENCH_SAMBA_ADMIN_PASSWORD"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
BENCH = f"OU=Bench,{BASE_DN}"
PEOPLE = f"OU=People,{BENCH}"
GROUPS = f"OU=Groups,{BENCH}"
MAIL_DOMAIN = "corp.example.com"

# OU paths below OU=People,OU=Bench, outermost first: a list of its own, shorter than the slapd bench's
OUS: tuple[tuple[str, ...], ...] = (
    ("Engineering",), ("Engineering", "Platform"), ("Sales",), ("Sales", "EMEA"), ("Research",), ("Operations",),
)


class BenchSambaDC(SambaDC):
    """The test fixture's DC (same provisioning, LDAP only, the fixture's accounts), with `ldb:nosync`
    unless `sync`: Samba then does not fsync its database at each write. That changes nothing a read
    sees and only the speed of writes; it makes the load over LDAP about ten times faster on this
    machine (as the fixture is, 2,000 users took 44 s per 1,000: an add waited ~45 ms on fsync for
    ~11 ms of the server's CPU; with nosync 4-5 s per 1,000 at the same size). slapadd, which the
    slapd benchmark loads with, does not sync at each entry either."""

    def __init__(self, workdir: Path, tls, sync: bool = False):
        super().__init__(workdir, tls)
        self.sync = sync

    def _tune_config(self, options: dict[str, str]) -> None:
        super()._tune_config(options if self.sync else {**options, "ldb:nosync": "true"})


# ── the directory ──────────────────────────────────────────────────────────────────────────

def ou_dn(path: tuple[str, ...]) -> str:
    return ",".join([*(f"OU={name}" for name in reversed(path)), PEOPLE])


def group_count(users: int) -> int:
    return max(10, users // 20)


def group_dn(index: int) -> str:
    return f"CN=grp-{index:06d},{GROUPS}"


def account(number: int) -> str:
    return f"b{number:07d}"


def user_ou(number: int) -> tuple[str, ...]:
    return OUS[(number * 7919) % len(OUS)]


def user_cn(number: int) -> str:
    return f"{GIVEN[number % len(GIVEN)]} {SURNAMES[(number // len(GIVEN)) % len(SURNAMES)]} {number}"


def user_dn(number: int, ou: tuple[str, ...] | None = None) -> str:
    from ldap3.utils.dn import escape_rdn

    return f"CN={escape_rdn(user_cn(number))},{ou_dn(ou if ou is not None else user_ou(number))}"


def user_attributes(number: int, rng: random.Random) -> dict:
    given = GIVEN[number % len(GIVEN)]
    surname = SURNAMES[(number // len(GIVEN)) % len(SURNAMES)]
    disabled = number % 100 == 3  # 1% disabled
    attributes = {
        "sAMAccountName": account(number),
        "userPrincipalName": f"{account(number)}@{MAIL_DOMAIN}",
        "givenName": given,
        "sn": surname,
        "displayName": f"{given} {surname} ({number})",
        "title": rng.choice(TITLES),
        "department": user_ou(number)[0],
        "userAccountControl": str(UF_NORMAL_ACCOUNT | UF_PASSWD_NOTREQD | (UF_ACCOUNTDISABLE if disabled else 0)),
    }
    if number % 50 != 7:  # 2% without an email address
        attributes["mail"] = f"{account(number)}@{MAIL_DOMAIN}"
    return attributes


def memberships(users: int, seed: int) -> tuple[list[list[int]], dict[int, tuple[int, ...]]]:
    """Direct groups per user (the first N/5 users, at most 20,000, in group 0) and the nesting."""
    rng = random.Random(seed)
    groups = group_count(users)
    big = min(BIG_GROUP_MEMBERS, max(1, users // 5))
    result = []
    for number in range(users):
        mine = {0} if number < big else set()
        while len(mine) < MEMBERSHIPS_PER_USER:
            mine.add(rng.randrange(1, groups))
        result.append(sorted(mine))
    nested = {parent: tuple(c for c in range(parent + 1, parent + 4) if c < groups) for parent in range(10, groups, 10)}
    return result, nested


def connect() -> Connection:
    """Plain LDAP on loopback as the domain Administrator (the fixture allows simple binds without TLS)."""
    return Connection(Server(HOST, port=389, get_info=NONE), ADMIN_DN, ADMIN_PASSWORD, authentication=SIMPLE,
                      auto_bind=True, raise_exceptions=False, receive_timeout=600)


def check(conn: Connection, ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"samba bench: {what} failed: {conn.result}")


def load(users: int, seed: int) -> dict:
    """N users, then the groups with their member values, all over LDAP; seconds and rate."""
    conn = connect()
    rng = random.Random(seed + 1)
    started = time.monotonic()
    for dn, name in [(BENCH, "Bench"), (PEOPLE, "People"), (GROUPS, "Groups")]:
        check(conn, conn.add(dn, ["top", "organizationalUnit"], {"ou": name}), f"adding {dn}")
    done: set[tuple[str, ...]] = set()
    for path in OUS:
        for depth in range(1, len(path) + 1):
            if path[:depth] not in done:
                done.add(path[:depth])
                check(conn, conn.add(ou_dn(path[:depth]), ["top", "organizationalUnit"], {"ou": path[depth - 1]}),
                      f"adding OU {path[:depth]}")
    last = time.monotonic()
    per_thousand: list[float] = []
    for number in range(users):
        dn = user_dn(number)
        check(conn, conn.add(dn, ["top", "person", "organizationalPerson", "user"], user_attributes(number, rng)),
              f"adding {dn}")
        if (number + 1) % 1000 == 0:
            now = time.monotonic()
            print(f"samba bench: {number + 1} users loaded ({now - last:.1f}s for the last 1,000)", file=sys.stderr)
            per_thousand.append(round(now - last, 2))
            last = now
    users_done = time.monotonic()
    groups = group_count(users)
    direct, nested = memberships(users, seed)
    members: list[list[str]] = [[] for _ in range(groups)]
    for number, indexes in enumerate(direct):
        for index in indexes:
            members[index].append(user_dn(number))
    for index in reversed(range(groups)):  # children (higher indexes) exist before the groups nesting them
        values = members[index] + [group_dn(child) for child in nested.get(index, ())]
        attributes = {"sAMAccountName": f"grp-{index:06d}",
                      "description": "Everyone in the big group" if index == 0 else f"Team {index}"}
        if values:
            attributes["member"] = values
        check(conn, conn.add(group_dn(index), ["top", "group"], attributes), f"adding group {index}")
        if index % 1000 == 0:
            print(f"samba bench: {groups - index} groups loaded ({time.monotonic() - users_done:.1f}s)",
                  file=sys.stderr)
    finished = time.monotonic()
    conn.unbind()
    seconds = finished - started
    return {
        "users": users, "groups": groups, "nested_groups": sum(map(len, nested.values())),
        "member_values": sum(len(m) for m in members) + sum(map(len, nested.values())),
        "load_s": round(seconds, 1), "users_s": round(users_done - started, 1),
        "groups_s": round(finished - users_done, 1),
        "s_per_1000_users": round(seconds / users * 1000, 1),
        "users_only_s_per_1000": round((users_done - started) / users * 1000, 1),
        "users_s_each_1000": per_thousand,  # does an add get slower as the database grows?
    }


def churn(users: int, seed: int, share: float = 0.01) -> dict[str, int]:
    """`share` of N changes over LDAP, in generate.churn_ldif's proportions; how many of each kind."""
    direct, _ = memberships(users, seed)
    groups = group_count(users)
    rng = random.Random(seed + 2)
    total = max(10, int(users * share))
    kinds = {"modify": 0.40, "disable": 0.15, "delete": 0.10, "hire": 0.15, "move": 0.10, "group": 0.10}
    counts = {kind: round(total * weight) for kind, weight in kinds.items()}
    done = dict.fromkeys(counts, 0)
    touched: set[int] = set()
    conn = connect()

    def someone() -> int:
        while True:
            number = rng.randrange(users)
            if number not in touched:
                touched.add(number)
                return number

    for _ in range(counts["modify"]):
        number = someone()
        check(conn, conn.modify(user_dn(number), {"title": [(MODIFY_REPLACE, [f"{rng.choice(TITLES)} II"])],
                                                  "displayName": [(MODIFY_REPLACE, [f"Renamed Person {number}"])]}),
              f"editing {number}")
        done["modify"] += 1
    for _ in range(counts["disable"]):
        number = someone()
        if number % 100 == 3:
            continue  # already disabled
        flags = UF_NORMAL_ACCOUNT | UF_PASSWD_NOTREQD | UF_ACCOUNTDISABLE
        check(conn, conn.modify(user_dn(number), {"userAccountControl": [(MODIFY_REPLACE, [str(flags)])]}),
              f"disabling {number}")
        done["disable"] += 1
    for _ in range(counts["delete"]):
        number = someone()
        check(conn, conn.delete(user_dn(number)), f"deleting {number}")
        done["delete"] += 1
    for offset in range(counts["hire"]):
        number = users + offset
        check(conn, conn.add(user_dn(number), ["top", "person", "organizationalPerson", "user"],
                             user_attributes(number, rng)), f"hiring {number}")
        for index in sorted({rng.randrange(1, groups) for _ in range(3)}):
            check(conn, conn.modify(group_dn(index), {"member": [(MODIFY_ADD, [user_dn(number)])]}),
                  f"adding {number} to group {index}")
        done["hire"] += 1
    for _ in range(counts["move"]):
        number = someone()
        target = OUS[(OUS.index(user_ou(number)) + 1) % len(OUS)]
        from ldap3.utils.dn import escape_rdn

        check(conn, conn.modify_dn(user_dn(number), f"CN={escape_rdn(user_cn(number))}", new_superior=ou_dn(target)),
              f"moving {number}")
        done["move"] += 1
    for _ in range(counts["group"]):
        number = someone()
        current = set(direct[number])
        leave = rng.choice(sorted(current - {0}))
        join = next(i for i in (rng.randrange(1, groups) for _ in range(100)) if i not in current)
        check(conn, conn.modify(group_dn(leave), {"member": [(MODIFY_DELETE, [user_dn(number)])]}),
              f"{number} leaving group {leave}")
        check(conn, conn.modify(group_dn(join), {"member": [(MODIFY_ADD, [user_dn(number)])]}),
              f"{number} joining group {join}")
        done["group"] += 1
    conn.unbind()
    return done


# ── measuring: bench/harness.py's, plus the DC's own CPU ──────────────────────────────────────────

def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system, with waited-for children's) of every process in a process group: the
    DC runs in its own session (the fixture starts it with start_new_session), its pid is the group's id."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def write_policies(folder: Path) -> tuple[Path, Path]:
    """The same policy twice on one store, the second reading deltas."""
    body = f"""\
version: 1
directories:
  corp:
    kind: active-directory
    urls: [ldap://{HOST}]
    bind: {{user: '{ADMIN_DN}', password: '${{{PASSWORD_ENV}}}'}}   # may list CN=Deleted Objects
    tls: {{start_tls: false}}
    allow_insecure_bind: true   # loopback only: TLS would measure OpenSSL, not the read
    page_size: 1000
    timeouts: {{connect: 10, operation: 600}}
    users: {{search_bases: ['{PEOPLE}'], filter: '(&(objectClass=user)(!(objectClass=computer)))'}}
    groups: {{search_bases: ['{GROUPS}']}}
{{delta}}mapping:
  email: ['{{mail}}']
  display_name: '{{displayName}}'
  attributes: {{department: '{{department}}', title: '{{title}}'}}
placement: {{mode: ou-teams, root: Bench}}
lifecycle: {{when_out_of_scope: deactivate, when_disabled: deactivate}}
safety: {{max_creates: null, max_updates: null, max_deactivations: null, max_deletions: null}}
store: {{kind: sqlite, path: store.db}}
"""
    full, delta = folder / "full.yaml", folder / "delta.yaml"
    full.write_text(body.replace("{delta}", ""))
    delta.write_text(body.replace("{delta}", "    delta: {full_read_every: 1d}\n"))
    return full, delta


def plan_document(path: Path) -> dict:
    return json.loads(path.read_text())


def state_bytes(store: Path) -> dict[str, int]:
    """Bytes kept per row of directory_sync: the directory's delta state, and `<plan>`, the kept plan."""
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT directory, length(state) FROM directory_sync ORDER BY directory"))


def without_kept_plan(store: Path) -> None:
    """The store with its delta state but not the plan the last apply kept (`plan.steady.KEY`)."""
    from reconciler.plan.steady import KEY

    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM directory_sync WHERE directory = ?", (KEY,))


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    samba = subprocess.run(["samba", "-V"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "samba": samba}


# ── the round ──────────────────────────────────────────────────────────────────────────────

def run(users: int, rounds: int, workdir: Path, seed: int, sync: bool = False) -> dict:
    load_before = os.getloadavg()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    server = BenchSambaDC(workdir / "samba", make_tls(workdir / "tls"), sync=sync)
    (workdir / "samba").mkdir()
    try:
        server.start()
        print(f"samba bench: DC provisioned and started in {server.started_in:.1f}s "
              f"({', '.join(f'{k} {v:.1f}s' for k, v in server.timings.items())})", file=sys.stderr)
        loaded = {**load(users, seed), "ldb_nosync": not sync}
        print(f"samba bench: {users} users, {loaded['groups']} groups loaded in {loaded['load_s']}s "
              f"({loaded['s_per_1000_users']}s per 1,000 users)", file=sys.stderr)
        result = measure_all(users, rounds, workdir, seed, server.process.pid)
        result["load"] = loaded
        result["server_start"] = {k: round(v, 1) for k, v in server.timings.items()}
        result["machine"] = {**machine(), "load_before": load_before, "load_after": os.getloadavg()}
        return result
    finally:
        server.stop()


def measure_all(users: int, rounds: int, workdir: Path, seed: int, server_pgid: int) -> dict:
    env = {**os.environ, PASSWORD_ENV: ADMIN_PASSWORD, "PYTHONPATH": str(ROOT)}
    folder = workdir / "policy"
    folder.mkdir()
    full, delta = write_policies(folder)
    store = folder / "store.db"
    reconciler = [sys.executable, "-m", "reconciler"]
    timings = workdir / "timings.json"
    samples: dict[str, list[Sample]] = {}
    reads: dict[str, list] = {}

    def record(name: str, command: list[str], plan: Path | None = None) -> None:
        before = group_cpu(server_pgid)
        sample = measure([*reconciler, *command], env, timings=timings)
        sample.server_cpu = group_cpu(server_pgid) - before
        samples.setdefault(name, []).append(sample)
        if plan is not None:
            reads[name] = plan_document(plan).get("reads") or []
        note = "; ".join(f"{r['kind']} ({r.get('reason')})" for r in reads.get(name, [])) if plan else ""
        print(f"samba bench: {name:<32} {sample.wall:7.2f}s wall {sample.cpu:7.2f}s cpu {sample.rss_mb:7.1f} MB "
              f"{sample.server_cpu:6.2f}s server cpu"
              f"{'  ' + note if note else ''}", file=sys.stderr)

    imported, scratch = folder / "plan-import.json", folder / "plan-scratch.json"
    full_churn, delta_churn = folder / "plan-full-churn.json", folder / "plan-delta-churn.json"
    record("plan_import", ["plan", str(full), "--out", str(imported)], imported)
    record("apply_import", ["apply", "--plan", str(imported), "--auto-approve", "--quiet"])
    record("apply_delta_keep", ["apply", str(delta), "--auto-approve", "--quiet"])
    for _ in range(rounds):
        record("plan_delta_nochange", ["plan", str(delta), "--out", str(scratch)], scratch)
    kept = workdir / "store-kept.db"
    copy_store(store, kept)

    started = time.monotonic()
    churn_counts = churn(users, seed)
    churn_s = time.monotonic() - started
    print(f"samba bench: churn {churn_counts} in {churn_s:.1f}s", file=sys.stderr)

    for _ in range(rounds):
        copy_store(kept, store)
        record("plan_full_churn", ["plan", str(full), "--out", str(full_churn)], full_churn)
    for _ in range(rounds):
        copy_store(kept, store)
        record("plan_delta_churn", ["plan", str(delta), "--out", str(delta_churn)], delta_churn)
    # the same delta from a store that keeps no plan: with one (the last apply changed nothing), `plan` first
    # asks only for changes and, finding some, discards that read and reads again (see the report)
    for _ in range(rounds):
        copy_store(kept, store)
        without_kept_plan(store)
        record("plan_delta_churn_no_kept_plan", ["plan", str(delta), "--out", str(scratch)], scratch)
    same_without = plan_document(scratch)["changes"] == plan_document(delta_churn)["changes"]
    copy_store(kept, store)
    by_full, by_delta = plan_document(full_churn), plan_document(delta_churn)
    same_changes = by_full["changes"] == by_delta["changes"]
    same_summary = by_full.get("summary") == by_delta.get("summary")
    record("apply_delta_churn", ["apply", "--plan", str(delta_churn), "--auto-approve", "--quiet"])
    record("plan_delta_first_after_churn", ["plan", str(delta), "--out", str(scratch)], scratch)
    first_after = plan_document(scratch)
    record("apply_delta_nochange", ["apply", str(delta), "--auto-approve", "--quiet"])
    for _ in range(rounds):
        record("plan_delta_nochange_after_churn", ["plan", str(delta), "--out", str(scratch)], scratch)

    figures = {name: median_of(s) for name, s in samples.items()}

    def ratio(a: str, b: str, field: str) -> float | None:
        return round(figures[a][field] / figures[b][field], 3) if figures[b][field] else None

    return {
        "users": users,
        "groups": group_count(users),
        "rounds": rounds,
        "seed": seed,
        "churn": {"counts": churn_counts, "seconds": round(churn_s, 1)},
        "churn_plan_summary": by_full.get("summary"),
        "churn_plan_changes": len(by_full["changes"]),
        "delta": {
            # the delta plan of the churn has exactly the full-read plan's changes (else its figures mean nothing)
            "same_changes_as_full_read": same_changes,
            "same_summary_as_full_read": same_summary,
            "same_changes_without_kept_plan": same_without,
            "first_plan_after_churn_apply_changes": len(first_after["changes"]),
            "state_bytes": state_bytes(kept),
            "reads": reads,  # each plan step's read notes (last round): kind, reason, records changed
        },
        "figures": figures,
        "ratios": {
            "delta_churn_vs_full_churn_cpu": ratio("plan_delta_churn", "plan_full_churn", "cpu_s"),
            "delta_churn_vs_full_churn_wall": ratio("plan_delta_churn", "plan_full_churn", "wall_s"),
            "delta_nochange_vs_full_churn_cpu": ratio("plan_delta_nochange_after_churn", "plan_full_churn", "cpu_s"),
            "delta_first_after_churn_vs_full_churn_cpu": ratio("plan_delta_first_after_churn", "plan_full_churn",
                                                               "cpu_s"),
            "delta_churn_vs_full_churn_server_cpu": ratio("plan_delta_churn", "plan_full_churn", "server_cpu_s"),
            "delta_churn_vs_full_churn_peak_rss": ratio("plan_delta_churn", "plan_full_churn", "peak_rss_mb"),
            "delta_churn_no_kept_plan_vs_full_churn_cpu": ratio("plan_delta_churn_no_kept_plan", "plan_full_churn",
                                                                "cpu_s"),
            "delta_churn_no_kept_plan_vs_full_churn_server_cpu": ratio("plan_delta_churn_no_kept_plan",
                                                                       "plan_full_churn", "server_cpu_s"),
            "delta_churn_no_kept_plan_vs_full_churn_peak_rss": ratio("plan_delta_churn_no_kept_plan",
                                                                     "plan_full_churn", "peak_rss_mb"),
        },
    }


def table(result: dict) -> str:
    m, loaded = result["machine"], result["load"]
    lines = [f"Samba AD DC ({m['samba']}): {result['users']:,} users, {result['groups']:,} groups, "
             f"median of {result['rounds']} rounds ({m['nproc']} cores, load before/after "
             f"{m['load_before'][0]:.2f}/{m['load_after'][0]:.2f})",
             f"load over LDAP{' (ldb:nosync)' if loaded['ldb_nosync'] else ''}: {loaded['load_s']}s "
             f"({loaded['s_per_1000_users']}s per 1,000 users; users alone "
             f"{loaded['users_only_s_per_1000']}s per 1,000)",
             f"churn: {result['churn']['counts']}; delta plan's changes == full plan's: "
             f"{result['delta']['same_changes_as_full_read']} (without a kept plan: "
             f"{result['delta']['same_changes_without_kept_plan']})",
             f"{'step':<33}{'wall s':>8}{'cpu s':>8}{'peak MB':>9}{'DC cpu s':>10}  stages (s)"]
    for name, f in result["figures"].items():
        stages = " ".join(f"{k} {v:.2f}" for k, v in (f.get("stages_s") or {}).items())
        lines.append(f"{name:<33}{f['wall_s']:>8.2f}{f['cpu_s']:>8.2f}{f['peak_rss_mb']:>9.0f}"
                     f"{f.get('server_cpu_s', float('nan')):>10.2f}  {stages}")
    lines.append("ratios: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.samba_delta", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="where the DC and the store go (default /tmp/reconciler-samba-N)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--sync", action="store_true",
                        help="the fixture's config as is (fsync at every write: the load is ~10x slower)")
    args = parser.parse_args(argv)
    result = run(args.users, args.rounds, args.workdir or Path(f"/tmp/reconciler-samba-{args.users}"), args.seed,
                 args.sync)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
