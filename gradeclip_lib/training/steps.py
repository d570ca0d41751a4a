"""What every ShapesWorld trainer shares: the contrastive loss with multi-positive targets, the learning-rate
schedule (linear warm-up, cosine decay), mixed precision on a CPU or a GPU, and pixels normalised as the
models expect them."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..synthetic.data import MEAN, STD

POSITIVES = ("subset", "same")  # which captions count as right for an image: see `contrastive_loss`


def _check_positives(positives: str) -> None:
    if positives not in POSITIVES:
        raise ValueError(f"positives must be one of {POSITIVES}, got {positives!r}")


def positive_pairs(image_sets: torch.Tensor, caption_sets: torch.Tensor, positives: str) -> torch.Tensor:
    """[image, caption] 1.0 where the caption is a right answer for the image (see `contrastive_loss`)."""
    _check_positives(positives)
    if positives == "subset":
        return ((caption_sets[None, :] & ~image_sets[:, None]) == 0).float()
    return (caption_sets[None, :] == image_sets[:, None]).float()


def sigmoid_loss(img: torch.Tensor, txt: torch.Tensor, image_sets: torch.Tensor, caption_sets: torch.Tensor,
                 scale: torch.Tensor, bias: torch.Tensor, positives: str = "same") -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (open_clip's `SigLipLoss`: -sum log sigmoid(y_ij z_ij) / batch, with
    z = scale cos + bias), its labels y = +1 for every right caption (`positive_pairs`) and -1 otherwise
    instead of the diagonal alone: a batch holds several captions of the same objects."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T + bias
    labels = 2 * positive_pairs(image_sets, caption_sets, positives) - 1
    return -F.logsigmoid(labels * logits).sum() / img.shape[0]


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, image_sets: torch.Tensor, caption_sets: torch.Tensor,
                     scale: torch.Tensor, positives: str = "subset") -> torch.Tensor:
    """Symmetric cross-entropy with soft targets: caption j is a positive for image i whenever the objects
    it names (bit mask ``caption_sets[j]``) are all in the image (``image_sets[i]``); with
    ``positives="same"`` only when they are exactly the image's objects (the first recipe)."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    true = positive_pairs(image_sets, caption_sets, positives)  # [image, caption]
    to_text = F.cross_entropy(logits, true / true.sum(1, keepdim=True))
    to_image = F.cross_entropy(logits.T, true.T / true.T.sum(1, keepdim=True))
    return (to_text + to_image) / 2


def lr_at(step: int, cfg) -> float:
    """The learning rate at ``step`` of a run with ``cfg.lr``, ``cfg.steps`` and ``cfg.warmup`` (a share of the
    steps): linear warm-up, then cosine decay to zero."""
    warm = max(1, int(cfg.warmup * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def normalized_pixels(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 scenes [B, 3, H, W] as model inputs on ``device``, normalised with the ShapesWorld mean and std."""
    x = images.to(device, non_blocking=True).float().div_(255)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def mixed_precision(device: torch.device, precision: str):
    """bf16 autocast with the plain (math) attention kernel on a CPU, where it is more than twice as fast
    for these short sequences as the fused one (measured: 0.37 s against 0.80 s per step of the small
    preset at batch 256); bf16 autocast on CUDA; nothing for fp32. Whether bf16 pays on a CPU depends on
    the CPU: on the 2-core AMD EPYC that builds this book it is 17 times slower than fp32 (21.5 s against
    1.27 s for the small preset's image tower, forward and backward, at batch 256), so train with fp32 there."""
    if precision == "fp32":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    if device.type == "cpu":
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
    return stack
