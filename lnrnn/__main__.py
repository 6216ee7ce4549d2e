"""``python -m lnrnn`` is the same as the ``lnrnn`` console script."""

from lnrnn.cli import main

raise SystemExit(main())
