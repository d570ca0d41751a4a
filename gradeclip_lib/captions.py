"""Captioned images from the two layouts a reader is likely to have: COCO's captions file with its
image folder, or a folder where each image has a same-named ``.txt`` of captions."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import GradEclipError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def read_captions(source: str | os.PathLike, images: str | os.PathLike | None = None,
                  limit: int | None = None) -> tuple[list[Path], list[str]]:
    """(image paths, captions) from COCO's captions file (``captions_val2017.json`` with ``images`` the
    folder of its pictures) or from a folder where each image has a same-named ``.txt`` of captions, one
    per line. Every caption is one pair; ``limit`` keeps the first pairs."""
    source = Path(source)
    pairs: list[tuple[Path, str]] = []
    if source.is_file() and source.suffix == ".json":
        if images is None:
            raise GradEclipError(f"{source} is a COCO captions file: give the folder of its images too")
        coco = json.loads(source.read_text())
        if not {"images", "annotations"} <= set(coco):
            raise GradEclipError(f"{source}: not a COCO captions file (it needs 'images' and 'annotations')")
        files = {im["id"]: Path(images) / im["file_name"] for im in coco["images"]}
        pairs = [(files[a["image_id"]], a["caption"].strip()) for a in coco["annotations"] if a["image_id"] in files]
    elif source.is_dir():
        for image in sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            txt = image.with_suffix(".txt")
            if txt.is_file():
                pairs += [(image, line.strip()) for line in txt.read_text().splitlines() if line.strip()]
    else:
        raise GradEclipError(f"{source}: give COCO's captions .json (with the images folder) or a folder of "
                             "images each with a same-named .txt of captions")
    if not pairs:
        raise GradEclipError(f"{source}: no image with a caption found")
    pairs = pairs[:limit]
    missing = [str(p) for p, _ in pairs if not p.is_file()]
    if missing:
        raise GradEclipError(f"{len(missing)} captioned images are missing, e.g. {missing[0]}")
    return [p for p, _ in pairs], [c for _, c in pairs]
