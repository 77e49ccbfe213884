"""Shared helpers for the code generator's tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = REPO_ROOT / "openapi.yaml"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "minimal"


def run_cli(*args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    """`python -m codegen ARGS` in a fresh process from the repository root."""
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-m", "codegen", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by POSIX relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def load_generated(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], ModuleType]:
    """Import a generated module from a file, under a throw-away module name."""
    counter = iter(range(1_000))

    def load(path: Path) -> ModuleType:
        name = f"_codegen_test_{path.stem}_{next(counter)}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # dataclasses and pydantic resolve annotations through sys.modules.
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load
