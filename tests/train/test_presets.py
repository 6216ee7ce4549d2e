"""Every preset resolves to valid configs; the issue-8 presets stay within the 5M-parameter budget."""

from __future__ import annotations

import re

import pytest

from lnrnn.train.model import ByteLM
from lnrnn.train.presets import FINETUNE_PRESETS, PRESETS, resolve
from lnrnn.train.recipes.broad_mix import parse_mix_repeats
from lnrnn.train.recipes.corpora import REPO


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_resolves(name: str) -> None:
    model_cfg, train_cfg = resolve(name, {})
    for key, value in PRESETS[name].items():
        holder = model_cfg if hasattr(model_cfg, key) else train_cfg
        assert getattr(holder, key) == value


@pytest.mark.parametrize(("name", "params"), [("shakespeare", 1_878_401), ("mix", 2_535_489)])
def test_quality_presets_are_small(name: str, params: int) -> None:
    model_cfg, _ = resolve(name, {})
    assert ByteLM(model_cfg).num_parameters() == params <= 5_000_000


def test_shakespeare_preset_uses_nanogpt_split() -> None:
    _, train_cfg = resolve("shakespeare", {})
    assert train_cfg.split == "0.9,0.1,0" and 0 < train_cfg.max_minutes <= 60


def makefile_train_commands() -> list[str]:
    """Every ``lnrnn train`` command of the Makefile, its continuation lines joined, with the ladder macro's
    command once per ``$(call LADDER_MODEL,<size>,...)``."""
    text = (REPO / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [line for line in text.splitlines() if "lnrnn train " in line]
    sizes = re.findall(r"\$\(call LADDER_MODEL,([^,)]+)", text)
    return [c.replace("$(1)", size) for c in commands if "$(1)" in c for size in sizes] + [
        c for c in commands if "$(1)" not in c
    ]


def test_every_recipe_in_the_makefile_names_a_preset_the_cli_accepts() -> None:
    # the recipes run for hours: a misspelt preset, or a fine-tuning preset without its --init-from (which
    # the CLI refuses), would only show after the stages before it
    commands = makefile_train_commands()
    assert len(commands) >= 9  # default-model's two stages, broad-model's five, the two ladder models
    for command in commands:
        preset = re.search(r"--preset (\S+)", command)
        assert preset is not None and preset.group(1) in PRESETS, command
        assert (preset.group(1) in FINETUNE_PRESETS) == ("--init-from" in command), command
    broad = [re.search(r"--preset (\S+)", c).group(1) for c in commands if "--out runs/broad-model" in c]
    assert broad == ["broad-finetune", "broad-reweight", "broad-english", "broad-books", "broad-splits"]


def test_every_repeats_of_the_makefile_parses_for_the_broad_mix() -> None:
    # the same reason: a misspelt corpus in the fifth stage's weights would fail after four stages
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    values = dict(re.findall(r"^([A-Z_]+_REPEATS) = (\S+)$", text, flags=re.MULTILINE))
    used = re.findall(r"--repeats \$\(([A-Z_]+)\)", text)
    assert set(used) == {"FINETUNE_REPEATS", "ENGLISH_REPEATS", "BOOKS_REPEATS", "SPLITS_REPEATS"}
    parsed = {
        name: parse_mix_repeats(re.sub(r"\$\(([A-Z_]+)\)", lambda m: values[m.group(1)], values[name]))
        for name in used
    }
    assert parsed["BOOKS_REPEATS"] == {**parsed["ENGLISH_REPEATS"], "warandpeace": 2} | dict.fromkeys(
        ("alice29", "asyoulik", "plrabn12"), 3
    )
    # the fifth stage: the splits still lost on weighted up, War and Peace once more to keep its share
    assert parsed["SPLITS_REPEATS"] == {
        **parsed["BOOKS_REPEATS"],
        "tinyshakespeare": 8,
        "ptb-char-valid": 4,
        "warandpeace": 3,
        "asyoulik": 6,
    }
