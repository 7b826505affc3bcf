"""A small, faithful GitHub Actions emulator for tests: runs a workflow job's steps in
order, as GitHub's runner would, against an in-memory GitHub (see emulator.py for what is
and is not emulated, and the docs it follows)."""
from .emulator import EmulatorError, JobResult, StepResult, load_yaml, run_job
from .expressions import Context, ExpressionError, evaluate, evaluate_if, interpolate
from .fake_github import BOT, MAX_BODY, FakeGitHub

__all__ = ["run_job", "JobResult", "StepResult", "EmulatorError", "load_yaml", "FakeGitHub", "BOT", "MAX_BODY",
           "Context", "ExpressionError", "evaluate", "evaluate_if", "interpolate"]
