"""ShapesWorld scenes: coloured shapes on a noisy textured background, each with its mask and a
caption that names every object once, so every explanation has a known right answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 80, 235),
    "yellow": (240, 215, 35),
    "purple": (150, 55, 200),
    "white": (245, 245, 245),
}
# Caption templates. Their words ("photo", "lovely", ...) are never about the picture: the words a caption
# uses that no pixel decides (chapter on analyses: a word's weight against its groundedness).
TEMPLATES = ("a photo of {}", "there is {}", "{}", "an image of {}", "a picture with {}",
             "a lovely photo of {}", "a simple drawing of {}")
IMAGE_SIZE = 96  # smallest size at which stars, crosses and triangles stay distinct (see the chapter)
MAX_OBJECTS = 5


@dataclass
class SceneObject:
    colour: str
    shape: str
    mask: np.ndarray  # bool [H, W]: the pixels drawn for this object

    @property
    def phrase(self) -> str:
        return f"a {self.colour} {self.shape}"


@dataclass
class Scene:
    image: Image.Image
    caption: str
    objects: list[SceneObject]


def shape_mask(shape: str, size: int, cy: float, cx: float, radius: float, angle: float) -> np.ndarray:
    """Boolean mask [size, size] of one shape centred at (cy, cx), outer radius ``radius``, rotated."""
    mask = np.zeros((size, size), dtype=bool)
    y0, y1 = max(0, int(cy - radius) - 1), min(size, int(cy + radius) + 2)
    x0, x1 = max(0, int(cx - radius) - 1), min(size, int(cx + radius) + 2)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    c, s = np.cos(angle), np.sin(angle)
    x, y = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's own frame
    mask[y0:y1, x0:x1] = _inside(shape, x, y, radius)
    return mask


def _inside(shape: str, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    if shape == "circle":
        return x * x + y * y <= radius * radius
    if shape == "square":
        half = radius * 0.78
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if shape == "triangle":  # equilateral, circumradius = radius, one corner up (image y grows down)
        inside = np.ones(x.shape, dtype=bool)
        for k in range(3):
            a = np.pi / 2 + 2 * np.pi * k / 3  # the edge opposite each corner is at half the radius
            inside &= -(np.cos(a) * x - np.sin(a) * y) <= radius * 0.5
        return inside
    if shape == "star":  # five points, inner radius 0.45 of the outer one
        rho = np.hypot(x, y)
        phi = np.mod(np.arctan2(-y, x) - np.pi / 2, 2 * np.pi / 5) / (2 * np.pi / 5)  # 0..1 per point
        return rho <= radius * (1 - (1 - 0.45) * (1 - np.abs(1 - 2 * phi)))
    if shape == "cross":
        arm = radius * 0.34
        return ((np.abs(x) <= arm) & (np.abs(y) <= radius)) | ((np.abs(y) <= arm) & (np.abs(x) <= radius))
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted, noisy texture [size, size, 3] float32: smooth blotches plus fine grain."""
    coarse = rng.normal(0, 1, (6, 6, 1)) + 0.3 * rng.normal(0, 1, (6, 6, 3))  # mostly grey, faint colour
    blotches = Image.fromarray(((coarse + 3) * 40).clip(0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    texture = rng.standard_normal((size, size, 3), dtype=np.float32)
    texture *= 9  # fine grain
    texture += np.asarray(blotches, dtype=np.float32) * 0.45  # blotches, about +-14 grey levels
    texture += rng.uniform(70, 130) - 60 + rng.normal(0, 6, 3).astype(np.float32)  # base grey, slight tint
    return texture


def _place(rng: np.random.Generator, size: int, count: int) -> list[tuple[float, float, float]]:
    """Centres and radii of ``count`` non-overlapping objects (rejection sampling)."""
    for _ in range(100):
        placed: list[tuple[float, float, float]] = []
        for _ in range(count):
            for _ in range(200):
                r = rng.uniform(0.09, 0.14) * size
                cy, cx = rng.uniform(r + 1, size - r - 1, 2)
                if all(np.hypot(cy - y, cx - x) > r + q + 2 for y, x, q in placed):
                    placed.append((cy, cx, r))
                    break
        if len(placed) == count:
            return placed
    raise RuntimeError(f"could not place {count} objects in {size} px; use fewer or a larger size")


def caption_for(objects: list[SceneObject], rng: np.random.Generator) -> str:
    """One of the templates around the objects' phrases joined by 'and', in random order."""
    phrases = [o.phrase for o in objects]
    rng.shuffle(phrases)
    return TEMPLATES[rng.integers(len(TEMPLATES))].format(" and ".join(phrases))


def make_scene(rng: np.random.Generator, size: int, count: int) -> Scene:
    """One scene with ``count`` objects of distinct colours and distinct shapes."""
    shapes = rng.choice(len(SHAPES), count, replace=False)
    colours = rng.choice(len(COLOURS), count, replace=False)
    names = list(COLOURS)
    return draw_scene(rng, size, [(names[c], SHAPES[s]) for s, c in zip(shapes, colours)])


def draw_scene(rng: np.random.Generator, size: int, attributes: list[tuple[str, str]]) -> Scene:
    """Draw objects of the given (colour, shape) on a fresh background, placed at random, with a caption
    naming them all."""
    canvas = background(rng, size)
    objects = []
    for (cy, cx, r), (colour, shape) in zip(_place(rng, size, len(attributes)), attributes):
        mask = shape_mask(shape, size, cy, cx, r, rng.uniform(-0.35, 0.35))
        rgb = np.asarray(COLOURS[colour], np.float32) * rng.uniform(0.88, 1.05)
        canvas[mask] = rgb + 5 * rng.standard_normal((int(mask.sum()), 3), dtype=np.float32)
        objects.append(SceneObject(colour, shape, mask))
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    return Scene(image, caption_for(objects, rng), objects)


def make_scenes(
    n: int, seed: int = 0, n_objects: int | tuple[int, int] = (1, 3), size: int = IMAGE_SIZE, start: int = 0
) -> list[Scene]:
    """Scenes ``start`` .. ``start + n - 1`` of the stream of ``seed``: scene i depends only on
    (seed, i, n_objects, size), so different seeds give disjoint, reproducible sets.

    ``n_objects`` is a count or an inclusive range (at most 5: no two objects share a colour or a shape).
    """
    lo, hi = (n_objects, n_objects) if isinstance(n_objects, int) else n_objects
    if not 1 <= lo <= hi <= MAX_OBJECTS:
        raise ValueError(f"n_objects must lie in 1..{MAX_OBJECTS}, got {n_objects}")
    scenes = []
    for i in range(start, start + n):
        rng = np.random.default_rng([seed, i])
        scenes.append(make_scene(rng, size, int(rng.integers(lo, hi + 1))))
    return scenes


def make_twin_scenes(n: int, seed: int = 0, shared: str = "shape", others: int = 1,
                     size: int = IMAGE_SIZE) -> list[Scene]:
    """Scenes that training never shows: ``objects[0]`` (the target) has a twin, ``objects[1]``, with the
    same shape (``shared="shape"``) or the same colour (``shared="colour"``) and the other attribute
    different, plus ``others`` objects that share nothing with either. The target's phrase still names
    one object only, but only through the attribute the twins do not share: "a red circle" beside a
    green circle asks whether the model uses colour to find it."""
    if shared not in ("shape", "colour"):
        raise ValueError(f"shared must be 'shape' or 'colour', got {shared!r}")
    if not 0 <= others <= 3:
        raise ValueError(f"others must lie in 0..3 (two twins and at most 3 more), got {others}")
    names = list(COLOURS)
    scenes = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 7])  # its own streams: never one of make_scenes' scenes
        colours = [names[c] for c in rng.choice(len(names), 2 + others, replace=False)]
        shapes = [SHAPES[s] for s in rng.choice(len(SHAPES), 2 + others, replace=False)]
        if shared == "shape":
            attributes = [(colours[0], shapes[0]), (colours[1], shapes[0])]
        else:
            attributes = [(colours[0], shapes[0]), (colours[0], shapes[1])]
        attributes += list(zip(colours[2:], shapes[2:]))
        scenes.append(draw_scene(rng, size, attributes))
    return scenes
