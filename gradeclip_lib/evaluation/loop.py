"""The protocol written the straightforward way, as the authors' scripts do: one image at a time, a
Python loop over the 100 steps on a NumPy array, PIL preprocessing of each checkpoint (with NumPy indexing
per step, which is faster than the scripts' per-pixel ``zip``). Kept only as the
speed baseline that ``python -m gradeclip_lib bench --evaluation`` runs next to the vectorised version."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from ..explain import explain
from .curves import SCORE_EVERY, STEPS, pixels_per_step
from .data import downscale
from .perturb import noise_image
from .protocol import ZeroShot


def per_image_curves(zs: ZeroShot, path: str | os.PathLike, key: str, label: int, seed: int = 0) -> dict:
    """Deletion and insertion top-1 curves (11 points) of one image file, explaining its label."""
    clip = zs.clip
    with Image.open(path) as im:
        image = downscale(im.convert("RGB"))
    array = np.array(image)
    text = zs.weights[:, label]
    heat = explain(clip, image, text).upsampled(normalized=False)[0].numpy()  # at the image's size
    noise = noise_image(key, *array.shape[:2], seed=seed).permute(1, 2, 0).numpy()
    h, w = heat.shape
    order = np.argsort(-heat.reshape(-1), kind="stable")
    once = pixels_per_step(h, w)
    curves = {}
    for mode in ("deletion", "insertion"):
        current = array.copy() if mode == "deletion" else np.zeros_like(array)
        source = noise if mode == "deletion" else array
        frames = [clip.crop_transform(Image.fromarray(current))]
        for step in range(1, STEPS + 1):
            ys, xs = np.divmod(order[(step - 1) * once : step * once], w)
            current[ys, xs, :] = source[ys, xs, :]  # one NumPy assignment per step (the scripts zip pixels)
            if step % SCORE_EVERY == 0:
                frames.append(clip.crop_transform(Image.fromarray(current)))
        logits = zs.logits(torch.stack(frames).to(clip.device))
        curves[f"{mode}_top1"] = (logits.argmax(1) == label).float().tolist()
    return curves
