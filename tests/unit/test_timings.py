"""RECONCILER_TIMINGS: the benchmark's per-stage seconds, written only when asked for."""
import json

from reconciler import timings


def test_stages_are_written_as_json_when_the_variable_names_a_file(tmp_path, monkeypatch):
    path = tmp_path / "timings.json"
    monkeypatch.setenv(timings.ENV, str(path))
    monkeypatch.setattr(timings, "_seconds", {})
    with timings.stage("read"):
        pass
    with timings.stage("diff"):
        pass
    figures = json.loads(path.read_text())
    assert set(figures) == {"read", "diff"}
    assert all(seconds >= 0 for seconds in figures.values())


def test_nothing_is_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(timings.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(timings, "_seconds", {})
    with timings.stage("read"):
        pass
    assert timings._seconds == {} and list(tmp_path.iterdir()) == []
