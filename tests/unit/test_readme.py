"""The README documents what exists: its generated sections are current, and every
CLI command and option is in the CLI reference."""
from pathlib import Path

import typer

from reconciler.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_generated_sections_are_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render(README) == README, "run: python scripts/update_readme.py"
    for name in module.sections():
        assert f"<!-- generated:{name} -->" in README, f"README has no section for docs/{name}.md"


def test_every_command_and_option_is_in_the_cli_reference():
    reference = README[README.index("## CLI"):README.index("## Plans, review and safety")]
    for name, command in typer.main.get_command(app).commands.items():
        assert f"`reconciler {name}" in reference, name
        for parameter in command.params:
            for option in getattr(parameter, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert option in reference, f"{name} {option}"


def test_the_first_screen_has_the_two_commands():
    first_screen = "\n".join(README.splitlines()[:30])
    assert "pip install . && reconciler plan examples/quickstart/policy.yaml" in first_screen
    assert "bash tests/run" in first_screen
    assert "bash tests/run" in (ROOT / ".ci" / "run").read_text().replace("exec bash tests/run", "bash tests/run")
