"""Evaluation throughput: the vectorised protocol over a folder of JPEGs at ImageNet sizes (so that
decoding counts) against the per-image loop of `loop`, in the same process, on the same images."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..models import load_clip
from ..models.loading import as_dtype
from .classes import folder_classes, zero_shot_classifier
from .data import list_images
from .loop import per_image_curves
from .protocol import ZeroShot
from .run import evaluate_folder

IMAGENET_SIZES = [(375, 500), (500, 375), (333, 500), (375, 500), (500, 400), (281, 500)]  # (H, W), common in val


def jpeg_folder(root: str | Path, n: int, n_classes: int = 4, seed: int = 0) -> Path:
    """``n`` smooth random JPEGs at ImageNet-like sizes in ``n_classes`` class folders, one template."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = IMAGENET_SIZES[i % len(IMAGENET_SIZES)]
        coarse = rng.uniform(0, 255, (h // 25 + 2, w // 25 + 2, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        folder = root / f"class_{i % n_classes}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:05d}.jpg", quality=90)
    (root / "templates.txt").write_text("a photo of a {}.\n")
    return root


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_evaluation(model: str = "ViT-B-16-quickgelu", device: str = "cpu", dtype: str = "fp32",
                     n_images: int = 8, loop_images: int | None = None, batch_size: int = 32,
                     score_batch: int | None = None, workers: int = 0) -> list[dict]:
    """Images per second of deletion + insertion (Grad-ECLIP, gt target): vectorised over the folder,
    and the per-image loop over the first ``loop_images`` of the same images."""
    clip = load_clip(model, pretrained=None, device=device, dtype=as_dtype(dtype))
    loop_images = loop_images or n_images
    with tempfile.TemporaryDirectory() as tmp:
        data = jpeg_folder(Path(tmp) / "data", n_images)
        classes = folder_classes(data, clip)
        weights = zero_shot_classifier(clip, classes, cache=Path(tmp) / "cache")  # built once, not timed
        zs = ZeroShot(clip, weights, 16)  # the loop scores its 11 checkpoints in one forward

        _sync(device)
        start = time.perf_counter()
        evaluate_folder(clip, data, ["grad_eclip"], Path(tmp) / "out.jsonl", batch_size=batch_size,
                        score_batch=score_batch, workers=workers, cache=Path(tmp) / "cache", progress=False)
        _sync(device)
        vectorised = time.perf_counter() - start

        items = list_images(data, classes)[:loop_images]
        start = time.perf_counter()
        for item in items:
            per_image_curves(zs, data / item.key, item.key, item.label)
        _sync(device)
        loop = time.perf_counter() - start
    return [
        {"what": "evaluation, vectorised (deletion + insertion, gt)", "device": device, "dtype": dtype,
         "images": n_images, "seconds": vectorised, "images_per_s": n_images / vectorised},
        {"what": "evaluation, per-image loop", "device": device, "dtype": dtype,
         "images": len(items), "seconds": loop, "images_per_s": len(items) / loop},
    ]


def report_evaluation(rows: list[dict]) -> str:
    lines = [f"{'what':<52} {'device':<7} {'dtype':<5} {'images':>6} {'images/s':>9}"]
    lines += [f"{r['what']:<52} {r['device']:<7} {r['dtype']:<5} {r['images']:>6} {r['images_per_s']:>9.3g}"
              for r in rows]
    by = {}
    for r in rows:
        by.setdefault((r["device"], r["dtype"]), {})[r["what"].split(",")[1].split("(")[0].strip()] = r["images_per_s"]
    for (dev, dt), rates in by.items():
        if {"vectorised", "per-image loop"} <= rates.keys():
            lines.append(f"ratio vectorised / per-image loop ({dev}, {dt}): "
                         f"{rates['vectorised'] / rates['per-image loop']:.2f}x")
    return "\n".join(lines)
