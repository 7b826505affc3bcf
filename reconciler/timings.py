"""Seconds spent in each stage of a run, for the benchmark (bench/).

With `RECONCILER_TIMINGS=<path>` in the environment every finished stage
rewrites <path> as a JSON object {stage: seconds}; without it `stage` does
nothing, so the commands' output is the same either way.

A stage may also say what it does in words (`doing`), for the progress a person
watching a terminal sees (`reconciler.progress`); that too is nothing without one.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Iterator

from . import progress

ENV = "RECONCILER_TIMINGS"
_seconds: dict[str, float] = {}


@contextmanager
def stage(name: str, doing: str | None = None) -> Iterator[None]:
    if doing is not None:
        progress.current().stage(doing)
    path = os.environ.get(ENV)
    if not path:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        _seconds[name] = _seconds.get(name, 0.0) + time.perf_counter() - started
        with open(path, "w", encoding="utf-8") as out:
            json.dump({k: round(v, 4) for k, v in _seconds.items()}, out)
