"""The dependency locks pin every package with hashes, and installs go through them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ["requirements.lock", "requirements-dev.lock"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def pins_and_hashes(text: str) -> dict[str, int]:
    """Each pinned requirement (`name==version`) and how many sha256 hashes it carries."""
    found: dict[str, int] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pin = PIN.match(line)
        if pin:
            current = f"{pin.group(1).lower()}=={pin.group(3)}"
            found[current] = 0
        elif not line[:1].isspace():
            current = None
            found[f"unpinned: {stripped}"] = 0
        if current is not None:
            found[current] += len(HASH.findall(line))
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_is_pinned_with_a_hash(lock: str) -> None:
    found = pins_and_hashes((ROOT / lock).read_text())
    assert found, f"{lock} pins nothing"
    missing = sorted(name for name, hashes in found.items() if hashes == 0)
    assert missing == [], f"{lock}: no hash for {missing}"


def test_the_runtime_lock_is_part_of_the_dev_lock() -> None:
    """`make` installs the dev lock; every runtime pin must be in it at the same version."""
    runtime = set(pins_and_hashes((ROOT / "requirements.lock").read_text()))
    dev = set(pins_and_hashes((ROOT / "requirements-dev.lock").read_text()))
    assert runtime - dev == set()


def _commands(text: str) -> list[str]:
    """Makefile or Dockerfile lines with their backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def test_make_test_and_the_image_install_the_locks_with_hashes() -> None:
    """`make test` (through its install stamp) and the image install exactly the locks."""
    make = _commands((ROOT / "Makefile").read_text())
    stamp = [line for line in make if "pip install" in line and "requirements-dev.lock" in line]
    assert stamp and all("--require-hashes" in line for line in stamp), stamp
    assert any(line.startswith("check: $(STAMP)") for line in make)
    assert any(line.startswith("test: check") for line in make)
    docker = [line for line in _commands((ROOT / "Dockerfile").read_text())
              if "pip install" in line]
    assert docker and all("--require-hashes" in line and "requirements.lock" in line
                          for line in docker), docker


def test_the_checker_catches_a_pin_without_a_hash() -> None:
    """The parser above is what the lock tests rely on: a bare pin must show up."""
    text = ("good==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via x\n"
            "bare==2.0\n    # via y\n")
    assert pins_and_hashes(text) == {"good==1.0": 1, "bare==2.0": 0}
