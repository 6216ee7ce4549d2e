"""Typed export errors (after optimum-onnx's ``error_utils``): verify collects them, then raises once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ExportCheckError(ValueError):
    """One failed verification check."""


class CheckerError(ExportCheckError):
    """``onnx.checker.check_model(full_check=True)`` rejected a graph."""


class InputNameError(ExportCheckError):
    """A graph's input names differ from the artifact contract."""


class OutputNameError(ExportCheckError):
    """A graph's output names differ from the artifact contract."""


class ShapeError(ExportCheckError):
    """An ONNX output has a different shape from the PyTorch reference."""


class ToleranceError(ExportCheckError):
    """An ONNX output differs from the PyTorch reference by more than the tolerance."""


class VerificationError(RuntimeError):
    """All failed checks of one export, raised once at the end."""

    def __init__(self, failures: Sequence[ExportCheckError], report: Any = None) -> None:
        self.failures = list(failures)
        self.report = report  # the ExportReport, already written to disk
        kinds = ", ".join(sorted({type(f).__name__ for f in self.failures}))
        first = str(self.failures[0]) if self.failures else ""
        super().__init__(f"{len(self.failures)} verification check(s) failed ({kinds}); first: {first}")
