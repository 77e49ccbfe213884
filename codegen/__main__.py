"""`python -m codegen [--spec PATH] [--out DIR] [--check]`: generate code and docs from the spec.

Exit status: 0 done (or up to date), 1 `--check` found stale or missing files, 2 a bad spec.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from codegen.build import COMMAND, render_all, stale_files, write_files
from codegen.models import ModelGenerationError
from codegen.spec import SpecError

REPO_ROOT = Path(__file__).resolve().parent.parent


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Generate generated/, deploy/, docs, .env.example from the spec."
    )
    parser.add_argument("--spec", type=Path, help="the OpenAPI document (default: openapi.yaml)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT,
                        help="the directory to write into (default: the repository root)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing every file that is stale or missing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the exit status."""
    args = _arguments(argv)
    spec_path: Path = args.spec if args.spec is not None else REPO_ROOT / "openapi.yaml"
    display = str(args.spec) if args.spec is not None else "openapi.yaml"
    try:
        files = render_all(spec_path, display)
    except SpecError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except ModelGenerationError as exc:
        print(f"{display}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(args.out, files)
        if stale:
            print("\n".join(stale), file=sys.stderr)
            print(f"run `{COMMAND}` to regenerate", file=sys.stderr)
            return 1
        return 0
    for name in write_files(args.out, files):
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
