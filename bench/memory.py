"""Memory per user: where a plan's bytes go, and the plan's peak RSS before and after a change.

    python -m bench.memory setup   --users 100000 [--workdir W]   # generate, slapadd, serve, import, churn
    python -m bench.memory measure [--workdir W] [--rounds 3] [--which churn,first]
    python -m bench.memory profile [--workdir W] [--trace]        # in-process: bytes per stage and per user
    python -m bench.memory stop    [--workdir W]                  # stops the slapd `setup` started

`setup` leaves a private slapd running (the benchmark's `BenchSlapd`, bench/harness.py) with the
directory after the 1% churn, and an SQLite store holding the import of the directory before it:
`measure` then runs `reconciler plan --out` as its own process under GNU time against a copy of that
store (the churn plan) and against an empty store (the first plan; here of the churned directory,
which the harness plans before the churn: 1% more or fewer users), with RECONCILER_TIMINGS for the
stage times. It also prints a digest of each saved plan without its timestamp, so a change that must
not change behaviour can be checked to leave the plans byte-identical.

`profile` runs the plan's stages in this process and says, after each, how much memory Python holds
(tracemalloc with --trace, which slows the run; RSS from /proc otherwise) and, for the read, how its
bytes divide per user between the entry object, its attributes, its groups and its strings
(`sys.getsizeof`, each object counted once where it is first met: shared strings count once).
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import generate  # noqa: E402
from bench.harness import PASSWORD_ENV, BenchSlapd, measure as measure_command, write_policy  # noqa: E402


def _workdir(args) -> Path:
    return args.workdir or Path(f"/tmp/reconciler-memory-{args.users}")


def _state(workdir: Path) -> dict:
    return json.loads((workdir / "state.json").read_text())


def _env(state: dict) -> dict[str, str]:
    return {**os.environ, PASSWORD_ENV: generate.SERVICE_PASSWORD, "PYTHONPATH": str(ROOT)}


def setup(args) -> None:
    from tests.servers.slapd import ADMIN_PASSWORD

    workdir = _workdir(args)
    workdir.mkdir(parents=True, exist_ok=True)
    ldif, churn = workdir / "directory.ldif", workdir / "churn.ldif"
    started = time.monotonic()
    with open(ldif, "w", encoding="utf-8") as out:
        generate.write_ldif(out, args.users, args.seed)
    with open(churn, "w", encoding="utf-8") as out:
        generate.churn_ldif(out, args.users, args.seed)
    server = BenchSlapd(workdir / "slapd")
    loaded = server.load(ldif)
    print(f"memory: generated in {time.monotonic() - started - loaded:.1f}s, slapadd {loaded:.1f}s", file=sys.stderr)
    server.serve()
    folder = workdir / "policy"
    folder.mkdir(exist_ok=True)
    policy = write_policy(folder, server)
    state = {"users": args.users, "policy": str(policy), "slapd_pid": server.process.pid,
             "url": server.connection.ldap_url}
    (workdir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    env = _env(state)
    _reset_store(folder, None)
    reconciler = [sys.executable, "-m", "reconciler"]
    initial = folder / "plan-initial.json"
    sample = measure_command([*reconciler, "plan", str(policy), "--out", str(initial)], env)
    print(f"memory: first plan (before the churn) {sample.wall:.2f}s {sample.rss_mb:.0f} MB", file=sys.stderr)
    sample = measure_command([*reconciler, "apply", "--plan", str(initial), "--auto-approve"], env)
    print(f"memory: import {sample.wall:.2f}s {sample.rss_mb:.0f} MB", file=sys.stderr)
    for suffix in ("", "-wal", "-shm"):
        if (folder / f"store.db{suffix}").exists():
            shutil.copy(folder / f"store.db{suffix}", workdir / f"store-initial.db{suffix}")
    subprocess.run(["ldapmodify", "-x", "-c", "-H", server.connection.ldap_url, "-D",
                    server.connection.extra["admin_dn"], "-w", ADMIN_PASSWORD, "-f", str(churn)],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"memory: slapd {server.process.pid} serves {server.connection.ldap_url}; "
          f"python -m bench.memory stop --workdir {workdir}", file=sys.stderr)


def stop(args) -> None:
    state = _state(_workdir(args))
    try:
        os.kill(state["slapd_pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass


def _reset_store(folder: Path, source: Path | None) -> None:
    for suffix in ("", "-wal", "-shm"):
        (folder / f"store.db{suffix}").unlink(missing_ok=True)
        if source is not None and Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", folder / f"store.db{suffix}")


def plan_digest(path: Path) -> str:
    """sha256 of a saved plan without its timestamp (`generated_at`) and the signature over it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for line in handle:
            if b'"generated_at"' in line:
                line = b"".join(part for part in line.split(b",") if b'"generated_at"' not in part)
            digest.update(line)
    return digest.hexdigest()[:16]


def measure(args) -> None:
    workdir = _workdir(args)
    state = _state(workdir)
    env = _env(state)
    policy = Path(state["policy"])
    folder = policy.parent
    reconciler = [sys.executable, "-m", "reconciler"]
    results: dict[str, list] = {}
    for round_ in range(args.rounds):
        for which in args.which.split(","):
            _reset_store(folder, workdir / "store-initial.db" if which == "churn" else None)
            out = folder / f"plan-{which}.json"
            sample = measure_command([*reconciler, "plan", str(policy), "--out", str(out)], env,
                                     timings=workdir / "timings.json")
            digest = plan_digest(out)
            results.setdefault(which, []).append((sample, digest))
            stages = " ".join(f"{k} {v:.2f}" for k, v in (sample.stages or {}).items())
            print(f"{which:<6} round {round_ + 1}: {sample.wall:6.2f}s wall {sample.cpu:6.2f}s cpu "
                  f"{sample.rss_mb:7.1f} MB  [{stages}]  plan {digest}", flush=True)
    for which, samples in results.items():
        walls = sorted(s.wall for s, _ in samples)
        rss = sorted(s.rss_mb for s, _ in samples)
        stage_names = samples[0][0].stages or {}
        stages = {k: sorted(s.stages[k] for s, _ in samples)[len(samples) // 2] for k in stage_names}
        print(f"{which:<6} median: {walls[len(walls) // 2]:6.2f}s wall, {rss[len(rss) // 2]:7.1f} MB peak; "
              + " ".join(f"{k} {v:.2f}" for k, v in stages.items())
              + f"; plans {'identical' if len({d for _, d in samples}) == 1 else 'DIFFER'} ({samples[0][1]})")
    if args.json:
        args.json.write_text(json.dumps({which: [{"wall_s": s.wall, "cpu_s": s.cpu, "peak_rss_mb": s.rss_mb,
                                                  "stages_s": s.stages, "plan": d} for s, d in samples]
                                         for which, samples in results.items()}, indent=2) + "\n")


# ── in-process accounting ────────────────────────────────────────────────────

def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Tally:
    """Bytes by label, every object counted once (the first label it is met under wins)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bytes: dict[str, int] = {}
        self.count: dict[str, int] = {}

    def add(self, label: str, obj) -> bool:
        if id(obj) in self.seen:
            return False
        self.seen.add(id(obj))
        self.bytes[label] = self.bytes.get(label, 0) + sys.getsizeof(obj)
        self.count[label] = self.count.get(label, 0) + 1
        return True

    def deep(self, label: str, obj) -> None:
        """`obj` and everything it holds, under `label`."""
        if not self.add(label, obj):
            return
        if isinstance(obj, dict):
            for key, value in obj.items():
                self.deep(label, key)
                self.deep(label, value)
        elif isinstance(obj, (tuple, list, set, frozenset)):
            for item in obj:
                self.deep(label, item)
        elif hasattr(obj, "__slots__") and not isinstance(obj, (str, bytes)):
            for cls in type(obj).__mro__:
                for name in getattr(cls, "__slots__", ()):
                    if hasattr(obj, name):
                        self.deep(label, getattr(obj, name))
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            self.deep(label, vars(obj))

    def report(self, title: str, per: int) -> None:
        total = sum(self.bytes.values())
        print(f"\n{title}: {total / 2**20:.1f} MB, {total / max(per, 1):.0f} bytes per user")
        for label, size in sorted(self.bytes.items(), key=lambda kv: -kv[1]):
            print(f"  {label:<40}{size / 2**20:9.1f} MB{size / max(per, 1):8.0f} B/user{self.count[label]:>10,} objects")


def account_read(read) -> Tally:
    """The read's bytes per part of a user entry, and the groups."""
    tally = Tally()
    tally.add("read: users list", read.users)
    for entry in read.users:
        tally.add("entry object", entry)
        for name in ("directory", "search_base", "dn", "anchor", "account_name", "disabled"):
            tally.deep(f"entry.{name}", getattr(entry, name))
        attributes = entry.attributes
        tally.add("entry.attributes container", attributes)
        if hasattr(attributes, "_values"):  # model.Attributes: the values aligned to the read's names
            tally.add("entry.attributes value tuples", attributes._values)
            tally.deep("entry.attributes names", attributes._layout)
        for name, values in attributes.items():
            tally.deep("entry.attributes names", name)
            tally.add("entry.attributes value tuples", values)
            for value in values:
                tally.deep("entry.attributes value strings", value)
        groups = entry.groups
        tally.add("entry.groups container", groups)
        for group in groups:
            tally.deep("entry.groups DN strings", group)
        for name in ("_names", "_values", "_groups"):  # a compact entry's private parts, if any
            if hasattr(entry, name):
                tally.deep(f"entry.{name}", getattr(entry, name))
    tally.add("read: groups dict", read.groups)
    for key, group in read.groups.items():
        tally.deep("groups: keys", key)
        tally.add("groups: objects", group)
        tally.add("groups: member sets", group.members)
        for member in group.members:
            tally.deep("groups: member DN strings", member)
        for name in ("directory", "dn", "anchor", "name"):
            tally.deep("groups: strings", getattr(group, name))
    tally.deep("read: out of scope", read.out_of_scope)
    return tally


def account_desired(desired) -> Tally:
    tally = Tally()
    tally.add("desired: users dict", desired.users)
    for key, user in desired.users.items():
        tally.deep("desired: user keys", key)
        tally.add("desired: user objects", user)
        for name in ("key", "email", "display_name", "team", "source", "dn", "account_name", "placed_by", "status"):
            tally.deep(f"desired: user.{name}", getattr(user, name))
        tally.deep("desired: user.attributes", user.attributes)
        tally.deep("desired: user.links", user.links)
        tally.deep("desired: user.memberships", user.memberships)
    tally.add("desired: verdicts list", desired.verdicts)
    for verdict in desired.verdicts:
        tally.add("verdict objects", verdict)
        for name in ("directory", "dn", "anchor", "account_name", "email", "verdict", "reason", "user_key"):
            tally.deep(f"verdict.{name}", getattr(verdict, name))
    tally.deep("desired: teams", desired.teams)
    return tally


def profile(args) -> None:
    workdir = _workdir(args)
    state = _state(workdir)
    os.environ.update({PASSWORD_ENV: generate.SERVICE_PASSWORD})
    gc.disable()  # as the command runs (reconciler/cli/__init__.py)
    if args.trace:
        import tracemalloc

        tracemalloc.start()

    def mark(what: str, started: float) -> None:
        line = f"{what:<34}{time.perf_counter() - started:7.2f}s  RSS {_rss_mb():7.1f} MB  peak RSS {_peak_mb():7.1f} MB"
        if args.trace:
            current, peak = tracemalloc.get_traced_memory()
            line += f"  traced {current / 2**20:7.1f} MB, peak {peak / 2**20:7.1f} MB"
            tracemalloc.reset_peak()
        print(line, flush=True)
        if args.trace and args.top:
            top = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            for stat in top.statistics("lineno")[: args.top]:
                frame = stat.traceback[0]
                print(f"    {stat.size / 2**20:7.1f} MB {stat.count:>9,}  {frame.filename.replace(str(ROOT) + '/', '')}:{frame.lineno}")

    from reconciler.desired import build_desired_state
    from reconciler.directory import read_all
    from reconciler.pipeline import require_secrets
    from reconciler.policy import load_policy

    started = time.perf_counter()
    policy = load_policy(state["policy"])
    require_secrets(policy)
    mark("start-up and policy", started)
    started = time.perf_counter()
    reads = read_all(policy.directories)
    mark("read", started)
    users = len(reads[0].users)
    if args.account:
        account_read(reads[0]).report("the read (DirectoryRead)", users)
    started = time.perf_counter()
    desired = build_desired_state(policy, reads, release_entries=True, all_verdicts=False) if args.release \
        else build_desired_state(policy, reads)
    mark("desired", started)
    if args.account:
        account_desired(desired).report("the desired state", users)
    started = time.perf_counter()
    del reads
    mark("reads freed", started)
    if args.store:
        from datetime import datetime, timezone

        from reconciler.plan.make import make_plan
        from reconciler.plan.safety import recent_counts
        from reconciler.store import open_store

        folder = Path(state["policy"]).parent
        _reset_store(folder, workdir / "store-initial.db" if args.store == "churn" else None)
        cwd = os.getcwd()
        os.chdir(folder)  # the policy's store path is relative to it
        try:
            store = open_store(policy.store)
            started = time.perf_counter()
            store_state = store.read(known=desired.users)  # as reconciler/pipeline.py reads it
            recent = recent_counts(store.history(), policy.safety.window_hours, datetime.now(timezone.utc))
            store.close()
            mark("store read", started)
            started = time.perf_counter()
            plan = make_plan(policy, desired, store_state, recent)
            mark(f"diff ({len(plan.changes)} changes)", started)
        finally:
            os.chdir(cwd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "measure", "profile", "stop"):
        command = commands.add_parser(name)
        command.add_argument("--users", type=int, default=100_000)
        command.add_argument("--workdir", type=Path)
        if name == "setup":
            command.add_argument("--seed", type=int, default=1)
        if name == "measure":
            command.add_argument("--rounds", type=int, default=3)
            command.add_argument("--which", default="churn,first")
            command.add_argument("--json", type=Path)
        if name == "profile":
            command.add_argument("--trace", action="store_true", help="tracemalloc: Python's own figures (slower)")
            command.add_argument("--account", action="store_true", help="bytes per part of an entry")
            command.add_argument("--store", choices=("churn", "first"), help="go on: store read and diff")
            command.add_argument("--release", action="store_true",
                                 help="build_desired_state as a plan calls it: the entries let go, the verdicts a plan reads")
            command.add_argument("--top", type=int, default=0, help="with --trace: the N lines holding most after each stage")
    args = parser.parse_args(argv)
    {"setup": setup, "measure": measure, "profile": profile, "stop": stop}[args.command](args)


if __name__ == "__main__":
    main()
