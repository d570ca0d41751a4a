"""The sample photographs shipped in ``data/images`` (public domain or CC0, see its LICENSE.md)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
IMAGES_DIR = DATA_DIR / "images"


def sample_images() -> dict[str, Path]:
    """Name -> path of every sample photograph, e.g. ``{"chelsea": .../chelsea.jpg, ...}``."""
    if not IMAGES_DIR.is_dir():
        raise FileNotFoundError(f"no sample images at {IMAGES_DIR}; run from a clone of the repository.")
    return {p.stem: p for p in sorted(IMAGES_DIR.glob("*.jpg"))}


def sample_image(name: str) -> Path:
    """The path of one sample photograph by name ('astronaut', 'chelsea', 'coffee', 'rocket')."""
    images = sample_images()
    if name not in images:
        raise KeyError(f"no sample image {name!r}; available: {', '.join(images)}")
    return images[name]
