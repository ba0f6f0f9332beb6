"""``python -m ftexp.summarize <sweep_dir> [--out DIR] [--no-plots] [--baseline SELECTOR]``: print a sweep's results
table and write ``summary.md``, ``summary.csv``, ``differences.csv``, ``jobs.csv`` and ``plots/*.png`` (into the
sweep dir unless ``--out`` says where).

Works on a sweep still running (its unfinished jobs are listed as running/missing) and on any directory of runs,
e.g. ``outputs/demo/explicit``.
"""

from __future__ import annotations

import argparse
import sys

from ftexp.sweeps.differences import DEFAULT_BASELINE
from ftexp.sweeps.report import summarize_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftexp.summarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a multirun sweep dir (holding multirun.yaml), or any dir of run dirs")
    parser.add_argument("--out", help="where to write the files (default: the sweep dir)")
    parser.add_argument("--no-plots", action="store_true", help="tables only (no TensorBoard reading, no figures)")
    parser.add_argument(
        "--baseline",
        default=DEFAULT_BASELINE,
        help="the scenario the others are compared with, seed by seed: overrides it has, e.g. 'lr_reinit=none' or "
        f"a label from the table ('' for no differences; default: {DEFAULT_BASELINE})",
    )
    args = parser.parse_args(argv)
    try:
        summary = summarize_sweep(args.sweep_dir, out_dir=args.out, plots=not args.no_plots, baseline=args.baseline)
    except ValueError as err:
        print(f"ftexp.summarize: {err}", file=sys.stderr)
        return 1
    print(summary.markdown)
    print("written:\n" + "\n".join(f"  {path}" for path in summary.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
