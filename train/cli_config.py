"""From `lnrnn train` flags to (ModelConfig, TrainConfig): a new run, a fine-tune, or a resumed run.

* new run: dataclass defaults < ``--preset`` < (``--init-from RUN``: RUN's architecture) < explicit flags;
* ``--resume``: the run's ``config.json`` is the base. What the command sets (its preset's values, then its
  flags) must agree with it, so that the run's own command plus ``--resume`` continues it; only the run-length
  keys (``EXTENDABLE``) may change. Any other difference is refused in one line that names each differing
  flag with both values.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lnrnn.errors import UserError
from lnrnn.train.model import ARCHITECTURE_KEYS, ModelConfig
from lnrnn.train.presets import FINETUNE_PRESETS, TrainConfig, config_dict, preset_values, resolve

NOT_CONFIG = {"out", "preset", "resume", "quiet", "handler", "command"}
EXTENDABLE = ("max_steps", "max_minutes")  # how long the run goes on: --resume may change them
PATH_KEYS = ("data", "init_from")  # equal when they name the same file
INVERTED = {"learned_init": "--no-learned-init", "hoist": "--no-hoist"}  # switches that set False


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys set by explicit flags (argparse leaves every other one ``None``)."""
    return {k: v for k, v in vars(args).items() if k not in NOT_CONFIG and v is not None}


def new_run_config(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    if args.data is None:
        raise UserError("--data is required (a corpus file or a directory of train/valid/test files)")
    return resolve(args.preset, {**init_architecture(args), **flags_given(args)})


def init_architecture(args: argparse.Namespace) -> dict[str, Any]:
    """With --init-from, the source run's architecture (explicit flags may not contradict it)."""
    if args.init_from is None:
        if args.preset in FINETUNE_PRESETS:
            raise UserError(f"--preset {args.preset} fine-tunes a trained run: add --init-from RUN")
        return {}
    from lnrnn.train.checkpoint import checkpoint_paths, read_meta
    from lnrnn.train.from_export import architecture, is_export, resolve_source

    source = resolve_source(Path(args.init_from))
    args.init_from = str(source.resolve())  # config.json records where the weights came from
    saved = (
        architecture(source) if is_export(source) else read_meta(checkpoint_paths(source)[1]).get("model", {})
    )
    arch = {k: saved[k] for k in ARCHITECTURE_KEYS if k in saved}
    given = flags_given(args)
    changed = sorted(k for k in arch if k in given and given[k] != arch[k])
    if changed:
        raise UserError(f"--init-from {source}: its weights fix {', '.join(changed)}; drop those flags")
    return arch


def resume_config(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig]:
    """The run's config.json, with the command's run length; refused if the command disagrees with it."""
    path = args.out / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: no config.json in {args.out}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    saved = config_dict(*resolve(None, {**raw["model"], **raw["train"]}))
    saved = {**saved["model"], **saved["train"]}
    given, preset = flags_given(args), preset_values(args.preset)
    if saved["init_from"] or given.get("init_from"):  # the source's architecture sat above the preset's
        preset = {k: v for k, v in preset.items() if k not in ARCHITECTURE_KEYS}
    command = {**preset, **given}
    differing = [k for k in command if k not in EXTENDABLE and not _agree(k, command[k], saved[k])]
    if differing:
        details = "; ".join(
            _describe(k, command[k], saved[k], None if k in given else args.preset) for k in differing
        )
        allowed = " and ".join(_flag_name(k) for k in EXTENDABLE)
        raise UserError(
            f"--resume cannot change the model or training settings of {args.out}: {details} "
            f"(only {allowed} may change)"
        )
    return resolve(None, {**saved, **command})


def _agree(key: str, new: Any, old: Any) -> bool:
    if new == old:
        return True
    return key in PATH_KEYS and bool(new) and bool(old) and Path(new).resolve() == Path(old).resolve()


def _flag_name(key: str) -> str:
    return INVERTED.get(key, "--" + key.replace("_", "-"))


def _describe(key: str, new: Any, old: Any, preset: str | None) -> str:
    """``--lr 0.01 here, 0.003 in the run`` (values as config.json spells them)."""
    name = f"{_flag_name(key)} ({key})" if key in INVERTED else _flag_name(key)
    origin = f" (from --preset {preset})" if preset else ""
    return f"{name} {json.dumps(new)}{origin} here, {json.dumps(old)} in the run"
