"""The model-card table: the >= 25%-under-bzip2 verdict per split, and only the marked block is rewritten."""

from __future__ import annotations

from pathlib import Path

from lnrnn.train.recipes.model_card import END, START, table, write_card


def row(corpus: str, model: float, bzip2: float) -> dict[str, float | str | int]:
    return {"corpus": corpus, "bytes": 1000, "model": model, "model int8": model + 0.001,
            "gzip -9": 3.0, "bzip2 -9": bzip2, "xz -9e": 2.9}  # fmt: skip


def test_verdict_is_at_most_three_quarters_of_bzip2() -> None:
    lines = table([row("a", 1.5, 2.0), row("b", 1.6, 2.0)]).splitlines()
    assert "| a | 1,000 | **1.5000** | 1.5010 |" in lines[2] and lines[2].endswith("| +25.0% | met |")
    assert lines[3].endswith("| +20.0% | not met (needs 1.500) |")


def test_write_card_keeps_the_prose(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text(f"# card\n\nbefore\n\n{START}\nold table\n{END}\n\nafter\n")
    write_card(tmp_path, {"rows": [row("a", 1.0, 2.0)]})
    text = card.read_text()
    assert text.startswith("# card\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old table" not in text and "| a | 1,000 | **1.0000**" in text
    assert (tmp_path / "evaluation.json").is_file()
