"""Plans and store contents that must stay byte-identical through refactoring (issue: one shape for
every plug-in). `python -m tests.golden.scenarios --write` records them; tests/e2e/test_golden.py
replays every scenario and compares. Re-record only for a change that is meant to change plans,
and say so in the commit.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).with_name("recorded")
sys.path.insert(0, str(ROOT))

from tests.ldif_edit import Snapshot  # noqa: E402


def reconciler(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run([shutil.which("reconciler") or "reconciler", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)
    if done.returncode not in (0, 2, 3):
        raise RuntimeError(f"reconciler {' '.join(args)}: {done.stderr}")
    return done


def plan_json(cwd: Path, policy: str, *extra: str) -> str:
    text = reconciler(cwd, "plan", policy, "--format", "json", *extra).stdout
    return re.sub(r'"generated_at": "[^"]*"', '"generated_at": ""', text)


def store_dump(database: Path) -> str:
    """Every table of a SQLite store, rows sorted, timestamps blanked."""
    lines = []
    with sqlite3.connect(database) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            for row in sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr):
                # when and by whom (and which reconciler version) differ from run to run: blanked
                values = {c: v for c, v in zip(columns, row) if not c.endswith("_at") and c not in {"since", "actor"}}
                if table == "meta" and str(values.get("key", "")).startswith("created_"):
                    values["value"] = ""
                lines.append(f"{table} {json.dumps(values, sort_keys=True, default=str)}")
    return "\n".join(lines) + "\n"


def scenarios(work: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    examples = work / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns(".reconciler", "gitops"))
    for seed in sorted((examples / "seeds").glob("*.yaml")):
        out[f"seed-{seed.stem}.plan.json"] = plan_json(examples / "seeds", seed.name)
    company = examples / "quickstart"
    out["quickstart-first.plan.json"] = plan_json(company, "policy.yaml")
    reconciler(company, "apply", "policy.yaml", "--auto-approve")
    out["quickstart-first.store.txt"] = store_dump(company / ".reconciler" / "store.db")
    # a day in the directory: a leaver, a title change, an OU move, a disabled account, a hand edit
    corp = Snapshot(company / "corp.ldif")
    corp.remove(corp.find(sAMAccountName="sosei"))
    corp.set(corp.find(sAMAccountName="mchen"), "title", "Chief Operating Officer")
    jdoe = corp.find(sAMAccountName="zadams")
    corp.move(jdoe, "OU=Sales,OU=People,DC=corp,DC=example,DC=com")
    corp.set(corp.find(sAMAccountName="rpatel"), "userAccountControl", "514")
    corp.save()
    with sqlite3.connect(company / ".reconciler" / "store.db") as db:
        db.execute("UPDATE users SET display_name = 'Edited by hand' WHERE email = 'priya.raman@corp.example.com'")
    out["quickstart-day.plan.json"] = plan_json(company, "policy.yaml")
    shutil.copy(company / "policy.yaml", company / "base-policy.yaml")
    text = (company / "policy.yaml").read_text().replace("        - OU=Contractors,DC=corp,DC=example,DC=com\n", "")
    (company / "policy.yaml").write_text(text)
    out["quickstart-edit.plan.json"] = plan_json(company, "policy.yaml", "--base-policy", "base-policy.yaml")
    reconciler(company, "apply", "policy.yaml", "--auto-approve")
    out["quickstart-edit.store.txt"] = store_dump(company / ".reconciler" / "store.db")
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        found = scenarios(Path(folder))
    if "--write" in sys.argv:
        RECORDED.mkdir(exist_ok=True)
        for name, text in found.items():
            (RECORDED / name).write_text(text)
        print(f"recorded {len(found)} files in {RECORDED}")


if __name__ == "__main__":
    main()
