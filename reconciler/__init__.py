"""reconciler: directory sync as reviewed code."""

# Equal to the version in pyproject.toml (a test checks). `reconciler --version` reads the installed
# distribution's metadata and shows this only when run from a source tree that is not installed.
__version__ = "0.2.0"
