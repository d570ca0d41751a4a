"""Training data for the ShapesWorld CLIP: scenes rendered in worker processes into one uint8 tensor,
with tokenized captions and an id per set of objects (two captions of the same objects are both
right answers for an image)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .scenes import IMAGE_SIZE, make_scenes
from .tokenizer import WordTokenizer


@dataclass
class SceneTensors:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    ids: torch.Tensor  # long [N, L] caption tokens
    groups: torch.Tensor  # long [N]: equal for scenes showing the same set of objects

    def __len__(self) -> int:
        return len(self.images)


def _render(args: tuple[int, int, int, tuple[int, int], int]) -> tuple[np.ndarray, list[str], list[str]]:
    seed, start, count, n_objects, size = args
    scenes = make_scenes(count, seed=seed, n_objects=n_objects, size=size, start=start)
    images = np.stack([np.asarray(s.image) for s in scenes]).transpose(0, 3, 1, 2)
    keys = [" and ".join(sorted(o.phrase for o in s.objects)) for s in scenes]
    return images, [s.caption for s in scenes], keys


def render_scenes(n: int, seed: int, n_objects: tuple[int, int] = (1, 3), size: int = IMAGE_SIZE,
                  workers: int | None = None, tokenizer: WordTokenizer | None = None,
                  progress: bool = True) -> SceneTensors:
    """``n`` scenes as tensors, rendered by ``workers`` processes (all cores by default)."""
    tokenizer = tokenizer or WordTokenizer()
    workers = workers or os.cpu_count() or 1
    chunk = 2000
    jobs = [(seed, start, min(chunk, n - start), n_objects, size) for start in range(0, n, chunk)]
    images, captions, keys = [], [], []
    with ProcessPoolExecutor(workers) as pool:
        for imgs, caps, ks in tqdm(pool.map(_render, jobs), total=len(jobs), desc="rendering scenes",
                                   unit="chunk", disable=not progress):
            images.append(imgs)
            captions += caps
            keys += ks
    group_of = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return SceneTensors(
        images=torch.from_numpy(np.concatenate(images)),
        ids=tokenizer(captions),
        groups=torch.tensor([group_of[k] for k in keys]),
    )
