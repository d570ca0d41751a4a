"""Training data for the ShapesWorld CLIP: scenes rendered in worker processes into one uint8 tensor,
with tokenized captions and, for image and caption, the set of objects as a bit mask (a caption is a
right answer for every image that shows all the objects it names)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .scenes import COLOURS, IMAGE_SIZE, SHAPES, caption_for, make_scenes
from .tokenizer import WordTokenizer

MEAN = STD = (0.5, 0.5, 0.5)  # ShapesWorld pixels are normalised to [-1, 1]


@dataclass
class SceneTensors:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    ids: torch.Tensor  # long [N, L] caption tokens
    image_sets: torch.Tensor  # long [N]: bit mask of the objects in the image (see `object_bits`)
    caption_sets: torch.Tensor  # long [N]: bit mask of the objects the caption names

    def __len__(self) -> int:
        return len(self.images)


def object_bits(objects) -> int:
    """The set of (colour, shape) pairs of ``objects`` as one integer, bit ``5 * colour + shape``."""
    colours, shapes = list(COLOURS), list(SHAPES)
    return sum(1 << (len(SHAPES) * colours.index(o.colour) + shapes.index(o.shape)) for o in objects)


def _render(args: tuple[int, int, int, tuple[int, int], int, float]) -> tuple[np.ndarray, list[str], list, list]:
    seed, start, count, n_objects, size, partial = args
    scenes = make_scenes(count, seed=seed, n_objects=n_objects, size=size, start=start)
    images = np.stack([np.asarray(s.image) for s in scenes]).transpose(0, 3, 1, 2)
    captions, image_sets, caption_sets = [], [], []
    for i, s in enumerate(scenes):
        named, caption = s.objects, s.caption
        if partial and len(s.objects) > 1:
            rng = np.random.default_rng([seed, start + i, 1])  # the caption's own stream: scenes stay as they are
            if rng.random() < partial:
                keep = rng.choice(len(s.objects), int(rng.integers(1, len(s.objects))), replace=False)
                named = [s.objects[k] for k in sorted(keep)]
                caption = caption_for(named, rng)
        captions.append(caption)
        image_sets.append(object_bits(s.objects))
        caption_sets.append(object_bits(named))
    return images, captions, image_sets, caption_sets


def render_scenes(n: int, seed: int, n_objects: tuple[int, int] = (1, 3), size: int = IMAGE_SIZE,
                  workers: int | None = None, tokenizer: WordTokenizer | None = None,
                  progress: bool = True, partial_captions: float = 0.0) -> SceneTensors:
    """``n`` scenes as tensors, rendered by ``workers`` processes (all cores by default).

    ``partial_captions``: share of multi-object scenes whose caption names only some of the objects
    ("there is a red circle" for a scene with three), which teaches the model that a phrase is true of
    any image holding that object, and so where the object is.
    """
    tokenizer = tokenizer or WordTokenizer()
    workers = workers or os.cpu_count() or 1
    chunk = 2000
    jobs = [(seed, start, min(chunk, n - start), n_objects, size, partial_captions) for start in range(0, n, chunk)]
    images, captions, image_sets, caption_sets = [], [], [], []
    with ProcessPoolExecutor(workers) as pool:
        for imgs, caps, isets, csets in tqdm(pool.map(_render, jobs), total=len(jobs), desc="rendering scenes",
                                             unit="chunk", disable=not progress):
            images.append(imgs)
            captions += caps
            image_sets += isets
            caption_sets += csets
    return SceneTensors(
        images=torch.from_numpy(np.concatenate(images)),
        ids=tokenizer(captions),
        image_sets=torch.tensor(image_sets),
        caption_sets=torch.tensor(caption_sets),
    )
