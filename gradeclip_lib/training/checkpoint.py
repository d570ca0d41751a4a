"""The full state of a ShapesWorld training run (model, optimiser, step, data-order generator, history),
written atomically at every evaluation so that a killed run loses at most one evaluation interval and
``python -m gradeclip_lib shapes train --resume DIR`` continues it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"


def checkpoint_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / CHECKPOINT


def save_checkpoint(folder: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``folder/checkpoint.pt`` through a temporary file, so a kill mid-write leaves
    the previous checkpoint intact."""
    path = checkpoint_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(folder: str | os.PathLike) -> dict:
    """The state saved by `save_checkpoint`; a clear error when the folder holds none."""
    path = checkpoint_path(folder)
    if not path.is_file():
        finished = _finished(Path(folder) / "history.json")
        hint = (" The run in that folder has finished (its checkpoint is removed at the end); start a new run "
                "with another --out." if finished else " Start the run with `python -m gradeclip_lib shapes "
                f"train --out {folder}`; it writes a checkpoint at every evaluation.")
        raise FileNotFoundError(f"no training checkpoint at {path}.{hint}")
    return torch.load(path, map_location="cpu", weights_only=True)


def _finished(history: Path) -> bool:
    """Whether the history in a run's folder reached its last step (a run killed before its first
    checkpoint has no history; one whose history could not be read is not called finished)."""
    try:
        saved = json.loads(history.read_text())
        return bool(saved["eval_step"]) and saved["eval_step"][-1] == saved["config"]["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def remove_checkpoint(folder: str | os.PathLike) -> None:
    checkpoint_path(folder).unlink(missing_ok=True)
