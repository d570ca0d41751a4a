"""Saying before a method starts that an image is too large for it here. Grad-ECLIP and most methods hold
memory that grows linearly with the image's tokens (`models.towers.memory_linear_attention`); attention
rollout, GAME and CLIP Surgery hold tokens x tokens matrices per head (their definitions multiply or
differentiate the full attention), so a photo at its own size can need terabytes."""

from __future__ import annotations

import math

import torch

from ..errors import ImageTooLargeError
from ..hardware import free_memory
from ..models.clip import Clip
from .registry import MethodInfo, methods_of

BYTES = 4  # the attention is computed in float32
SHARE = 0.8  # of the free memory a method may plan to take


def attention_bytes(quadratic: int, heads: int, tokens: int, pairs: int = 1) -> int:
    """What a method holding ``quadratic`` tokens x tokens matrices per head needs for them, plus four
    head-averaged ones (a rollout or relevance product, the identity, their normalisation)."""
    return pairs * (quadratic * heads + 4) * tokens**2 * BYTES


def check_attention_memory(info: MethodInfo, model: Clip, grid: tuple[int, int], pairs: int,
                           image_size: tuple[int, int]) -> None:
    """`ImageTooLargeError` when ``info``'s tokens x tokens matrices for ``pairs`` pairs on ``grid`` would not
    fit in the memory free on the model's device; the message says what would (a side, a method, fewer pairs).
    Methods whose memory is linear in the tokens (``info.quadratic == 0``) always pass."""
    if not info.quadratic:
        return
    heads, device, family = model.vision_blocks[-1].attn.num_heads, model.device, model.family
    tokens = grid[0] * grid[1] + 1
    need, free = attention_bytes(info.quadratic, heads, tokens, pairs), free_memory(device)
    if need <= SHARE * free:
        return
    fits = math.sqrt(SHARE * free / attention_bytes(info.quadratic, heads, 1))  # tokens for one pair
    scale = min(1.0, math.sqrt(max(fits - 1, 1) / (grid[0] * grid[1])))
    patch = model.patch_size  # whole patches, so that the keep-size rounding cannot take it over
    height, width = (patch * max(1, int(side * scale) // patch) for side in image_size)
    linear = sorted(name for name, m in methods_of(family).items() if not m.quadratic)
    raise ImageTooLargeError(
        f"{info.name!r} holds {info.quadratic} tokens x tokens matrices per head ({heads} heads): on a "
        f"{grid[0]} x {grid[1]} grid ({tokens} tokens){f' for {pairs} pairs' if pairs > 1 else ''} that is about "
        f"{need / 1e9:,.1f} GB, and {free / 1e9:.1f} GB are free on {torch.device(device)}. Nothing was computed. "
        f"What fits: the image resized to about {width} x {height} px (or preprocess='crop')"
        f"{', batch_size=1' if pairs > 1 else ''}, or a method whose memory grows linearly with the image: "
        f"{', '.join(linear)}.")
