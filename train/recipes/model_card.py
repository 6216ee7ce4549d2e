"""Score a model on every validation split next to gzip/bzip2/xz and write its model-card table.

python -m lnrnn.train.recipes.model_card models/default

Writes ``MODEL/evaluation.json`` and replaces the table between the ``evaluation`` markers of
``MODEL/README.md`` (the rest of the card is prose). The default model's target is printed per split: at
least 25% fewer bits than bzip2 -9.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from lnrnn.train.recipes.compression import measure

START, END = "<!-- evaluation:start -->", "<!-- evaluation:end -->"
TARGET_VS_BZIP2 = 0.75  # the model must need <= 75% of bzip2 -9's bits


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| validation split | bytes | lnrnn fp32 | lnrnn int8 | gzip -9 | bzip2 -9 | xz -9e "
        "| vs bzip2 | target (<= 0.75 x bzip2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = r["model"] / r["bzip2 -9"]
        int8 = f"{r['model int8']:.4f}" if "model int8" in r else "-"
        needed = TARGET_VS_BZIP2 * r["bzip2 -9"]
        verdict = "met" if ratio <= TARGET_VS_BZIP2 else f"not met (needs {needed:.3f})"
        lines.append(
            f"| {r['corpus']} | {r['bytes']:,} | **{r['model']:.4f}** | {int8} | {r['gzip -9']:.4f} "
            f"| {r['bzip2 -9']:.4f} | {r['xz -9e']:.4f} | {100 * (1 - ratio):+.1f}% | {verdict} |"
        )
    return "\n".join(lines)


def write_card(model_dir: Path, result: dict[str, Any]) -> None:
    (model_dir / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    card = model_dir / "README.md"
    text = card.read_text() if card.is_file() else f"# {model_dir.name}\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text += f"\n{START}\n{END}\n"
    block = f"{START}\n{table(result['rows'])}\n{END}"
    card.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("model", type=Path, help="exported model directory (step.onnx, sequence.onnx)")
    args = parser.parse_args(argv)
    if not (args.model / "step.onnx").is_file():
        print(f"model_card: error: {args.model} has no step.onnx", file=sys.stderr)
        return 2
    result = measure(quick=False, model_dir=args.model.resolve())
    write_card(args.model, result)
    print(table(result["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
