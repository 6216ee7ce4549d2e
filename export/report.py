"""``ExportReport``: what one export did, written as ``DIR/export_report.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_FILE = "export_report.json"


@dataclass
class ExportReport:
    out_dir: str
    config: dict[str, Any]
    sequence: str  # "fast" | "generic"
    exporter: str
    ok: bool = True
    files: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    timings_s: dict[str, float] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    bpc: dict[str, Any] = field(default_factory=dict)  # torch, onnx, abs_diff, n_bytes
    layer_norm_nodes: dict[str, int] = field(default_factory=dict)
    int8: dict[str, Any] | None = None  # bpc, delta, kept, quantized ops per graph
    int8w: dict[str, Any] | None = None  # the same for the weight-only int8 files
    int4: dict[str, Any] | None = None  # the same for the 4-bit weight files
    checks: list[dict[str, Any]] = field(default_factory=list)  # name, ok, detail
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Readable ``-[✓]`` / ``-[x]`` lines, one per check."""
        return [f"-[{'✓' if c['ok'] else 'x'}] {c['name']}: {c['detail']}" for c in self.checks]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, out_dir: Path) -> Path:
        path = out_dir / REPORT_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path
