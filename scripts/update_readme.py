"""Fills the generated sections of README.md: the policy reference (from the schema)
and the store documents in docs/. `python scripts/update_readme.py` rewrites the
README; tests/unit/test_readme.py fails when it is out of date."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.policy import policy_schema  # noqa: E402
from reconciler.policy.reference import render_reference  # noqa: E402


def sections() -> dict[str, str]:
    found = {"policy-reference": render_reference(policy_schema()).split("\n", 2)[2].strip()}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        # one heading level down: the documents sit inside a README section
        text = re.sub(r"^(#+) ", r"#\1 ", doc.read_text().strip(), flags=re.M)
        found[doc.stem] = re.sub(r"\]\(([\w-]+\.md)\)", r"](docs/\1)", text)  # links between docs, seen from the root
    return found


def render(readme: str) -> str:
    for name, body in sections().items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
        readme = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), readme)
    return readme


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(render(path.read_text()))
