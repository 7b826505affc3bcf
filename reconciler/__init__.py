"""reconciler: directory sync as reviewed code."""

__version__ = "0.1.0"
