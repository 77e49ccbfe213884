"""`bench.wakeup` measures a round trip on one core and across two."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import wakeup


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_both_placements_give_a_round_trip() -> None:
    found = wakeup.measure()
    assert set(found) == {"same_core_us", "cross_core_us"}
    assert 0 < found["same_core_us"] < 10_000
    assert 0 < found["cross_core_us"] < 10_000


def test_idling_reads_what_the_kernel_shows_and_skips_what_it_does_not(tmp_path: Path) -> None:
    cpuidle = tmp_path / "cpuidle"
    cpuidle.mkdir()
    (cpuidle / "current_driver").write_text("haltpoll\n")
    (cpuidle / "current_governor_ro").write_text("haltpoll\n")
    (tmp_path / "poll").write_text("200000\n")
    assert wakeup.idling(cpuidle, tmp_path / "poll") == {
        "driver": "haltpoll", "governor": "haltpoll", "halt_poll_ns": 200_000}
    assert wakeup.idling(cpuidle, tmp_path / "absent") == {
        "driver": "haltpoll", "governor": "haltpoll"}
    # Another governor does not use the haltpoll governor's parameter, present or not.
    (cpuidle / "current_governor_ro").write_text("menu\n")
    assert wakeup.idling(cpuidle, tmp_path / "poll") == {"driver": "haltpoll", "governor": "menu"}
    (cpuidle / "current_governor_ro").unlink()
    assert wakeup.idling(cpuidle, tmp_path / "poll") == {"driver": "haltpoll"}
    assert wakeup.idling(tmp_path / "absent", tmp_path / "absent") == {}
