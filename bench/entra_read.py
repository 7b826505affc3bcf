"""How long a kind entra-id read of N users takes from the tests' fake Microsoft Graph.

    python -m bench.entra_read --users 100000 [--rounds 3] [--json bench/results/entra-100k.json]

The fake (tests/servers/fake_graph.py: HTTPS with the test CA, the documented response shapes) runs in
a process of its own, so the time it spends serving does not share the reader's interpreter; it is a
pure-Python http.server, so its own CPU (reported separately) is part of the wall time, where a real
tenant's answer time would be. The tenant: N members and 3 guests (make_tenant), pages of 999 users
(Graph's most), the users filter userType eq 'Member' and member_of: [Key Owners] (about N/7 people,
through one nested group), so a read is /users in ceil(N/999) pages plus the transitive members of one
group. Measured, per round:

- `read`: GraphSource.read() in this process (token, member_of, every page, entries built), wall and CPU;
- `plan`: `reconciler plan --format json` against an empty store as a user runs it, wall time, peak RSS
  and its stages (RECONCILER_TIMINGS).

What it cannot say: how long Graph itself takes to answer a page (tens to hundreds of ms from a real
tenant, and throttling, which only a tenant's load decides); the figures are the client's and the fake's.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = "11111111-2222-3333-4444-555555555555"
SECRET = "bench-secret-value"

SERVE = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.servers.fake_graph import App, FakeEntra, make_tenant
from tests.servers.tls import make_tls
tls = make_tls({folder!r})
fake = FakeEntra(tls, make_tenant({users})).start()
fake.register(App({app!r}, secret={secret!r}))
print(json.dumps({{"url": fake.url, "ca": tls.ca_file, "tenant": fake.tenant}}), flush=True)
sys.stdin.read()  # until the bench closes it
fake.stop()
"""


def start_fake(users: int, folder: str) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen([sys.executable, "-c", SERVE.format(root=str(ROOT), folder=folder, users=users, app=APP,
                                                                   secret=SECRET)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line:
        raise SystemExit("the fake Graph did not start")
    return process, json.loads(line)


def write_policy(folder: Path, fake: dict) -> Path:
    policy = folder / "policy.yaml"
    policy.write_text(textwrap.dedent(f"""\
        version: 1
        directories:
          cloud:
            kind: entra-id
            tenant: {fake['tenant']}
            client_id: {APP}
            client_secret: '${{GRAPH_SECRET}}'
            endpoints: {{login: '{fake['url']}', graph: '{fake['url']}'}}
            tls: {{ca_file: {fake['ca']}}}
            users: {{member_of: [Key Owners]}}
        mapping: {{email: ['{{mail}}', '{{userPrincipalName}}'], attributes: {{department: '{{department}}'}}}}
        store: {{kind: sqlite, path: store.db}}
        """))
    return policy


def read_in_process(policy: Path) -> dict:
    from reconciler.directory import open_source
    from reconciler.policy import load_policy

    directory = load_policy(policy).directories[0]
    wall, cpu = time.perf_counter(), time.process_time()
    result = open_source(directory).read()
    return {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3),
            "users_read": result.entries_read, "in_scope": len(result.users)}


def plan_as_a_user_runs_it(policy: Path) -> dict:
    timings = policy.parent / "timings.json"
    env = {**os.environ, "GRAPH_SECRET": SECRET, "RECONCILER_TIMINGS": str(timings)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run([shutil.which("reconciler") or "reconciler", "plan", str(policy), "--format", "json"],
                          cwd=policy.parent, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 2):
        raise SystemExit(f"reconciler plan failed: {done.stderr}")
    return {"wall_s": round(elapsed, 3), "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 3),
            "peak_rss_mb": round(after.ru_maxrss / 1024), "stages": json.loads(timings.read_text())}


def fake_cpu(pid: int) -> float:
    """Seconds of CPU the fake's process has used (Linux /proc), including building the tenant."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    os.environ["GRAPH_SECRET"] = SECRET
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        fake, where = start_fake(args.users, folder)
        set_up = time.perf_counter() - started
        try:
            policy = write_policy(Path(folder), where)
            reads, plans = [], []
            for round_ in range(args.rounds):
                reads.append(read_in_process(policy))
                plans.append(plan_as_a_user_runs_it(policy))
                print(f"round {round_ + 1}: read {reads[-1]['wall_s']} s ({reads[-1]['cpu_s']} s CPU), "
                      f"plan {plans[-1]['wall_s']} s, stages {plans[-1]['stages']}", flush=True)
            serving = fake_cpu(fake.pid)
        finally:
            fake.stdin.close()
            fake.wait(30)
    figures = {
        "users": args.users, "pages": -(-args.users // 999), "rounds": args.rounds,
        "fake_start_s": round(set_up, 2),
        "read_wall_s": statistics.median(r["wall_s"] for r in reads),
        "read_cpu_s": statistics.median(r["cpu_s"] for r in reads),
        "plan_wall_s": statistics.median(p["wall_s"] for p in plans),
        "plan_read_stage_s": statistics.median(p["stages"].get("read", 0.0) for p in plans),
        "plan_peak_rss_mb": max(p["peak_rss_mb"] for p in plans),
        "fake_cpu_s_per_round": round(serving / (2 * args.rounds), 2),  # it serves a read and a plan per round
        "rounds_detail": {"read": reads, "plan": plans},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()[0]},
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "rounds_detail"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
