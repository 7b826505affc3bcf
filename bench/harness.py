"""The benchmark: reconciler's plan and apply against the raw reads of the same directory.

One run (see bench/README.md):
1. generate the synthetic directory (bench/generate.py) and load it with slapadd
   into a private slapd on loopback (a sibling of the test fixture, tests/servers/slapd.py);
2. rounds × [plan against an empty store, apply of that plan into SQLite];
3. 1% churn through ldapmodify;
4. rounds × [ldapsearch floor, python-ldap read, stock ldap3 read, plan, apply];
every step a subprocess whose wall time, CPU time and peak RSS (wait4's rusage)
are recorded; medians over the rounds; the plan's stages from RECONCILER_TIMINGS.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import generate  # noqa: E402
from tests.servers.slapd import ADMIN_PASSWORD, Slapd  # noqa: E402
from tests.servers.tls import make_tls  # noqa: E402
from tests.servers import wait_until  # noqa: E402

PASSWORD_ENV = "BENCH_BIND_PASSWORD"
STAGES = ("read", "desired", "store_read", "diff", "render")


class BenchSlapd(Slapd):
    """The test fixture's slapd (same config: mdb, memberof, ppolicy, limits), loaded with slapadd
    before it starts instead of seeded over LDAP, which would take hours at a million entries."""

    def __init__(self, workdir: Path, users: int = 100_000):
        # syncprov for the delta round, with a session log that holds the churn (1% of the users, a few operations
        # each): deletions then arrive as a list, not as the present set of every uuid
        super().__init__(workdir, make_tls(workdir / "tls"), suffix=generate.SUFFIX, mail_domain=generate.MAIL_DOMAIN,
                         syncprov=True, sessionlog=max(10_000, users // 10))

    def config(self) -> str:
        # the fixture's 100 MB map holds a test population, not a million people; mdb maps it sparsely
        return super().config().replace("maxsize 104857600", "maxsize 17179869184")

    def load(self, ldif: Path) -> float:
        started = time.monotonic()
        db = self.workdir / "db"
        shutil.rmtree(db, ignore_errors=True)
        db.mkdir(parents=True)
        config = self.workdir / "slapd.conf"
        config.write_text(self.config())
        # -w: the suffix gets its contextCSN, which a delta read's first cookie is made from
        subprocess.run(["slapadd", "-q", "-w", "-f", str(config), "-l", str(ldif)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return time.monotonic() - started

    def serve(self) -> "BenchSlapd":
        log = open(self.log_file, "ab")
        urls = f"{self.connection.ldap_url}/"
        self.process = subprocess.Popen(
            ["slapd", "-f", str(self.workdir / "slapd.conf"), "-h", urls, "-d", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        wait_until(self._bound_admin, 60, "bench slapd", self.process, self.log_file)
        return self


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    stages: dict[str, float] | None = None
    server_cpu: float | None = None  # the directory server's CPU seconds during the step, where it is measured


def measure(command: list[str], env: dict[str, str], stdout=subprocess.DEVNULL, timings: Path | None = None) -> Sample:
    """Runs `command` to completion under GNU time, which reports the CPU time and peak RSS of what it forks.

    Not wait4 on our own child: Linux carries a parent's RSS high-water mark into a forked child
    across exec, so every child of this (large) Python process would report at least its size.
    """
    if timings is not None:
        timings.unlink(missing_ok=True)
        env = {**env, "RECONCILER_TIMINGS": str(timings)}
    usage = Path(env.get("TMPDIR", "/tmp")) / f"bench-usage-{os.getpid()}.txt"
    started = time.perf_counter()
    process = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", str(usage), *command], env=env,
                             stdout=stdout, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command[:4])} ... exited {process.returncode}:\n"
                         f"{process.stderr.decode(errors='replace')[-3000:]}")
    user, system, peak_kb = usage.read_text().split()[-3:]
    stages = json.loads(timings.read_text()) if timings is not None and timings.exists() else None
    return Sample(wall, float(user) + float(system), int(peak_kb) / 1024, stages)


def median_of(samples: list[Sample]) -> dict:
    figures = {
        "wall_s": round(statistics.median(s.wall for s in samples), 3),
        "cpu_s": round(statistics.median(s.cpu for s in samples), 3),
        "peak_rss_mb": round(statistics.median(s.rss_mb for s in samples), 1),
        "rounds_wall_s": [round(s.wall, 3) for s in samples],
        "rounds_cpu_s": [round(s.cpu, 3) for s in samples],
    }
    if all(s.server_cpu is not None for s in samples):
        figures["server_cpu_s"] = round(statistics.median(s.server_cpu for s in samples), 2)
    if all(s.stages for s in samples):
        figures["stages_s"] = {name: round(statistics.median(s.stages.get(name, 0.0) for s in samples), 3)
                               for name in samples[0].stages}
    return figures


def write_policy(folder: Path, server: BenchSlapd, delta: bool = False) -> Path:
    """The bench policy; with `delta`, the same policy reading deltas (`policy-delta.yaml`, the same store)."""
    policy = folder / ("policy-delta.yaml" if delta else "policy.yaml")
    policy.write_text(f"""\
version: 1
directories:
  bench:
    kind: openldap
    urls: [{server.connection.ldap_url}]
    bind: {{user: '{generate.SERVICE_ACCOUNT_DN}', password: '${{{PASSWORD_ENV}}}'}}
    tls: {{start_tls: false}}
    allow_insecure_bind: true   # loopback only: TLS would measure OpenSSL, not the read
    page_size: 1000
    timeouts: {{connect: 10, operation: 600}}
    users: {{search_bases: ['{generate.PEOPLE}']}}
    groups: {{search_bases: ['{generate.GROUPS}']}}
{"    delta: {full_read_every: 1d}" if delta else ""}
mapping:
  email: ['{{mail}}']
  display_name: '{{displayName}}'
  attributes: {{department: '{{departmentNumber}}', title: '{{title}}'}}
placement: {{mode: ou-teams, root: Bench}}
lifecycle: {{when_out_of_scope: deactivate, when_disabled: deactivate}}
safety: {{max_creates: null, max_updates: null, max_deactivations: null, max_deletions: null}}
store: {{kind: sqlite, path: store.db}}
""")
    return policy


def searches(policy: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """The searches the plan makes, with the attributes it asks for: what every reader must read too."""
    from reconciler.directory.ldap.source import LiveSource
    from reconciler.policy import load_policy

    directory = load_policy(str(policy)).directories[0]
    source = LiveSource(directory)
    return [(base, directory.users.filter, source.user_attributes()) for base in directory.users.search_bases] + \
           [(base, directory.groups.filter, source.group_attributes()) for base in directory.groups.search_bases]


def reader_commands(server: BenchSlapd, wanted: list[tuple[str, str, tuple[str, ...]]]) -> dict[str, list[str]]:
    url = server.connection.ldap_url
    bind = generate.SERVICE_ACCOUNT_DN
    floor = " && ".join(
        f"ldapsearch -LLL -x -H {url} -D '{bind}' -w \"${PASSWORD_ENV}\" -b '{base}' -E pr=1000/noprompt "
        f"'{ldap_filter}' {' '.join(attributes)} > /dev/null"
        for base, ldap_filter, attributes in wanted
    )
    python_args = ["--url", url, "--bind", bind]
    for base, ldap_filter, attributes in wanted:
        python_args += ["--base", base, "--filter", ldap_filter, "--attrs", ",".join(attributes)]
    return {
        "ldapsearch": ["sh", "-c", floor],
        "python_ldap": [sys.executable, "-m", "bench.readers", "python-ldap", *python_args],
        "ldap3_stock": [sys.executable, "-m", "bench.readers", "ldap3", *python_args],
    }


def copy_store(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")


def _changes(plan: Path) -> list | None:
    return json.loads(plan.read_text())["changes"] if plan.exists() else None


def _state_bytes(store: Path) -> int | None:
    import sqlite3

    with sqlite3.connect(store) as db:
        row = db.execute("SELECT sum(length(state)) FROM directory_sync").fetchone()
    return row[0] if row else None


def reset_store(folder: Path, source: Path | None) -> None:
    for suffix in ("", "-wal", "-shm"):
        (folder / f"store.db{suffix}").unlink(missing_ok=True)
        if source is not None and Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", folder / f"store.db{suffix}")


def ensure_python_ldap() -> None:
    try:
        import ldap  # noqa: F401
    except ImportError:
        print("bench: installing python-ldap for the reference read (needs libldap2-dev libsasl2-dev)", file=sys.stderr)
        if shutil.which("apt-get") and os.geteuid() == 0:
            subprocess.run(["apt-get", "install", "-y", "-qq", "libldap2-dev", "libsasl2-dev"], check=True,
                           stdout=subprocess.DEVNULL)
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "python-ldap"])
        if result.returncode != 0:
            raise SystemExit("bench: python-ldap could not be installed; install libldap2-dev and libsasl2-dev "
                             "(Debian) and run: pip install python-ldap")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    slapd_version = subprocess.run(["slapd", "-VV"], capture_output=True, text=True).stderr.splitlines()[:1]
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "slapd": slapd_version[0].strip() if slapd_version else "?"}


def run(users: int, rounds: int, workdir: Path, seed: int, skip_references: bool = False) -> dict:
    load_before = os.getloadavg()  # other work on the machine skews wall times: reported next to them
    ensure_python_ldap()
    workdir.mkdir(parents=True, exist_ok=True)
    ldif, churn = workdir / f"directory-{users}-{seed}.ldif", workdir / f"churn-{users}-{seed}.ldif"
    started = time.monotonic()
    with open(ldif, "w", encoding="utf-8") as out:
        generate.write_ldif(out, users, seed)
    with open(churn, "w", encoding="utf-8") as out:
        churn_counts = generate.churn_ldif(out, users, seed)
    generated = time.monotonic() - started
    server = BenchSlapd(workdir / "slapd", users)
    loaded = server.load(ldif)
    print(f"bench: {users} users, {generate.group_count(users)} groups generated in {generated:.1f}s, "
          f"slapadd {loaded:.1f}s", file=sys.stderr)
    server.serve()
    try:
        result = _measure_all(server, users, rounds, workdir, churn, churn_counts, skip_references,
                              {"generate_s": round(generated, 1), "slapadd_s": round(loaded, 1)})
        result["machine"]["load_before"] = load_before
        return result
    finally:
        server.stop()


def _measure_all(server, users, rounds, workdir, churn, churn_counts, skip_references, setup) -> dict:
    env = {**os.environ, PASSWORD_ENV: generate.SERVICE_PASSWORD, "PYTHONPATH": str(ROOT)}
    folder = workdir / "policy"
    folder.mkdir(exist_ok=True)
    policy = write_policy(folder, server)
    reconciler = [sys.executable, "-m", "reconciler"]
    timings = workdir / "timings.json"
    samples: dict[str, list[Sample]] = {}

    def record(name: str, sample: Sample) -> None:
        samples.setdefault(name, []).append(sample)
        print(f"bench: {name:<14} {sample.wall:7.2f}s wall {sample.cpu:7.2f}s cpu {sample.rss_mb:7.1f} MB",
              file=sys.stderr)

    initial, after_churn = folder / "plan-initial.json", folder / "plan-churn.json"
    for _ in range(rounds):
        reset_store(folder, None)
        record("plan_initial", measure([*reconciler, "plan", str(policy), "--out", str(initial)], env,
                                       timings=timings))
        record("apply_initial", measure([*reconciler, "apply", "--plan", str(initial), "--auto-approve"], env))
    imported = workdir / "store-initial.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{imported}{suffix}").unlink(missing_ok=True)
        if (folder / f"store.db{suffix}").exists():
            shutil.copy(folder / f"store.db{suffix}", f"{imported}{suffix}")
    # the delta round's start: the imported store with a kept state (a full read, then an apply that changes
    # nothing but keeps the state), and a delta plan with nothing changed in the directory
    delta_policy = write_policy(folder, server, delta=True)
    delta_first, delta_churn, scratch = folder / "plan-delta-first.json", folder / "plan-delta-churn.json", folder / "plan-scratch.json"
    reset_store(folder, imported)
    record("plan_delta_full", measure([*reconciler, "plan", str(delta_policy), "--out", str(delta_first)], env,
                                      timings=timings))
    record("apply_delta_full", measure([*reconciler, "apply", "--plan", str(delta_first), "--auto-approve"], env))
    kept = workdir / "store-delta.db"
    copy_store(folder / "store.db", kept)
    for _ in range(rounds):
        record("plan_delta_nochange", measure([*reconciler, "plan", str(delta_policy), "--out", str(scratch)], env,
                                              timings=timings))
    subprocess.run(["ldapmodify", "-x", "-c", "-H", server.connection.ldap_url, "-D",
                    server.connection.extra["admin_dn"], "-w", ADMIN_PASSWORD, "-f", str(churn)],
                   check=True, stdout=subprocess.DEVNULL)
    readers = reader_commands(server, searches(policy))
    for _ in range(rounds):
        if not skip_references:
            for name, command in readers.items():
                record(name, measure(command, env))
        reset_store(folder, imported)
        record("plan_churn", measure([*reconciler, "plan", str(policy), "--out", str(after_churn)], env,
                                     timings=timings))
        record("apply_churn", measure([*reconciler, "apply", "--plan", str(after_churn), "--auto-approve"], env))
    for _ in range(rounds):  # the churn as a delta from the state kept before it
        reset_store(folder, kept)
        record("plan_delta_churn", measure([*reconciler, "plan", str(delta_policy), "--out", str(delta_churn)], env,
                                           timings=timings))
    same_changes = _changes(delta_churn) == _changes(after_churn)
    record("apply_delta_churn", measure([*reconciler, "apply", "--plan", str(delta_churn), "--auto-approve"], env))
    # the next hourly run: nothing changed since that apply, which changed the store, so no plan was kept: the
    # plan is made from the kept records (a delta with nothing in it); its apply changes nothing and keeps it
    record("plan_delta_first_after_churn", measure([*reconciler, "plan", str(delta_policy), "--out", str(scratch)],
                                                   env, timings=timings))
    record("apply_delta_nochange", measure([*reconciler, "apply", str(delta_policy), "--auto-approve", "--quiet"], env))
    for _ in range(rounds):  # and every hourly run after it, while nothing changes
        record("plan_delta_nochange_after_churn", measure([*reconciler, "plan", str(delta_policy), "--out", str(scratch)],
                                                          env, timings=timings))
    reads = json.loads(delta_churn.read_text()).get("reads")
    figures = {name: median_of(s) for name, s in samples.items()}
    plan_summary = json.loads(after_churn.read_text()).get("summary") if after_churn.exists() else None
    return {
        "users": users,
        "groups": generate.group_count(users),
        "rounds": rounds,
        "churn": churn_counts,
        "churn_plan_summary": plan_summary,
        # the delta plan of the churn has exactly the full-read plan's changes (else the delta figures mean nothing)
        "delta": {"same_changes_as_full_read": same_changes, "reads": reads,
                  "state_bytes": _state_bytes(kept)},
        "setup": setup,
        "machine": {**machine(), "load_after": os.getloadavg()},  # load_before: added by run()
        "figures": figures,
        "ratios": ratios(figures),
    }


def ratios(figures: dict) -> dict:
    def ratio(a: str, b: str, field: str = "wall_s") -> float | None:
        if a in figures and b in figures and figures[b][field]:
            return round(figures[a][field] / figures[b][field], 2)
        return None

    plan = figures.get("plan_churn", {})
    stages = plan.get("stages_s") or {}
    return {
        "plan_vs_python_ldap": ratio("plan_churn", "python_ldap"),
        "plan_vs_ldap3": ratio("plan_churn", "ldap3_stock"),
        "plan_vs_ldapsearch": ratio("plan_churn", "ldapsearch"),
        "python_ldap_vs_ldapsearch": ratio("python_ldap", "ldapsearch"),
        "apply_initial_vs_plan_initial": ratio("apply_initial", "plan_initial"),
        # issue 11's bar: the first plan (every user a create) at most 1.3x the 1%-churn plan; rendering never dominates
        "first_plan_vs_churn_plan": ratio("plan_initial", "plan_churn"),
        "first_plan_render_s": (figures.get("plan_initial", {}).get("stages_s") or {}).get("render"),
        # issue 14: a delta of the churn, and one with nothing changed, against the full-read churn plan
        "delta_churn_vs_full_churn": ratio("plan_delta_churn", "plan_churn"),
        "delta_nochange_vs_full_churn": ratio("plan_delta_nochange_after_churn", "plan_churn"),
        "diff_share_of_plan": round(stages["diff"] / plan["wall_s"], 3) if "diff" in stages and plan else None,
        "stage_share_of_plan": {k: round(v / plan["wall_s"], 3) for k, v in stages.items()} if plan else None,
    }


def table(result: dict) -> str:
    machine_info = result["machine"]
    lines = [f"{result['users']:,} users, {result['groups']:,} groups, median of {result['rounds']} rounds "
             f"({machine_info['nproc']} cores, {machine_info['cpu']}, load before/after "
             f"{machine_info['load_before'][0]:.2f}/{machine_info['load_after'][0]:.2f})",
             f"{'step':<16}{'wall s':>9}{'cpu s':>9}{'peak MB':>9}  stages (s)"]
    for name, f in result["figures"].items():
        stages = " ".join(f"{k} {v:.2f}" for k, v in (f.get("stages_s") or {}).items())
        lines.append(f"{name:<16}{f['wall_s']:>9.2f}{f['cpu_s']:>9.2f}{f['peak_rss_mb']:>9.0f}  {stages}")
    lines.append("ratios: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items() if not isinstance(v, dict)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="where the LDIF, slapd and store go (default /tmp/reconciler-bench-N)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--skip-references", action="store_true", help="measure only reconciler (quicker while tuning)")
    parser.add_argument("--scale-from", type=Path, metavar="JSON",
                        help="a smaller run's --json: adds ratios.plan_scaling (this plan's wall / that plan's)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(f"/tmp/reconciler-bench-{args.users}")
    result = run(args.users, args.rounds, workdir, args.seed, args.skip_references)
    if args.scale_from:
        smaller = json.loads(args.scale_from.read_text())
        result["ratios"]["plan_scaling"] = {
            "users": round(result["users"] / smaller["users"], 2),
            "plan_churn_wall": round(result["figures"]["plan_churn"]["wall_s"] / smaller["figures"]["plan_churn"]["wall_s"], 2),
        }
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
