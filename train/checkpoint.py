"""Model checkpoints are data: safetensors weights plus a JSON file. Nothing is ever unpickled.

A checkpoint is a pair ``NAME.safetensors`` + ``NAME.json`` inside a run directory (``best`` and ``last``).
The JSON holds the model config, the vocabulary, the step, the best validation BPC and the lnrnn version,
so a checkpoint rebuilds its model without any side file. Both files are written atomically (temporary
file in the same directory, fsync, rename): a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lnrnn import __version__
from lnrnn.contract import BOS_ID, VOCAB_NAME, VOCAB_SIZE
from lnrnn.errors import UserError
from lnrnn.train.model import ARCHITECTURE_KEYS, ByteLM, ModelConfig

FORMAT = "lnrnn-checkpoint/1"
BEST = "best"
LAST = "last"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, fsync it, then rename it over ``path``.

    A full or read-only disk becomes a one-line ``UserError``; the previous file is left untouched.
    """
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as err:
        _discard(tmp)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not write {path} ({reason}); the previous version is kept") from err
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def save_model(run_dir: Path, name: str, model: ByteLM, meta: dict[str, Any]) -> None:
    """Write ``run_dir/name.safetensors`` and ``run_dir/name.json`` (weights first, then the JSON)."""
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    full_meta = {
        "format": FORMAT,
        "lnrnn_version": __version__,
        "model": module.config.to_dict(),
        "vocab": {"name": VOCAB_NAME, "size": VOCAB_SIZE, "bos_id": BOS_ID},
        "parameters": module.num_parameters(),
        **meta,
    }
    atomic_write(run_dir / f"{name}.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    atomic_write_text(run_dir / f"{name}.json", json.dumps(full_meta, indent=2, sort_keys=True) + "\n")


def checkpoint_paths(source: Path, name: str = BEST) -> tuple[Path, Path]:
    """Resolve a run directory (or a ``.safetensors``/``.json`` path) to (weights, meta) paths."""
    if source.suffix in (".safetensors", ".json"):
        stem = source.with_suffix("")
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    return source / f"{name}.safetensors", source / f"{name}.json"


def read_meta(meta_path: Path) -> dict[str, Any]:
    if not meta_path.is_file():
        raise UserError(f"no checkpoint metadata at {meta_path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"checkpoint metadata {meta_path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path} is not an lnrnn checkpoint (expected format {FORMAT!r})")
    vocab = meta.get("vocab", {})
    if vocab != {"name": VOCAB_NAME, "size": VOCAB_SIZE, "bos_id": BOS_ID}:
        raise UserError(f"{meta_path}: unsupported vocabulary {vocab!r}")
    return meta


def load_model(source: Path, name: str = BEST) -> tuple[ByteLM, dict[str, Any]]:
    """Rebuild a model from a checkpoint; every way it can be broken gives a one-line ``UserError``."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"checkpoint {source} does not exist")
    weights_path, meta_path = checkpoint_paths(source, name)
    meta = read_meta(meta_path)
    if not weights_path.is_file():
        raise UserError(f"no checkpoint weights at {weights_path}")
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{meta_path}: inconsistent model config ({err})") from err
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"checkpoint weights {weights_path} are unreadable or truncated ({err})") from err
    model = ByteLM(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{weights_path} does not match its config in {meta_path}: {first}") from err
    model.eval()
    return model, meta


def init_weights(model: ByteLM, source: Path) -> None:
    """Fine-tuning start: copy a checkpoint's best weights, or an exported model's (``step.onnx``), into
    ``model`` (same architecture required)."""
    from lnrnn.train.from_export import is_export, model_from_export

    donor = model_from_export(source) if is_export(source) else load_model(source)[0]
    mine, theirs = model.config.to_dict(), donor.config.to_dict()
    changed = [k for k in ARCHITECTURE_KEYS if mine[k] != theirs[k]]
    if changed:
        raise UserError(f"--init-from {source}: architecture differs ({', '.join(changed)})")
    model.load_state_dict(donor.state_dict(), strict=True)


def load_tensors_weights_only(path: Path) -> Any:
    """Load a torch-format file (optimizer state) without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"{path} is not a safe weights-only file ({type(err).__name__}: {first})") from err
