"""`bench.instructions` reads the instruction total of a callgrind dump."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import total_instructions


def test_the_summary_line_is_the_total(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text("version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n"
                    "summary: 396628459\ntotals: 421317618\n")
    assert total_instructions(dump) == 396_628_459


def test_a_dump_without_a_summary_is_an_error(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text("events: Ir\n")
    with pytest.raises(ValueError):
        total_instructions(dump)
