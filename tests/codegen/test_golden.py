"""Golden record: a small fixture spec and the exact files it must produce.

After an intended change to the generator, regenerate the expected files with
`python -m codegen --spec tests/codegen/fixtures/minimal/openapi.yaml
--out tests/codegen/fixtures/minimal/expected` and review the diff.
"""

from __future__ import annotations

import pytest

from codegen.build import render_all
from tests.codegen.conftest import FIXTURE, tree

EXPECTED = FIXTURE / "expected"
EXPECTED_NAMES = sorted(tree(EXPECTED))


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """The fixture spec rendered once for every comparison."""
    return render_all(FIXTURE / "openapi.yaml", "openapi.yaml")


def test_the_same_set_of_files(rendered: dict[str, str]) -> None:
    assert sorted(rendered) == EXPECTED_NAMES


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_file_matches_the_golden_record(rendered: dict[str, str], name: str) -> None:
    expected = (EXPECTED / name).read_text(encoding="utf-8")
    assert rendered[name] == expected
