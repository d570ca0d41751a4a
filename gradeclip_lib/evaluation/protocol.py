"""Deletion and insertion (the authors' protocol, vectorised) for a batch of images, one method and one
target: explain, rank the pixels, build every checkpoint image on the device, score them in large batches.

Scores at each checkpoint, after the model's standard preprocessing: top-1 and top-5 correctness of the
zero-shot classifier against the image's label (as the authors), and the softmax probability of the
explained class. Deletion starts from the image (0 %), insertion from black (0 %); 11 points up to 50 %.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..explain import explain
from ..methods import IMAGE_METHODS
from ..methods.registry import lookup
from ..models.clip import Clip
from .curves import checkpoint_counts
from .perturb import image_seed, perturbed, pixel_ranks, upsample_maps
from .preprocess import crop_batch, keep_size_batch

TARGETS = ("gt", "pred")


@dataclass
class Scores:
    """Per image: the probability of a class, and whether the label is in the top 1 / top 5."""

    prob: torch.Tensor
    top1: torch.Tensor
    top5: torch.Tensor


class ZeroShot:
    """A zero-shot classifier [E, C] and the model: scores normalised crops in batches of ``batch_size``."""

    def __init__(self, clip: Clip, weights: torch.Tensor, batch_size: int = 256) -> None:
        self.clip, self.weights, self.batch_size = clip, weights.to(clip.device).float(), batch_size
        self.scale = float(clip.model.logit_scale.exp())
        self._black: torch.Tensor | None = None

    def black_logits(self) -> torch.Tensor:
        """Logits [1, C] of a black image (where every insertion curve starts), computed once."""
        if self._black is None:
            side = self.clip.crop_size
            self._black = self.logits(crop_batch(self.clip, torch.zeros(1, 3, side, side, device=self.clip.device)))
        return self._black

    @torch.no_grad()
    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        """Logits [N, C] (logit scale x cosine) of normalised crops [N, 3, S, S], in chunks."""
        out = []
        for chunk in crops.split(self.batch_size):
            emb = self.clip.model.encode_image(chunk.to(self.clip.dtype), normalize=True).float()
            out.append(self.scale * emb @ self.weights)
        return torch.cat(out)

    def scores(self, logits: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> Scores:
        """Probability of ``classes`` and top-1 / top-5 correctness against ``labels`` (all [N])."""
        prob = logits.softmax(-1).gather(1, classes[:, None])[:, 0]
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = top == labels[:, None]
        return Scores(prob, hit[:, 0], hit.any(1))


@dataclass
class Batch:
    """Images of one batch on the device, grouped by size: ``groups[(H, W)]`` lists sample positions."""

    pixels: list[torch.Tensor]  # uint8 [3, H, W] each
    noise: list[torch.Tensor]
    labels: torch.Tensor  # [N]
    groups: dict[tuple[int, int], list[int]]
    keep_size: list[torch.Tensor] | None = None  # model inputs for the explanations, made once per batch
    keys: list[str] | None = None  # the images' names: seeds of methods seeded per image

    @classmethod
    def build(cls, pixels: Sequence[torch.Tensor], noise: Sequence[torch.Tensor], labels: Sequence[int] | torch.Tensor,
              device: torch.device, keep_size: list[torch.Tensor] | None = None,
              keys: Sequence[str] | None = None) -> Batch:
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, p in enumerate(pixels):
            groups[tuple(p.shape[-2:])].append(i)
        return cls([p.to(device, non_blocking=True) for p in pixels], [n.to(device, non_blocking=True) for n in noise],
                   torch.as_tensor(labels, device=device), dict(groups), keep_size,
                   None if keys is None else list(keys))

    def __len__(self) -> int:
        return len(self.pixels)

    def subset(self, rows: Sequence[int]) -> Batch:
        """The batch restricted to ``rows`` (positions), sharing its tensors."""
        if len(rows) == len(self):
            return self
        keep = None if self.keep_size is None else [self.keep_size[i] for i in rows]
        keys = None if self.keys is None else [self.keys[i] for i in rows]
        return Batch.build([self.pixels[i] for i in rows], [self.noise[i] for i in rows], self.labels[list(rows)],
                           self.labels.device, keep, keys)

    def stacked(self, idx: Sequence[int]) -> torch.Tensor:
        """The same-size images at positions ``idx`` as one tensor [n, 3, H, W]."""
        return torch.stack([self.pixels[i] for i in idx])

    def keep_size_inputs(self, clip: Clip) -> list[torch.Tensor]:
        """Each image resized for a keep-size explanation (computed on first use, then shared by every
        method and target of the batch)."""
        if self.keep_size is None:
            inputs: list[torch.Tensor | None] = [None] * len(self)
            for idx in self.groups.values():
                for i, x in zip(idx, keep_size_batch(clip, self.stacked(idx))):
                    inputs[i] = x
            self.keep_size = inputs
        return self.keep_size


def clean_logits(zs: ZeroShot, batch: Batch) -> torch.Tensor:
    """Logits [N, C] of the unperturbed images."""
    out = torch.empty(len(batch), zs.weights.shape[1], device=zs.weights.device)
    for idx in batch.groups.values():
        out[idx] = zs.logits(crop_batch(zs.clip, batch.stacked(idx)))
    return out


def explain_targets(clip: Clip, batch: Batch, texts: Sequence[torch.Tensor], method: str,
                    **options) -> list[list[torch.Tensor]]:
    """For each target (one text tensor [N, E] per target, e.g. the label's and the prediction's class
    embeddings), the map of every image at its own size [H, W] (keep-size explanation, upsampled
    bilinearly), in one call: an image's targets share its pass (Grad-ECLIP's shared route). Methods
    seeded per image (the random floor) get a seed from each image's key, so an image's map does not
    depend on the batch it falls in."""
    k, n = len(texts), len(batch)
    if lookup(IMAGE_METHODS, method, "image").pair_seeds and batch.keys is not None:
        options["seed"] = [image_seed(key, options.get("seed", 0)) for key in batch.keys] * k
    exp = explain(clip, batch.keep_size_inputs(clip) * k, torch.cat(list(texts)), method=method, **options)
    sizes = [tuple(p.shape[-2:]) for p in batch.pixels]
    return [[upsample_maps(m[None].to(clip.device), size)[0] for m, size in zip(exp.maps[t * n : (t + 1) * n], sizes)]
            for t in range(k)]


def explain_batch(clip: Clip, batch: Batch, texts: torch.Tensor, method: str, **options) -> list[torch.Tensor]:
    """Maps of every image for one target (see `explain_targets`)."""
    return explain_targets(clip, batch, [texts], method, **options)[0]


def deletion_insertion(zs: ZeroShot, batch: Batch, maps: Sequence[torch.Tensor], classes: torch.Tensor,
                       clean: torch.Tensor, rows_per_build: int = 64) -> dict[str, torch.Tensor]:
    """Curves [N, 11] of probability (of ``classes``), top-1 and top-5 for deletion and insertion.

    ``clean`` are the unperturbed logits (the deletion curve's first point); the insertion curve starts
    from a black image. ``rows_per_build`` bounds how many full-size perturbed images exist at once.
    """
    clip, n = zs.clip, len(batch)
    out = {f"{mode}_{what}": torch.zeros(n, 11, device=clip.device)
           for mode in ("deletion", "insertion") for what in ("prob", "top1", "top5")}
    first = zs.scores(clean, batch.labels, classes)
    start = zs.scores(zs.black_logits().expand(n, -1), batch.labels, classes)
    for what in ("prob", "top1", "top5"):
        out[f"deletion_{what}"][:, 0] = getattr(first, what).float()
        out[f"insertion_{what}"][:, 0] = getattr(start, what).float()

    for (h, w), idx in batch.groups.items():
        counts = torch.tensor(checkpoint_counts(h, w)[1:], device=clip.device)  # 10 checkpoints
        k = len(counts)
        ranks = pixel_ranks(torch.stack([maps[i] for i in idx]))
        images = batch.stacked(idx)
        noise = torch.stack([batch.noise[i] for i in idx])
        rows = torch.arange(len(idx) * k, device=clip.device)
        img_of, count_of = rows // k, counts[rows % k]
        for mode in ("deletion", "insertion"):
            crops = []
            for chunk in rows.split(rows_per_build):
                g, c = img_of[chunk], count_of[chunk]
                pert = perturbed(images[g], ranks[g], c, mode, noise[g] if mode == "deletion" else None)
                crops.append(crop_batch(clip, pert))
            logits = zs.logits(torch.cat(crops))
            pos = torch.tensor(idx, device=clip.device)[img_of]
            s = zs.scores(logits, batch.labels[pos], classes[pos])
            for what in ("prob", "top1", "top5"):
                out[f"{mode}_{what}"][idx, 1:] = getattr(s, what).float().view(len(idx), k)
    return out
