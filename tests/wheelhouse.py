"""This checkout as a release would ship it: its sdist and wheel, built once per test session,
and a wheelhouse holding that wheel and the wheels of every runtime dependency, so that
tests can install it into fresh venvs with no index at all (`offline_env()`).

Other test files use the session fixture by importing it:

    from tests.wheelhouse import wheelhouse  # noqa: F401  (the fixture)

or call `build_wheelhouse(folder)` themselves.

The machine's pip configuration is not allowed to change what is built: this one, for
example, sets a global constraint file and find-links to a folder of unrelated wheels.
Building, pip keeps the machine's way of reaching the index (index URLs, certificate,
cache) but gets an empty constraint file and only our own find-links; installing from
the wheelhouse, pip reads no configuration file and no PIP_* variable but ours.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "directory-reconciler"


@dataclass(frozen=True)
class Wheelhouse:
    wheel: Path   # this checkout's wheel
    sdist: Path   # this checkout's sdist (the wheel is built from it, as `python -m build` does)
    dir: Path     # the wheel and the wheels of every runtime dependency, one version each
    version: str  # the version the wheel was built as

    def offline_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment in which pip installs from this wheelhouse alone: no index, no pip
        configuration file, no PIP_* variable from outside, never a build from source."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith("PIP_") and k not in {"PYTHONPATH", "PYTHONHOME"}}
        env.update(
            PIP_CONFIG_FILE=os.devnull,
            PIP_NO_INDEX="1",
            PIP_FIND_LINKS=str(self.dir),
            PIP_ONLY_BINARY=":all:",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INPUT="1",
        )
        return env

    def wheels(self) -> list[Path]:
        return sorted(self.dir.glob("*.whl"))


def _online_env(find_links: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PIP_NO_INDEX", "PIP_REQUIRE_HASHES", "PIP_ONLY_BINARY", "PIP_NO_BINARY", "PIP_TARGET",
                        "PIP_PREFIX", "PIP_USER", "PYTHONPATH", "PYTHONHOME"}}
    env.update(
        PIP_CONSTRAINT=os.devnull,        # overrides a constraint file from pip's configuration
        PIP_FIND_LINKS=str(find_links),   # overrides find-links from pip's configuration or environment
        PIP_REQUIRE_VIRTUALENV="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    return env


def _run(command: list[str], env: dict[str, str], what: str, cwd: Path | None = None) -> None:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed with exit {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


def _source_copy(folder: Path) -> Path:
    """The files a fresh clone would have (tracked, plus new files not ignored), copied so that
    building writes nothing into the checkout (egg-info, build/) and picks up no ignored leftovers."""
    folder.mkdir(parents=True)
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but the usual leftovers
        shutil.copytree(ROOT, folder, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".pytest_cache", ".reconciler"))
        return folder
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_symlink() and not source.exists():  # deleted in the work tree, not yet in git
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return folder


def build_wheelhouse(dest: Path) -> Wheelhouse:
    """Build this checkout's sdist and wheel into dest/dist (the wheel from the sdist, so a file
    missing from the sdist fails here) and fill dest/wheelhouse with it and its dependencies."""
    dist, house = dest / "dist", dest / "wheelhouse"
    house.mkdir(parents=True)
    env = _online_env(house)
    source = _source_copy(dest / "source")
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], env,
         "python -m build (is the test extra installed? pip install -e '.[test]')")
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, f"expected one wheel and one sdist in {dist}: {wheels} {sdists}"
    wheel, sdist = wheels[0], sdists[0]
    match = re.fullmatch(r"(?P<name>[^-]+)-(?P<version>[^-]+)-.+\.whl", wheel.name)
    assert match and match["name"] == DISTRIBUTION.replace("-", "_"), f"the wheel is not {DISTRIBUTION}'s: {wheel.name}"
    # `pip wheel` copies our wheel into the wheelhouse and adds a wheel for each runtime dependency
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(house), str(wheel)], env,
         f"pip wheel {wheel.name}")
    return Wheelhouse(wheel=wheel, sdist=sdist, dir=house, version=match["version"])


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Wheelhouse:
    try:
        return build_wheelhouse(tmp_path_factory.mktemp("release"))
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
