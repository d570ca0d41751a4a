"""Saying before a method starts that an image is too large for it here. Grad-ECLIP and most methods hold
memory that grows linearly with the image's tokens (`models.towers.memory_linear_attention`); attention
rollout, GAME and CLIP Surgery also hold tokens x tokens matrices per head (their definitions multiply or
differentiate the full attention), so a photo at its own size can need terabytes. `check_memory` plans both
parts and refuses an image that would not fit, so that no image reaches the allocator's raw error."""

from __future__ import annotations

import math

import torch

from ..errors import ImageTooLargeError
from ..hardware import free_memory
from ..models.clip import Clip
from .registry import MethodInfo, methods_of

BYTES = 4  # the attention is computed in float32
SHARE = 0.8  # of the free memory a method may plan to take
LINEAR = 40  # values of the model's width per token and pair a method holds at most (ViT-B/16 in fp32: about 26)


def attention_bytes(quadratic: int, heads: int, tokens: int, pairs: int = 1) -> int:
    """What a method holding ``quadratic`` tokens x tokens matrices per head needs for them, plus four
    head-averaged ones (a rollout or relevance product, the identity, their normalisation)."""
    return pairs * (quadratic * heads + 4) * tokens**2 * BYTES if quadratic else 0


def planned_bytes(info: MethodInfo, heads: int, width: int, tokens: int, pairs: int = 1) -> int:
    """The memory a method plans for one image's tokens: linear in the tokens for every method, plus the
    tokens x tokens matrices of those that hold them."""
    return pairs * LINEAR * width * tokens * BYTES + attention_bytes(info.quadratic, heads, tokens, pairs)


def check_memory(info: MethodInfo, model: Clip, image_size: tuple[int, int], pairs: int) -> None:
    """`ImageTooLargeError` before anything is computed when the method's `planned_bytes` for ``pairs`` pairs
    on an input of ``image_size`` (H, W pixels) would not fit in the memory free on the model's device (CLIP
    ViT); the message says what the image would need and what fits (a size, a method whose memory grows
    linearly, fewer pairs at once)."""
    if model.family != "clip_vit":
        return
    patch = model.patch_size
    grid = (image_size[0] // patch, image_size[1] // patch)
    attn = model.vision_blocks[-1].attn
    heads, width, device = attn.num_heads, attn.embed_dim, model.device
    tokens = grid[0] * grid[1] + 1
    need, free = planned_bytes(info, heads, width, tokens, pairs), free_memory(device)
    if need <= SHARE * free:
        return
    budget = SHARE * free  # one pair of t tokens fits when a t + b t^2 <= budget (`planned_bytes`)
    a, b = LINEAR * width * BYTES, attention_bytes(info.quadratic, heads, 1)
    fits = budget / a if b == 0 else (-a + math.sqrt(a * a + 4 * b * budget)) / (2 * b)
    scale = min(1.0, math.sqrt(max(fits - 1, 1) / (grid[0] * grid[1])))
    # whole patches, so that the keep-size rounding cannot take it over
    height, width_px = (patch * max(1, int(side * scale) // patch) for side in image_size)
    where = f"on a {grid[0]} x {grid[1]} grid ({tokens} tokens){f' for {pairs} pairs' if pairs > 1 else ''}"
    if info.quadratic:
        what = (f"{info.name!r} holds {info.quadratic} tokens x tokens matrices per head ({heads} heads): {where} "
                f"that is about {need / 1e9:,.1f} GB")
    else:
        what = f"{info.name!r} {where} needs about {need / 1e9:,.1f} GB"
    linear = sorted(name for name, m in methods_of(model.family).items() if not m.quadratic)
    raise ImageTooLargeError(
        f"{what}, and {free / 1e9:.1f} GB are free on {torch.device(device)}. Nothing was computed. What fits: "
        f"the image resized to about {width_px} x {height} px (or preprocess='crop')"
        f"{', batch_size=1' if pairs > 1 else ''}"
        + (f", or a method whose memory grows linearly with the image: {', '.join(linear)}." if info.quadratic
           else "."))
