"""``mnistfw-compare``: compare finished runs side by side (see :mod:`mnistfw.compare`).

::

    mnistfw-compare outputs/train/multiruns/2026-01-01_10-00-00            # a multirun or sweep folder
    mnistfw-compare <run folder> <run folder> <sweep folder> --out cmp/    # any mix

Prints the table (Markdown) and writes ``comparison.csv``, ``comparison.md`` and the
``compare_*.png`` figures into ``--out`` (default ``outputs/compare/<date>_<time>``, under
``$MNISTFW_OUTPUT_DIR`` when set). Folders holding no finished run are warned about and skipped;
nothing to compare, or an output folder that cannot be written, is one ``error:`` line and
exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def default_out_dir() -> Path:
    """``<MNISTFW_OUTPUT_DIR or ./outputs>/compare/<date>_<time>``, like the run folders."""
    root = os.environ.get("MNISTFW_OUTPUT_DIR") or str(Path(os.environ.get("PROJECT_ROOT", ".")) / "outputs")
    return Path(root) / "compare" / time.strftime("%Y-%m-%d_%H-%M-%S")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mnistfw-compare",
        description="Compare finished mnistfw-train runs: a table (CSV + Markdown) and figures. "
                    "Give run folders, multirun/sweep folders, or folders holding them.",
    )
    parser.add_argument("folders", nargs="+", type=Path, metavar="folder", help="run, multirun or sweep folder")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where to write the comparison (default: outputs/compare/<date>_<time>)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mnistfw-compare`` console script."""
    from mnistfw.cli.hydra_app import describe_os_error
    from mnistfw.errors import MnistfwError

    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("mnistfw")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    out_dir = args.out or default_out_dir()
    try:
        from mnistfw.compare.comparison import compare

        result = compare(args.folders, out_dir)
    except MnistfwError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    print(result.markdown)
    print(f"\n{len(result.runs)} run(s) compared; written to {out_dir}: "
          + ", ".join(p.name for p in result.files), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
