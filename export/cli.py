"""`lnrnn` subcommands of the export stage (module-level imports stay torch-free)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this stage's subcommands to the `lnrnn` parser."""
