"""`lnrnn export-mobile`: a model directory's graphs in the ORT format that ONNX Runtime's mobile packages
(Android AAR, iOS pod, minimal builds) load directly, plus the operator list a reduced build needs.

onnxruntime's own converter (``onnxruntime.tools.convert_onnx_models_to_ort``) writes both: ``<name>.ort`` per
graph, optimised once ("Fixed" style) for the target's instruction set, and
``required_operators_and_types.config`` for ``build.sh --include_ops_by_config`` (type reduction on, so a
minimal build also drops the kernels for element types the graphs never use). The ORT files keep the graphs'
lnrnn metadata, so the contract check reads them as it reads the ONNX files. A report says what was written:
bytes (and gzip'd bytes, what an app download costs), operators and opsets.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from lnrnn.contract import PRECISION_FILES, SEQUENCE_FILE, SEQUENCE_INT8_FILE, STEP_FILE, STEP_INT8_FILE
from lnrnn.errors import UserError

CONFIG_FILE = "required_operators_and_types.config"
REPORT_FILE = "mobile_report.json"
PLATFORMS = ("arm", "amd64")  # what the converter's optimiser may specialise for: phones are arm
# int4 needs an ONNX Runtime with com.microsoft MatMulNBits and GatherBlockQuantized (uint8 data) on the phone
GRAPHS = {
    "fp32": (STEP_FILE, SEQUENCE_FILE),
    "int8": (STEP_INT8_FILE, SEQUENCE_INT8_FILE),
    "int4": PRECISION_FILES["int4"],
}


@dataclass(frozen=True)
class MobileFile:
    name: str
    source: str
    bytes: int
    gzip_bytes: int
    source_bytes: int
    opsets: dict[str, int]  # domain ("" = ai.onnx) -> version, from the source graph


@dataclass(frozen=True)
class MobileReport:
    out_dir: str
    target_platform: str
    onnxruntime: str
    files: list[MobileFile]
    operators: list[str]  # "domain;opset;Op" lines of the config, types stripped

    def lines(self) -> list[str]:
        out = [f"ORT format for {self.target_platform} (onnxruntime {self.onnxruntime}) in {self.out_dir}:"]
        for f in self.files:
            sizes = f"{f.bytes:>11,} bytes ({f.gzip_bytes:,} gzip'd; {f.source} {f.source_bytes:,})"
            out.append(f"  {f.name:<22} {sizes}")
        out.append(f"  {CONFIG_FILE}: {len(self.operators)} operators")
        return out


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def _operators(config: Path) -> list[str]:
    """``domain;opset;Op1{types},Op2`` lines -> sorted ``domain;opset;Op`` entries."""
    ops = []
    for line in config.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        domain, opset, rest = line.split(";", 2)
        depth, name = 0, ""
        for ch in rest + ",":  # split on the commas outside the {...} type lists
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                ops.append(f"{domain};{opset};{name.strip()}")
                name = ""
            elif depth == 0:
                name += ch
    return sorted(ops)


def export_mobile(
    model_dir: Path,
    out: Path,
    *,
    precisions: tuple[str, ...] = ("int8", "fp32"),
    target_platform: str = "arm",
) -> MobileReport:
    """Convert the graphs of ``precisions`` found in ``model_dir`` to ``out``; write the config and report."""
    import onnxruntime as ort
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    if target_platform not in PLATFORMS:
        raise UserError(f"--target-platform must be one of {', '.join(PLATFORMS)}, got {target_platform!r}")
    if not model_dir.is_dir():
        raise UserError(f"model directory {model_dir} does not exist")
    names = [name for p in precisions for name in GRAPHS[p] if (model_dir / name).is_file()]
    if not names:
        wanted = ", ".join(name for p in precisions for name in GRAPHS[p])
        raise UserError(f"{model_dir} has none of {wanted}: pass a directory written by `lnrnn export`")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:  # the converter takes a folder: give it exactly these graphs
            shutil.copy(model_dir / name, Path(tmp) / name)
        log = io.StringIO()
        # it prints a line per model and logs the config's path at INFO; the report says it all
        quiet = logging.getLogger("ort_format_model.utils")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), warnings.catch_warnings():
                # the converter leaves the .ort files it reads open; they are closed when collected below
                warnings.simplefilter("ignore", ResourceWarning)
                convert_onnx_models_to_ort(
                    Path(tmp),
                    output_dir=out,
                    optimization_styles=[OptimizationStyle.Fixed],
                    target_platform=target_platform,
                    enable_type_reduction=True,
                )
                gc.collect()
        finally:
            quiet.setLevel(level)
    files = []
    for name in names:
        ort_file = out / (Path(name).stem + ".ort")
        if not ort_file.is_file():
            raise UserError(f"onnxruntime did not convert {name}: {log.getvalue().strip()[-300:]}")
        graph = onnx.load(str(model_dir / name), load_external_data=False)
        files.append(
            MobileFile(
                name=ort_file.name,
                source=name,
                bytes=ort_file.stat().st_size,
                gzip_bytes=_gzip_size(ort_file),
                source_bytes=(model_dir / name).stat().st_size,
                opsets={o.domain or "ai.onnx": o.version for o in graph.opset_import},
            )
        )
    report = MobileReport(str(out), target_platform, ort.__version__, files, _operators(out / CONFIG_FILE))
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=1) + "\n")
    return report
