"""``python -m lnrnn`` is the same as the ``lnrnn`` console script."""

from lnrnn.cli import main

if __name__ == "__main__":  # format 2's worker processes import the parent's main module: run nothing then
    raise SystemExit(main())
