"""ShapesWorld scenes written as an image folder ``DIR/<colour>_<shape>/<index>.png`` (labelled by the
scene's first object), with the prompt templates of the model, so that the evaluation command line runs
on a world whose right answers are known."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from .scenes import COLOURS, IMAGE_SIZE, SHAPES, TEMPLATES, make_scenes

CLASS_FOLDERS = [f"{c}_{s}" for c, s in itertools.product(COLOURS, SHAPES)]


def export_folder(root: str | os.PathLike, n: int, seed: int = 40_000, n_objects: int | tuple[int, int] = 1,
                  size: int = IMAGE_SIZE) -> Path:
    """Write ``n`` scenes as PNG files into the 30 class folders of ``root`` (all created, some may stay
    empty) and ``root/templates.txt``; a scene's class is its first object ('a red circle' -> red_circle)."""
    root = Path(root)
    for folder in CLASS_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "templates.txt").write_text("".join(t.format("a {}") + "\n" for t in TEMPLATES))
    for i, scene in enumerate(make_scenes(n, seed=seed, n_objects=n_objects, size=size)):
        first = scene.objects[0]
        scene.image.save(root / f"{first.colour}_{first.shape}" / f"{seed}_{i:05d}.png")
    return root
