"""The models this project ships in ``data/``, by name: their family, folder and the command that makes them.

One table instead of name checks in every loader, as open_clip keeps its architectures as data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..samples import DATA_DIR

FAMILIES = ("clip", "classifier", "blip")


@dataclass(frozen=True)
class ShippedModel:
    family: str  # "clip", "classifier" or "blip"
    folder: Path
    made_by: str  # the command that trains it: python -m gradeclip_lib shapes <made_by> --out <folder>
    preset: str | None = None  # a ShapesWorld CLIP's preset (models/shapes.py): random weights without a folder


SHIPPED = {
    "shapes": ShippedModel("clip", DATA_DIR / "shapes", "train", preset="small"),
    "shapes-tuned": ShippedModel("clip", DATA_DIR / "shapes-tuned", "finetune", preset="small"),
    "shapes-shuffled": ShippedModel("clip", DATA_DIR / "shapes-shuffled",
                                    "train --shuffle-captions --scenes 20000 --steps 1500", preset="small"),
    "shapes-resnet": ShippedModel("clip", DATA_DIR / "shapes-resnet", "train --preset resnet", preset="resnet"),
    "shapes-siglip": ShippedModel("clip", DATA_DIR / "shapes-siglip",
                                  "train --preset siglip --init-from data/shapes --steps 1500 --batch-size 192 "
                                  "--lr 5e-4 --precision fp32", preset="siglip"),
    "shapes-classifier": ShippedModel("classifier", DATA_DIR / "shapes-classifier", "train-classifier"),
    "shapes-blip": ShippedModel("blip", DATA_DIR / "shapes-blip", "train-blip"),
}
ALIASES = {("classifier", "shapes"): "shapes-classifier", ("blip", "shapes"): "shapes-blip"}


def shipped(name: str, family: str | None = None) -> ShippedModel | None:
    """The shipped model called ``name`` (a family's loader may call its own "shapes"), or None."""
    entry = SHIPPED.get(ALIASES.get((family, name), name))
    return entry if entry is not None and family in (None, entry.family) else None


def how_to_make(name: str, folder: str | os.PathLike) -> str:
    """The command that trains the shipped model ``name`` into ``folder``."""
    return f"python -m gradeclip_lib shapes {SHIPPED[name].made_by} --out {folder}"


def family_of_folder(folder: str | os.PathLike) -> str | None:
    """The family of a saved model folder, read from its ``config.json`` (None without one)."""
    config_file = Path(folder) / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    if config.get("model_type") == "blip":
        return "blip"
    if "vit" in config and "classes" in config:
        return "classifier"
    if "vision_cfg" in config and "text_cfg" in config:
        return "clip"
    return None
