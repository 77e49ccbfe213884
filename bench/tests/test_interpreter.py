"""`bench.interpreter` picks the fastest usable CPython on PATH and describes builds by
version and libpython, never by path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import interpreter


def _fake(folder: Path, name: str, seconds: str, *, shared: bool, works: bool = True) -> Path:
    """A stand-in interpreter: answers the workload with `seconds`, the description probe
    with a version and whether libpython is shared; or fails, as one that cannot make a venv."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    body = (f'case "$3" in *platform*) printf "3.11.9\\n{shared}\\n" ;; '
            f'*) echo "$0 {seconds}" ;; esac' if works else "exit 1")
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_the_fastest_usable_build_on_path_is_chosen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = _fake(tmp_path / "a", "python3", "0.020", shared=True)
    fast = _fake(tmp_path / "b", "python3.11", "0.010", shared=False)
    _fake(tmp_path / "c", "python3.11", "0.001", shared=False, works=False)  # no venv: skipped
    monkeypatch.setenv("PATH", f"{tmp_path / 'a'}:{tmp_path / 'c'}:{tmp_path / 'b'}")
    monkeypatch.setattr(sys, "executable", str(slow))
    monkeypatch.setattr(sys, "_base_executable", str(slow), raising=False)

    assert interpreter.main([]) == 0
    assert capsys.readouterr().out.strip() == str(fast.resolve())

    assert interpreter.main(["--report"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == [
        {"build": "CPython 3.11.9, libpython linked in", "workload_ms": 10.0},
        {"build": "CPython 3.11.9, libpython shared", "workload_ms": 20.0},
    ]
    assert str(tmp_path) not in json.dumps(report)


def test_no_usable_build_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _fake(tmp_path, "python3", "0.001", shared=False, works=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(broken))
    monkeypatch.setattr(sys, "_base_executable", str(broken), raising=False)
    assert interpreter.main([]) == 1
